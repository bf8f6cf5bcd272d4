/**
 * Real, small WAV files for tests: an encoder (a sine tone) and a header reader.
 * @module
 */

/** Encodes a 16-bit mono PCM WAV of a sine tone (a valid file any decoder plays). */
export function makeWav(seconds: number, sampleRate = 16_000, hz = 440): Uint8Array<ArrayBuffer> {
  const samples = Math.max(1, Math.round(seconds * sampleRate));
  const out = new Uint8Array(44 + samples * 2);
  const view = new DataView(out.buffer);
  const ascii = (at: number, s: string) => out.set(new TextEncoder().encode(s), at);
  ascii(0, "RIFF");
  view.setUint32(4, 36 + samples * 2, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true); // byte rate
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  ascii(36, "data");
  view.setUint32(40, samples * 2, true);
  for (let i = 0; i < samples; i++) {
    view.setInt16(44 + i * 2, Math.round(Math.sin((2 * Math.PI * hz * i) / sampleRate) * 12_000), true);
  }
  return out;
}

/** Reads a PCM WAV header; `undefined` when the bytes are not one. */
export function wavInfo(bytes: Uint8Array): { sampleRate: number; channels: number; seconds: number } | undefined {
  const text = (at: number) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (bytes.length < 44 || text(0) !== "RIFF" || text(8) !== "WAVE") return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Walk the chunks: fmt first, then data.
  let fmt: { channels: number; sampleRate: number; bits: number } | undefined;
  for (let at = 12; at + 8 <= bytes.length;) {
    const size = view.getUint32(at + 4, true);
    if (text(at) === "fmt ") {
      if (view.getUint16(at + 8, true) !== 1) return undefined; // PCM only
      fmt = {
        channels: view.getUint16(at + 10, true),
        sampleRate: view.getUint32(at + 12, true),
        bits: view.getUint16(at + 22, true),
      };
    } else if (text(at) === "data" && fmt) {
      const frames = Math.min(size, bytes.length - at - 8) / (fmt.channels * fmt.bits / 8);
      return { sampleRate: fmt.sampleRate, channels: fmt.channels, seconds: frames / fmt.sampleRate };
    }
    at += 8 + size + (size % 2);
  }
  return undefined;
}
