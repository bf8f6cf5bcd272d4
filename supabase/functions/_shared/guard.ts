/**
 * The check every paid route runs before it does anything: by default, a valid Supabase JWT.
 * (A quota meter replaces it with one that also authorises and counts.)
 * @module
 */
import type { BearerVerifier } from "./auth.ts";
import type { Middleware } from "./http.ts";

/** A middleware that lets a request through only with a valid bearer JWT (401 otherwise). */
export function bearerGuard(verifier: () => BearerVerifier): Middleware {
  return async (req, next) => {
    await verifier()(req);
    return next(req);
  };
}
