/**
 * The one place that talks to Hugging Face.
 *
 * Every call goes through {@linkcode Hf.run}, which adds what the client lacks: a timeout per
 * attempt, bounded retries with backoff (the client's own retry loops on 503 forever with no
 * delay, so it is always off), a shared pause when the upstream asks everyone to slow down, a
 * concurrency limit, and one error mapping. Tasks are thin functions on top of `run`, so a new
 * task, a fallback chain or a cache wraps `run` instead of rewriting it.
 * @module
 */
import {
  InferenceClient,
  type InferenceClient as InferenceClientType,
  InferenceClientProviderOutputError,
  type InferenceProviderOrPolicy,
  type Options,
} from "npm:@huggingface/inference@4.13.30";
import type { HfConfig } from "./config.ts";
import { base64Stream, dataUrlStream } from "./data_url.ts";
import { bodyLength, HttpError } from "../http/mod.ts";
import { classifyHfError, type HfFailure, mapHfError } from "./errors.ts";
import { backoffDelay, sleep } from "./retry.ts";
import { createSemaphore } from "../runtime/mod.ts";

// The least time worth giving a retry (capped by the per-attempt timeout).
const MIN_ATTEMPT_MS = 1000;

/** Where and how one call reaches its model: `endpointUrl` or `provider`, never both. */
export interface CallTarget {
  model: string;
  endpointUrl?: string;
  provider?: InferenceProviderOrPolicy;
}

/** Options handed to each client call; `fetch` observes the response for retry hints. */
export type CallOptions = Options & { retry_on_error: false; signal: AbortSignal; fetch: typeof fetch };

/** One client call, retried by {@linkcode Hf.run} as a whole. */
export type HfCall<T> = (client: InferenceClientType, target: CallTarget, options: CallOptions) => Promise<T>;

/** A configured Hugging Face module. */
export interface Hf {
  readonly config: HfConfig;
  /**
   * Runs `call` against `model` with a timeout per attempt, bounded retries on 5xx and a total
   * deadline.
   * @throws {HttpError} mapped from the last failure (see `errors.ts`); an abort of `signal`
   * rejects with its reason.
   */
  run<T>(model: string, call: HfCall<T>, signal?: AbortSignal): Promise<T>;
}

/**
 * A pause shared beyond this instance (e.g. recorded in the database): `wait` resolves when calls
 * may go out, `pause` records one the upstream asked for. Either may throw; a failure is logged
 * and the call goes on under the instance's own pause.
 */
export interface HfGate {
  wait(signal?: AbortSignal): Promise<void>;
  pause(untilMs: number, status: number): Promise<void>;
}

/** Test seams: the upstream `fetch`, and randomness for jitter; `gate` shares pauses across instances. */
export interface HfDeps {
  fetch?: typeof fetch;
  random?: () => number;
  gate?: HfGate;
}

/** Builds an {@linkcode Hf} from its configuration. */
export function createHf(config: HfConfig, deps: HfDeps = {}): Hf {
  const client = new InferenceClient(config.accessToken);
  const baseFetch = deps.fetch ?? fetch;
  const random = deps.random ?? Math.random;
  const slots = createSemaphore(config.maxConcurrency);
  // When the upstream says "slow down" (429, or 503 with a hint), every call waits until then.
  let pause = { until: 0, status: 503 };

  const targetFor = (model: string): CallTarget =>
    config.baseUrl
      ? { model, endpointUrl: `${config.baseUrl}/hf-inference/models/${model}` }
      : { model, provider: config.provider };

  async function run<T>(model: string, call: HfCall<T>, signal?: AbortSignal): Promise<T> {
    const deadline = Date.now() + config.deadlineMs;
    const target = targetFor(model);
    for (let attempt = 1;; attempt++) {
      if (pause.until > Date.now()) {
        // A pause that outlasts the deadline cannot end in success: say so now, without a call.
        if (pause.until >= deadline) throw pausedError(pause, model);
        await sleep(pause.until - Date.now(), signal);
      }
      if (deps.gate) await deps.gate.wait(signal).catch((e) => gateFailed(e, signal));
      const observed: { headers?: Headers } = {};
      let failure: HfFailure;
      let error: unknown;
      const release = await slots.acquire();
      const attemptSignal = abortAfter(Math.max(1, Math.min(config.timeoutMs, deadline - Date.now())), signal);
      try {
        return await call(client, target, {
          retry_on_error: false,
          signal: attemptSignal.signal,
          fetch: observingFetch(baseFetch, observed),
        });
      } catch (thrown) {
        error = thrown;
        failure = classifyHfError(thrown, observed.headers);
      } finally {
        attemptSignal.clear();
        release();
      }
      if (failure.retryAfterMs !== undefined && (failure.upstreamStatus === 429 || failure.upstreamStatus === 503)) {
        const until = Date.now() + failure.retryAfterMs;
        if (until > pause.until) pause = { until, status: failure.upstreamStatus };
        if (deps.gate) await deps.gate.pause(until, failure.upstreamStatus).catch((e) => gateFailed(e));
      }
      const delay = failure.retryAfterMs ?? backoffDelay(attempt, config.retryBaseMs, config.retryMaxDelayMs, random);
      // A retry needs time to answer: one cut short by the deadline may still be served (and
      // billed) upstream, only to be thrown away here.
      const retryNeeds = delay + Math.min(config.timeoutMs, MIN_ATTEMPT_MS);
      const giveUp = !failure.retryable || attempt >= config.maxAttempts || Date.now() + retryNeeds > deadline ||
        signal?.aborted === true;
      logFailure(model, attempt, failure, giveUp);
      if (giveUp) throw mapHfError(error, failure, { model, redact: [config.accessToken] });
      await sleep(delay, signal);
    }
  }

  return { config, run };
}

/** Generates an image; the body streams straight from the upstream when it sends image bytes. */
export function textToImage(
  hf: Hf,
  input: { prompt: string; parameters?: Record<string, unknown> },
  signal?: AbortSignal,
  model: string = hf.config.textToImageModel,
): Promise<{ body: ReadableStream<Uint8Array> | Blob; contentType: string; contentLength?: number }> {
  return hf.run(model, async (client, target, options) => {
    // The client buffers the image into a Blob before handing it over, which costs a third of
    // the throughput of a pass-through; so keep the upstream body and give the client an empty one.
    let streamed: Response | undefined;
    const fetchKeepingImage: typeof fetch = async (url, init) => {
      const res = await options.fetch(url, init);
      if (res.ok && res.headers.get("content-type")?.startsWith("image/")) {
        streamed = res;
        return new Response(null, { status: res.status, headers: res.headers });
      }
      return res;
    };
    const blob = await client.textToImage(
      { ...target, inputs: input.prompt, parameters: input.parameters },
      { ...options, fetch: fetchKeepingImage, outputType: "blob" },
    );
    if (streamed?.body) {
      return {
        body: streamed.body,
        contentType: streamed.headers.get("content-type")!,
        contentLength: bodyLength(streamed),
      };
    }
    if (!blob.type.startsWith("image/")) {
      throw new InferenceClientProviderOutputError(`expected an image, got ${blob.type || "no content type"}`);
    }
    return { body: blob, contentType: blob.type };
  }, signal);
}

function gateFailed(error: unknown, signal?: AbortSignal): void {
  if (signal?.aborted) throw signal.reason;
  console.warn(`shared pause unavailable: ${(error as Error)?.message ?? error}`);
}

function pausedError(pause: { until: number; status: number }, model: string): HttpError {
  const retryAfter = { "Retry-After": String(Math.ceil((pause.until - Date.now()) / 1000)) };
  return pause.status === 429
    ? new HttpError(429, "Hugging Face rate limit reached; retry later", {}, retryAfter)
    : new HttpError(503, `Model ${model} is loading or unavailable; retry later`, {}, retryAfter);
}

/**
 * Returns a signal that aborts with a `TimeoutError` after `ms`, or when `parent` aborts; `clear`
 * disarms it. (`AbortSignal.timeout` cannot be disarmed, so under load its timers pile up.)
 */
function abortAfter(ms: number, parent?: AbortSignal): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException("Timed out", "TimeoutError")), ms);
  const onAbort = () => controller.abort(parent!.reason);
  if (parent?.aborted) onAbort();
  else parent?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    clear() {
      clearTimeout(timer);
      parent?.removeEventListener("abort", onAbort);
    },
  };
}

/** Returns a fetch that records the response headers, which the client's errors do not keep. */
function observingFetch(base: typeof fetch, observed: { headers?: Headers }): typeof fetch {
  return async (url, init) => {
    const res = await base(url, init);
    observed.headers = res.headers;
    return res;
  };
}

function logFailure(model: string, attempt: number, failure: HfFailure, final: boolean) {
  // Status and timing only: request headers (and so the token) are never logged.
  console.warn(
    `hf ${model}: attempt ${attempt} failed` +
      (failure.upstreamStatus ? ` with ${failure.upstreamStatus}` : failure.timedOut ? " by timeout" : "") +
      (final ? ", giving up" : ", retrying"),
  );
}

/** The instruction a vision-language model is given in `chat` caption mode. */
export const CAPTION_PROMPT =
  "Write one short sentence that describes this image, as alt text. Reply with the sentence only.";

// Longest caption kept; a model that rambles is cut, not rejected.
const MAX_CAPTION_LENGTH = 1000;

/** Image bytes held once, in one array (a Blob's bytes live outside the JS heap, unseen by its GC). */
export interface ImageBytes {
  bytes: Uint8Array;
  type: string;
}

/** An image to caption: its bytes, or a URL the provider fetches it from (e.g. a signed Storage URL). */
export type CaptionSource = Blob | ImageBytes | { url: string };

/**
 * Captions an image with `hf.config.imageToTextModel`, by the image-to-text task (bytes only) or by
 * chat completion with the image as a URL or a data URL, per `hf.config.captionMode`. Bytes are
 * streamed (a data URL base64-encoded chunk by chunk), so the image is held once, never as strings.
 * @throws {HttpError} mapped from the upstream failure; 502 when the answer holds no caption.
 * @throws {TypeError} for a URL source in image-to-text mode (that task takes bytes).
 */
export function captionImage(hf: Hf, image: CaptionSource, signal?: AbortSignal): Promise<string> {
  const { captionMode, imageToTextModel } = hf.config;
  const bytes = "url" in image ? undefined : image as Blob | ImageBytes;
  if (captionMode === "image-to-text" && !bytes) {
    throw new TypeError("image-to-text mode needs the image bytes, not a URL");
  }
  return hf.run(imageToTextModel, async (client, target, options) => {
    let text: string | undefined;
    if (captionMode === "image-to-text") {
      // The client sends `data` as the body; a stand-in Blob keeps the image out of the blob store.
      const data = bytes instanceof Blob ? bytes : new Blob([], { type: bytes!.type });
      const fetchFn = acceptingCaptionArrays(
        bytes instanceof Blob ? options.fetch : sendingBytes(options.fetch, bytes!),
      );
      const output = await client.imageToText({ ...target, data }, { ...options, fetch: fetchFn });
      text = output.generated_text;
    } else {
      // The client builds the JSON body as one string; give it a marker and stream the image in its place.
      const marker = bytes ? `caption-image-${crypto.randomUUID()}` : (image as { url: string }).url;
      const output = await client.chatCompletion({
        ...target,
        max_tokens: 120,
        messages: [{
          role: "user",
          content: [
            { type: "text", text: CAPTION_PROMPT },
            { type: "image_url", image_url: { url: marker } },
          ],
        }],
      }, bytes ? { ...options, fetch: streamingDataUrl(options.fetch, marker, bytes) } : options);
      text = output.choices?.[0]?.message?.content ?? undefined;
    }
    const caption = text?.replace(/\s+/g, " ").trim().slice(0, MAX_CAPTION_LENGTH);
    if (!caption) throw new InferenceClientProviderOutputError("the model returned no caption");
    return caption;
  }, signal);
}

// A multiple of 3, so base64 encodes each chunk whole, with no bytes carried over (and copied) to the next.
const CHUNK_BYTES = 255 * 1024;

/** The bytes of a Blob or an {@linkcode ImageBytes} as a stream of chunks that share its memory. */
function byteStream(source: Blob | ImageBytes): ReadableStream<Uint8Array> {
  if (source instanceof Blob) return source.stream();
  const { bytes } = source;
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(at, at += CHUNK_BYTES));
    },
  }, { highWaterMark: 0 });
}

/** Returns a fetch that sends the media's bytes, streamed, as the body with its content type; throws nothing itself. */
export function sendingBytes(base: typeof fetch, image: ImageBytes): typeof fetch {
  return (url, init) => {
    const headers = new Headers(init?.headers);
    headers.set("content-type", image.type);
    return base(url, { ...init, headers, body: byteStream(image) });
  };
}

/** Returns a fetch that sends the JSON body with `marker` replaced by the image's data URL, streamed. */
function streamingDataUrl(base: typeof fetch, marker: string, image: Blob | ImageBytes): typeof fetch {
  return replacingInJson(base, marker, () => dataUrlStream(byteStream(image), image.type));
}

/**
 * The media for a client call that base64-encodes it into its JSON body itself: a small stand-in Blob
 * for the client, and a fetch that streams the media's base64 in the place of the stand-in's, so the
 * media never exists as a base64 string and a JSON string at once. Throws nothing itself.
 */
export function sendingAsBase64(base: typeof fetch, media: ImageBytes): { inputs: Blob; fetch: typeof fetch } {
  const standIn = crypto.getRandomValues(new Uint8Array(48)); // a multiple of 3: its base64 has no padding
  const marker = btoa(String.fromCharCode(...standIn));
  return {
    inputs: new Blob([standIn], { type: media.type }),
    fetch: replacingInJson(base, marker, () => base64Stream(byteStream(media))),
  };
}

/** Returns a fetch that sends the JSON body with `marker` replaced by what `stream` yields. */
function replacingInJson(
  base: typeof fetch,
  marker: string,
  stream: () => ReadableStream<Uint8Array>,
): typeof fetch {
  return (url, init) => {
    const json = String(init?.body ?? "");
    const at = json.indexOf(marker);
    if (at < 0) return base(url, init);
    const encoder = new TextEncoder();
    const parts: (Uint8Array | ReadableStream<Uint8Array>)[] = [
      encoder.encode(json.slice(0, at)),
      stream(),
      encoder.encode(json.slice(at + marker.length)),
    ];
    return base(url, { ...init, body: concatStreams(parts) });
  };
}

/** One stream of byte arrays and streams, in order. */
function concatStreams(parts: (Uint8Array | ReadableStream<Uint8Array>)[]): ReadableStream<Uint8Array> {
  let index = 0;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (index < parts.length) {
        const part = parts[index];
        if (part instanceof Uint8Array) {
          index++;
          controller.enqueue(part);
          return;
        }
        reader ??= part.getReader();
        const { value, done } = await reader.read();
        if (!done) return controller.enqueue(value);
        reader = undefined;
        index++;
      }
      controller.close();
    },
    cancel(reason) {
      return reader?.cancel(reason);
    },
  });
}

/**
 * The endpoint answers `{"generated_text"}` or `[{"generated_text"}]` depending on the model, and
 * the pinned client accepts only the object; unwrap a one-element array before it looks.
 */
function acceptingCaptionArrays(base: typeof fetch): typeof fetch {
  return async (url, init) => {
    const res = await base(url, init);
    if (!res.ok || !res.headers.get("content-type")?.startsWith("application/json")) return res;
    const body = await res.json();
    const unwrapped = Array.isArray(body) && body.length > 0 ? body[0] : body;
    return Response.json(unwrapped, { status: res.status });
  };
}
