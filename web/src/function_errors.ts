/**
 * Turns a function's error answer (status, JSON `{error, field?, limit?, retry_after_seconds?}`
 * and `Retry-After`) into one readable sentence for the page.
 *
 * @module
 */
import { formatSeconds } from "./rate_limit.ts";

/** A function's error, read from its response. */
export interface FunctionError {
  status: number;
  /** The message a person reads. */
  message: string;
  /** The request field at fault (400), to highlight it. */
  field?: string;
  /** Seconds to wait before trying again (429, 503), when the server said. */
  retryAfterSeconds?: number;
}

/** Field names as the form labels them. */
const FIELD_LABELS: Record<string, string> = {
  prompt: "Prompt",
  negative_prompt: "Negative prompt",
  width: "Width",
  height: "Height",
  num_inference_steps: "Steps",
  guidance_scale: "Guidance scale",
  seed: "Seed",
};

/** Reads an error response (it consumes the body); throws nothing. */
export async function readFunctionError(res: Response): Promise<FunctionError> {
  let body: Record<string, unknown> = {};
  try {
    const parsed = await res.json();
    if (parsed && typeof parsed === "object") body = parsed;
  } catch { /* not JSON: the status alone speaks */ }
  return describeFunctionError(res.status, body, res.headers.get("retry-after"));
}

/** Describes an error from its parts; throws nothing. */
export function describeFunctionError(
  status: number,
  body: Record<string, unknown>,
  retryAfterHeader: string | null = null,
): FunctionError {
  const error = typeof body.error === "string" && body.error ? body.error : undefined;
  const field = typeof body.field === "string" ? body.field : undefined;
  const retryAfterSeconds = typeof body.retry_after_seconds === "number"
    ? body.retry_after_seconds
    : retryAfterHeader && /^\d+$/.test(retryAfterHeader.trim())
    ? Number(retryAfterHeader)
    : undefined;
  const wait = retryAfterSeconds !== undefined
    ? ` Try again in ${formatSeconds(retryAfterSeconds)}.`
    : " Try again later.";
  let message: string;
  switch (status) {
    case 400:
      // The function's message starts with the field's name ("width must be …"): say it as the form labels it.
      message = field
        ? error?.startsWith(`${field} `)
          ? `${FIELD_LABELS[field] ?? field} ${error.slice(field.length + 1)}`
          : `${FIELD_LABELS[field] ?? field}: ${error ?? "invalid value"}`
        : error ?? "The request was refused.";
      break;
    case 401:
      message = `You are not signed in, or your session has expired (${error ?? "unauthorized"}). Sign in again.`;
      break;
    case 429:
      message = body.limit === "units_per_day"
        ? `You have used today's quota.${wait}`
        : body.limit === "requests_per_minute"
        ? `Too many requests this minute.${wait}`
        : `Too many requests (${error ?? "rate limited"}).${wait}`;
      break;
    case 503:
      message = `The model is busy or unavailable (${error ?? "service unavailable"}).${wait}`;
      break;
    case 504:
      message = "The model took too long to answer. Try again.";
      break;
    case 502:
      message = `The model provider refused the call: ${error ?? "bad gateway"}.`;
      break;
    case 413:
      message = "The request is too large.";
      break;
    default:
      message = `Error ${status}: ${error ?? "the function failed"}.`;
  }
  return { status, message, field, retryAfterSeconds };
}
