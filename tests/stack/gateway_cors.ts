/**
 * CORS as the platform's API gateway adds it in front of `/auth/v1`, `/rest/v1` and `/storage/v1`,
 * so a page served from another origin can use supabase-js. (`/functions/v1` preflights go to the
 * functions themselves, as on the platform.)
 *
 * @module
 */

const ALLOWED_METHODS = "GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS";
const EXPOSED_HEADERS = "Content-Range, Content-Location, Content-Profile, X-Supabase-Api-Version";

/** Answers a preflight, or runs `handle` and adds the CORS headers to its answer; throws what `handle` throws. */
export async function withGatewayCors(
  req: Request,
  handle: (req: Request) => Promise<Response>,
): Promise<Response> {
  const origin = req.headers.get("origin");
  if (req.method === "OPTIONS" && req.headers.has("access-control-request-method")) {
    return new Response(null, {
      status: 204,
      headers: {
        "Access-Control-Allow-Origin": origin ?? "*",
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": req.headers.get("access-control-request-headers") ?? "*",
        "Access-Control-Max-Age": "3600",
        "Vary": "Origin",
      },
    });
  }
  const res = await handle(req);
  if (!origin) return res;
  const headers = new Headers(res.headers);
  headers.set("Access-Control-Allow-Origin", origin);
  headers.set("Access-Control-Expose-Headers", EXPOSED_HEADERS);
  headers.append("Vary", "Origin");
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}
