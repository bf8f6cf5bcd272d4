/**
 * Handlers composed from small middlewares, in the manner of Hono, so each concern (CORS, method,
 * error shape, quota) is one named piece instead of a branch in a long `if` chain.
 * @module
 */
import { jsonError } from "./errors.ts";

/** A request handler, as `Deno.serve` takes it. */
export type Handler = (req: Request) => Promise<Response>;

/** Wraps a handler with one concern and passes the request on. */
export type Middleware = (req: Request, next: Handler) => Promise<Response>;

/** Composes middlewares around a final handler; the first middleware runs outermost. */
export function compose(...pieces: [...Middleware[], Handler]): Handler {
  const handler = pieces.at(-1) as Handler;
  const middlewares = pieces.slice(0, -1) as Middleware[];
  return middlewares.reduceRight<Handler>((next, mw) => (req) => mw(req, next), handler);
}

/** Answers 405 with an `Allow` header for any method not listed. `OPTIONS` is left to CORS. */
export function allowMethods(...methods: string[]): Middleware {
  const allow = methods.join(", ");
  return (req, next) =>
    methods.includes(req.method) ? next(req) : Promise.resolve(
      jsonError(405, `Method ${req.method} is not allowed; use ${allow}`, {}, { Allow: allow }),
    );
}
