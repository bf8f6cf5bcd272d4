/**
 * CORS for functions called with `fetch` from a browser.
 * @module
 */
import type { Middleware } from "./compose.ts";

/** The CORS headers sent on every response, errors included, so a browser can read the error. */
export const corsHeaders: Readonly<Record<string, string>> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
  "Access-Control-Allow-Methods": "POST, OPTIONS",
  "Access-Control-Max-Age": "86400",
  // A page can read only safelisted response headers unless they are exposed: the quota, the wait, the model, the cache.
  "Access-Control-Expose-Headers": "RateLimit, RateLimit-Policy, Retry-After, X-Model, X-Cache",
};

/** Answers the `OPTIONS` preflight and adds {@linkcode corsHeaders} to every other response. */
export const cors: Middleware = async (req, next) => {
  if (req.method === "OPTIONS") return new Response(null, { status: 204, headers: corsHeaders });
  const res = await next(req);
  try {
    for (const [name, value] of Object.entries(corsHeaders)) res.headers.set(name, value);
    return res;
  } catch {
    // A fetched Response has immutable headers: copy it instead.
    const headers = new Headers(res.headers);
    for (const [name, value] of Object.entries(corsHeaders)) headers.set(name, value);
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  }
};
