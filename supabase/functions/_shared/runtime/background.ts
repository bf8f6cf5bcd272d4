/**
 * Work that goes on after the response has been sent.
 * @module
 */

type EdgeRuntimeGlobal = { EdgeRuntime?: { waitUntil(work: Promise<unknown>): void } };

/**
 * Lets `work` run on after the response: on Supabase, `EdgeRuntime.waitUntil` keeps the instance
 * alive until it ends; elsewhere (tests, `deno run`) it simply runs on. A failure is logged, never thrown.
 */
export function runInBackground(work: Promise<unknown>): void {
  const settled = work.catch((error) => console.error("background work failed:", error));
  (globalThis as EdgeRuntimeGlobal).EdgeRuntime?.waitUntil(settled);
}
