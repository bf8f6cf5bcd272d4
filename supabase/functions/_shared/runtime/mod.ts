/**
 * The runtime's pieces: configuration from the environment, work after the response
 * (`EdgeRuntime.waitUntil`), and the per-instance limits (a semaphore, a byte budget).
 * @module
 */
export { runInBackground } from "./background.ts";
export { type ByteBudget, createByteBudget } from "./byte_budget.ts";
export { ConfigError, configured, type Env, envInt, envString, requireEnv } from "./env.ts";
export { createSemaphore, type Semaphore } from "./semaphore.ts";
