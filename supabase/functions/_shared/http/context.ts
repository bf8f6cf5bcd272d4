/**
 * Values a middleware hands to the pieces after it (Hono's `c.set`/`c.get`): the caller one piece
 * identified, the input another validated. Each is kept beside the request object it belongs to, so
 * the `(req, next)` signature stays as it is and nothing outlives the request.
 * @module
 */

/** One named value carried with a request. */
export interface RequestValue<T> {
  /** Keeps `value` for `req`. */
  set(req: Request, value: T): void;
  /**
   * Returns the value kept for `req`.
   * @throws {Error} when none was kept: the middleware that sets it is missing before this piece.
   */
  get(req: Request): T;
  /** Returns the value kept for `req`, or undefined. */
  find(req: Request): T | undefined;
}

/** Creates a {@linkcode RequestValue}; `name` is what a missing value's error names. */
export function requestValue<T>(name: string): RequestValue<T> {
  const values = new WeakMap<Request, T>();
  return {
    set: (req, value) => void values.set(req, value),
    get(req) {
      if (!values.has(req)) throw new Error(`no ${name} for this request: a middleware that sets it must run first`);
      return values.get(req)!;
    },
    find: (req) => values.get(req),
  };
}
