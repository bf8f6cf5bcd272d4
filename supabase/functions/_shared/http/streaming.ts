/**
 * Streaming an upstream answer to the caller as it arrives, while the Hugging Face client still
 * checks the status and maps errors: the client is handed an empty body, the caller the real one.
 * @module
 */

/** A fetch for the client that keeps a successful answer of a wanted content type for streaming. */
export interface KeptBody {
  fetch: typeof fetch;
  /** The kept upstream answer, once the client's call has returned. */
  kept(): Response | undefined;
}

/** Wraps `base` so a 2xx answer whose content type passes `wanted` is kept, and the client sees it empty. */
export function keepingBody(base: typeof fetch, wanted: (contentType: string) => boolean): KeptBody {
  let kept: Response | undefined;
  return {
    fetch: async (url, init) => {
      const res = await base(url, init);
      if (res.ok && res.body && wanted(res.headers.get("content-type") ?? "")) {
        kept = res;
        return new Response(null, { status: res.status, headers: res.headers });
      }
      return res;
    },
    kept: () => kept,
  };
}

const DONE = "data: [DONE]";
const encoder = new TextEncoder();

/**
 * Passes server-sent events through unchanged, chunk by chunk, and ends the stream with
 * `data: [DONE]` when the upstream did not send it (some providers end without it). A pull
 * source rather than a TransformStream: `pipeThrough` costs several promises per chunk.
 */
export function endingWithDone(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  // Only the end of the stream matters: keep the last two chunks, and decode them once, at the end.
  let previous: Uint8Array | undefined;
  let last: Uint8Array | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await reader.read();
      if (!done) {
        controller.enqueue(value);
        [previous, last] = [last, value];
        return;
      }
      const decoder = new TextDecoder();
      const tail = (previous ? decoder.decode(previous, { stream: true }) : "") + (last ? decoder.decode(last) : "");
      if (!tail.trimEnd().endsWith(DONE)) {
        controller.enqueue(encoder.encode(`${tail === "" || tail.endsWith("\n\n") ? "" : "\n\n"}${DONE}\n\n`));
      }
      controller.close();
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/** The byte length of `res`'s body as it reaches the reader, when the headers say it; never throws. */
export function bodyLength(res: Response): number | undefined {
  // The length holds only for a body fetch did not decompress.
  if (res.headers.has("content-encoding")) return undefined;
  const length = Number(res.headers.get("content-length") ?? NaN);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}
