/**
 * A guard for a known postgres.js 3.4.9 bug (porsager/postgres#1154, #1208): when the server
 * closes a connection while a write is pending on it (typically a transaction's next statement or
 * its ROLLBACK), `nextWrite` dereferences a null socket in a `setImmediate` callback, an
 * uncatchable error that kills the process. The query itself already failed with
 * CONNECTION_CLOSED, so the stray write can be dropped. The connection stays unusable afterwards,
 * which is why the API stand-ins use one connection per request (db_session.ts).
 * Test support only: the deployed functions do not use postgres.js.
 * @module
 */

let installed = false;

/** True for exactly that postgres.js throw (matched on message and stack, not on the type alone). */
export function isNullSocketWrite(err: unknown): boolean {
  if (!(err instanceof TypeError)) return false;
  const stack = err.stack ?? "";
  return /reading 'write'/.test(err.message) && stack.includes("nextWrite") &&
    /postgres[/\\]3\.4\.9[/\\]src[/\\]connection\.js/.test(stack);
}

/** Installs the guard once per process; any other uncaught error still crashes as usual. */
export function guardPostgresJsNullSocket(): void {
  if (installed) return;
  installed = true;
  const drop = (event: Event, error: unknown) => {
    if (!isNullSocketWrite(error)) return;
    event.preventDefault();
    console.warn("postgres.js: dropped a write on a closed connection (porsager/postgres#1154)");
  };
  globalThis.addEventListener("error", (e) => drop(e, e.error));
  // The same write can also fail synchronously inside a query's async handler.
  globalThis.addEventListener("unhandledrejection", (e) => drop(e, e.reason));
}
