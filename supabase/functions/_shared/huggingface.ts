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
import type { HfConfig } from "./hf_config.ts";
import { HttpError } from "./http.ts";
import { classifyHfError, type HfFailure, mapHfError } from "./hf_errors.ts";
import { backoffDelay, sleep } from "./retry.ts";
import { createSemaphore } from "./semaphore.ts";

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
   * @throws {HttpError} mapped from the last failure (see `hf_errors.ts`); an abort of `signal`
   * rejects with its reason.
   */
  run<T>(model: string, call: HfCall<T>, signal?: AbortSignal): Promise<T>;
}

/** Test seams: the upstream `fetch`, and randomness for jitter. */
export interface HfDeps {
  fetch?: typeof fetch;
  random?: () => number;
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
): Promise<{ body: ReadableStream<Uint8Array> | Blob; contentType: string; contentLength?: number }> {
  return hf.run(hf.config.textToImageModel, async (client, target, options) => {
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
      // The length holds only for a body fetch did not decompress.
      const length = streamed.headers.has("content-encoding")
        ? NaN
        : Number(streamed.headers.get("content-length") ?? NaN);
      return {
        body: streamed.body,
        contentType: streamed.headers.get("content-type")!,
        contentLength: Number.isSafeInteger(length) ? length : undefined,
      };
    }
    if (!blob.type.startsWith("image/")) {
      throw new InferenceClientProviderOutputError(`expected an image, got ${blob.type || "no content type"}`);
    }
    return { body: blob, contentType: blob.type };
  }, signal);
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

/**
 * Captions an image with `hf.config.imageToTextModel`, by the image-to-text task or by chat
 * completion with the image as a data URL, per `hf.config.captionMode`.
 * @throws {HttpError} mapped from the upstream failure; 502 when the answer holds no caption.
 */
export function captionImage(hf: Hf, image: Blob, signal?: AbortSignal): Promise<string> {
  const { captionMode, imageToTextModel } = hf.config;
  return hf.run(imageToTextModel, async (client, target, options) => {
    let text: string | undefined;
    if (captionMode === "image-to-text") {
      const output = await client.imageToText(
        { ...target, data: image },
        { ...options, fetch: acceptingCaptionArrays(options.fetch) },
      );
      text = output.generated_text;
    } else {
      const output = await client.chatCompletion({
        ...target,
        max_tokens: 120,
        messages: [{
          role: "user",
          content: [
            { type: "text", text: CAPTION_PROMPT },
            { type: "image_url", image_url: { url: await toDataUrl(image) } },
          ],
        }],
      }, options);
      text = output.choices?.[0]?.message?.content ?? undefined;
    }
    const caption = text?.replace(/\s+/g, " ").trim().slice(0, MAX_CAPTION_LENGTH);
    if (!caption) throw new InferenceClientProviderOutputError("the model returned no caption");
    return caption;
  }, signal);
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

/** Encodes a Blob as a `data:` URL, in chunks so a large image does not overflow the call stack. */
async function toDataUrl(blob: Blob): Promise<string> {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return `data:${blob.type || "application/octet-stream"};base64,${btoa(binary)}`;
}
