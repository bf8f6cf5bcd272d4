/**
 * A guard for a known postgres.js 3.4.9 bug (porsager/postgres#1154, #1208): when the server
 * closes a connection while a small write is scheduled, `nextWrite` dereferences a null socket in
 * a `setImmediate` callback, an uncatchable error that kills the process. The query itself already
 * failed with CONNECTION_CLOSED and is retried by its caller, so the stray write can be dropped.
 * Test support only: the deployed functions do not use postgres.js.
 * @module
 */

let installed = false;

/** Installs the guard once per process; any other uncaught error still crashes as usual. */
export function guardPostgresJsNullSocket(): void {
  if (installed) return;
  installed = true;
  globalThis.addEventListener("error", (event) => {
    const error = event.error;
    if (
      error instanceof TypeError && /reading 'write'/.test(error.message) &&
      /postgres\/3\.4\.9\/src\/connection\.js/.test(error.stack ?? "")
    ) {
      event.preventDefault();
      console.warn("postgres.js: dropped a write on a closed connection (porsager/postgres#1154)");
    }
  });
}
