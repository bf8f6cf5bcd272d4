/**
 * The seam between a task handler and the result cache: decide by the policy table, derive the
 * key, and answer through {@linkcode withCache}, or call upstream directly when the call is not
 * cacheable.
 * @module
 */
import { type CacheInput, cacheKey } from "./key.ts";
import { cacheDecision, type CachePolicyOptions } from "./policy.ts";
import { type ResultCache, withCache } from "./result_cache.ts";

/** One inference call, as the task handler has parsed it. */
export interface InferenceCall {
  task: string;
  /** The model that will answer (after defaults and aliases are resolved). */
  model: string;
  parameters?: Record<string, unknown>;
  /** The text/JSON input, the input bytes, or the SHA-256 of a Storage object's content. */
  input: CacheInput;
  /** The caller's request headers (for `Cache-Control`). */
  headers: Headers;
  /** Headers every answer carries (added to hits, e.g. `Cache-Control: no-store`). */
  hitHeaders?: HeadersInit;
  signal?: AbortSignal;
}

/**
 * Answers a call through the cache when the policy allows it (`X-Cache: HIT` or `MISS`), else
 * runs `produce` untouched (no `X-Cache` header). `cache` may be undefined (no cache configured).
 * @throws what `produce` throws; a TypeError when the parameters or input are not plain JSON.
 */
export async function cachedInference(
  cache: ResultCache | undefined,
  call: InferenceCall,
  produce: () => Promise<Response>,
  policy: CachePolicyOptions = {},
): Promise<Response> {
  const decision = cacheDecision(call.task, call.model, call.parameters, call.headers, policy);
  if (!cache || !decision.cacheable) return await produce();
  const key = await cacheKey({ task: call.task, model: call.model, parameters: call.parameters, input: call.input });
  return await withCache(cache, {
    key,
    task: call.task,
    model: call.model,
    bypassLookup: decision.bypassLookup,
    hitHeaders: call.hitHeaders,
    signal: call.signal,
  }, produce);
}
