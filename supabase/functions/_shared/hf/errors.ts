/**
 * One mapping from whatever a Hugging Face call throws to an HTTP answer.
 *
 * | cause                                   | status                  |
 * | --------------------------------------- | ----------------------- |
 * | client input error, upstream 400/413/422 | 400                    |
 * | upstream 429                            | 429, with `Retry-After` |
 * | upstream 503 / model loading            | 503, with `Retry-After` |
 * | timeout                                 | 504                     |
 * | upstream auth, config, output, other    | 502                     |
 * @module
 */
import {
  InferenceClientHubApiError,
  InferenceClientInputError,
  InferenceClientProviderApiError,
  InferenceClientProviderOutputError,
} from "npm:@huggingface/inference@4.13.30";
import { HttpError } from "../http/mod.ts";
import { parseRetryAfter } from "./retry.ts";

/** What one failed attempt tells the retry loop. */
export interface HfFailure {
  /** The upstream HTTP status, when there was one. */
  upstreamStatus?: number;
  /** Worth another attempt: a 5xx. */
  retryable: boolean;
  /** The server's own hint (`Retry-After`, or `estimated_time` of a loading model), in ms. */
  retryAfterMs?: number;
  /** A timeout rather than an answer. */
  timedOut: boolean;
}

// When a 429 or 503 carries no hint, tell the caller to wait this long.
const DEFAULT_RETRY_AFTER_S = 10;

/** Classifies a thrown error; `headers` are the failed response's, when one arrived. */
export function classifyHfError(error: unknown, headers?: Headers): HfFailure {
  const timedOut = isTimeout(error);
  if (!(error instanceof InferenceClientProviderApiError || error instanceof InferenceClientHubApiError)) {
    return { retryable: false, timedOut };
  }
  const status = error.httpResponse.status;
  const hint = parseRetryAfter(headers?.get("retry-after")) ?? estimatedTimeMs(error.httpResponse.body);
  return {
    upstreamStatus: status,
    retryable: status >= 500 && status <= 599,
    retryAfterMs: hint,
    timedOut: false,
  };
}

/** The {@linkcode HttpError} of a failed Hugging Face call; `upstreamStatus` lets a fallback chain decide. */
export class HfHttpError extends HttpError {
  override name = "HfHttpError";
  constructor(mapped: HttpError, readonly upstreamStatus: number | undefined) {
    super(mapped.status, mapped.message, mapped.details, mapped.headers);
  }
}

/**
 * Maps a thrown error to the {@linkcode HttpError} the caller should see.
 * The message never contains the request's headers, so never the token; `redact` strings are
 * removed as a second guard.
 */
export function mapHfError(
  error: unknown,
  failure: HfFailure,
  context: { model: string; redact: string[] },
): HttpError {
  const mapped = toHttpError(error, failure, context.model);
  const clean = (text: string) => context.redact.reduce((t, s) => (s ? t.replaceAll(s, "[redacted]") : t), text);
  return new HfHttpError(
    new HttpError(mapped.status, clean(mapped.message), mapped.details, mapped.headers),
    failure.upstreamStatus,
  );
}

function toHttpError(error: unknown, failure: HfFailure, model: string): HttpError {
  if (failure.timedOut) return new HttpError(504, `Hugging Face did not answer in time (model ${model})`);
  if (error instanceof InferenceClientInputError) {
    return new HttpError(400, `Invalid request for Hugging Face: ${error.message}`);
  }
  if (error instanceof InferenceClientProviderOutputError) {
    return new HttpError(502, `Hugging Face returned an unexpected response (model ${model})`);
  }
  const status = failure.upstreamStatus;
  if (status === undefined) {
    if (error instanceof TypeError) return new HttpError(502, "Could not reach Hugging Face");
    return new HttpError(502, `Hugging Face call failed (model ${model})`);
  }
  const upstream = upstreamMessage(error);
  const retryAfter = () => ({
    "Retry-After": String(Math.ceil((failure.retryAfterMs ?? DEFAULT_RETRY_AFTER_S * 1000) / 1000)),
  });
  switch (status) {
    case 400:
    case 413:
    case 422:
      return new HttpError(400, `Hugging Face rejected the input${upstream ? `: ${upstream}` : ""}`);
    case 401:
    case 403:
      return new HttpError(502, "Hugging Face rejected the access token; check HUGGING_FACE_ACCESS_TOKEN");
    case 402:
      return new HttpError(502, "Hugging Face credits are exhausted for this token");
    case 404:
      return new HttpError(502, `Model ${model} is not served by the configured provider`);
    case 410:
      return new HttpError(502, "The Hugging Face endpoint is gone (410); update HF_BASE_URL or the client");
    case 429:
      return new HttpError(429, "Hugging Face rate limit reached; retry later", {}, retryAfter());
    case 503:
      return new HttpError(
        503,
        `Model ${model} is loading or unavailable; retry later${upstream ? ` (${upstream})` : ""}`,
        {},
        retryAfter(),
      );
    default:
      return new HttpError(502, `Hugging Face answered ${status} (model ${model})`);
  }
}

function isTimeout(error: unknown): boolean {
  return error instanceof DOMException && error.name === "TimeoutError";
}

function estimatedTimeMs(body: unknown): number | undefined {
  const seconds = typeof body === "object" && body !== null
    ? (body as Record<string, unknown>).estimated_time
    : undefined;
  return typeof seconds === "number" && Number.isFinite(seconds) && seconds >= 0
    ? Math.round(seconds * 1000)
    : undefined;
}

// The upstream's own short explanation, e.g. "Model X is currently loading".
function upstreamMessage(error: unknown): string | undefined {
  if (!(error instanceof InferenceClientProviderApiError || error instanceof InferenceClientHubApiError)) {
    return undefined;
  }
  const body = error.httpResponse.body;
  const text = typeof body === "string" ? body : typeof body?.error === "string" ? body.error : undefined;
  return text?.slice(0, 300);
}
