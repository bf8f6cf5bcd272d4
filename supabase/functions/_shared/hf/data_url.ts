/**
 * A `data:` URL (or plain base64) as a byte stream: the image is base64-encoded chunk by chunk as it
 * is sent, so a 10 MB image never exists as a binary string, a 13 MB base64 string and a JSON string at once.
 * @module
 */
import { concatBytes } from "../http/mod.ts";

const ALPHABET = new TextEncoder().encode("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
const PAD = 0x3d; // "="

/** Streams `data:<type>;base64,<bytes>` for the bytes `source` yields, encoding one chunk at a time; throws nothing itself. */
export function dataUrlStream(source: ReadableStream<Uint8Array>, type: string): ReadableStream<Uint8Array> {
  const base64 = base64Stream(source).getReader();
  let started = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!started) {
        started = true;
        controller.enqueue(new TextEncoder().encode(`data:${type || "application/octet-stream"};base64,`));
        return;
      }
      const { value, done } = await base64.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return base64.cancel(reason);
    },
  });
}

/** Streams the base64 of the bytes `source` yields, encoding one chunk at a time; throws nothing itself. */
export function base64Stream(source: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let carry = new Uint8Array(0);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Until something is enqueued: a pull that enqueues nothing is not called again.
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          if (carry.length) controller.enqueue(encodeBase64(carry, true));
          controller.close();
          return;
        }
        // Encode whole 3-byte groups now; keep the rest for the next chunk (padding only at the end).
        const joined = carry.length ? concatBytes(carry, value) : value;
        const whole = joined.length - (joined.length % 3);
        carry = joined.slice(whole);
        if (whole) return controller.enqueue(encodeBase64(joined.subarray(0, whole), false));
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** Base64 of `bytes` as ASCII bytes; `last` pads a final group of one or two bytes. */
export function encodeBase64(bytes: Uint8Array, last: boolean): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.length / 3) * 4);
  const full = bytes.length - (bytes.length % 3);
  let o = 0;
  for (let i = 0; i < full; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out[o++] = ALPHABET[n >>> 18];
    out[o++] = ALPHABET[(n >>> 12) & 63];
    out[o++] = ALPHABET[(n >>> 6) & 63];
    out[o++] = ALPHABET[n & 63];
  }
  const rest = bytes.length - full;
  if (rest && !last) throw new RangeError("only the last chunk may end in a partial 3-byte group");
  if (rest) {
    const n = (bytes[full] << 16) | (rest === 2 ? bytes[full + 1] << 8 : 0);
    out[o++] = ALPHABET[n >>> 18];
    out[o++] = ALPHABET[(n >>> 12) & 63];
    out[o++] = rest === 2 ? ALPHABET[(n >>> 6) & 63] : PAD;
    out[o++] = PAD;
  }
  return out;
}
