/**
 * Errors as HTTP answers: {@linkcode HttpError} carries a status, {@linkcode jsonError} writes the
 * `{error}` body every function answers with, and {@linkcode catchErrors} turns anything thrown into one.
 * @module
 */
import type { Middleware } from "./compose.ts";

/** An error that knows its HTTP status; {@linkcode catchErrors} turns it into a JSON response. */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: number,
    message: string,
    /** Extra JSON fields, e.g. `{ field: "prompt" }`. */
    readonly details: Record<string, unknown> = {},
    readonly headers: HeadersInit = {},
  ) {
    super(message);
  }
}

/** Returns a JSON response `{ error, ...details }` with the given status. */
export function jsonError(
  status: number,
  message: string,
  details: Record<string, unknown> = {},
  headers: HeadersInit = {},
): Response {
  return Response.json({ error: message, ...details }, { status, headers });
}

/**
 * Turns any thrown error into a JSON error response.
 * An {@linkcode HttpError} keeps its status and message; anything else is logged and becomes a 500
 * whose message reveals nothing.
 */
export const catchErrors: Middleware = async (req, next) => {
  try {
    return await next(req);
  } catch (error) {
    if (error instanceof HttpError) {
      return jsonError(error.status, error.message, error.details, error.headers);
    }
    console.error("unhandled error:", error instanceof Error ? error.name : typeof error);
    return jsonError(500, "Internal error");
  }
};
