/**
 * The result cache: keys, the policy of what may be cached, and the store behind it.
 * @module
 */
export { cachedInference } from "./cached_inference.ts";
export { type CacheInput, cacheKey, sha256Hex } from "./key.ts";
export { createResultCache, type ResultCache } from "./result_cache.ts";
export { type CacheStore, createSupabaseCacheStore } from "./store.ts";
