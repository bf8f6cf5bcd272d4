/**
 * The gateway's result cache: built from the environment (the service key reaches the
 * `cache.*` RPCs and the private `inference-cache` bucket), and what of a validated task input
 * goes into the cache key. The task handler (`handler.ts`) answers through
 * {@linkcode cachedInference} with these.
 *
 * Without `SUPABASE_URL` and a service key (or with `HF_RESULT_CACHE=off`) the gateway runs with
 * no cache: a cache only saves money, so its absence must never fail a call.
 * @module
 */
import { createClient } from "npm:@supabase/supabase-js@2.119.0";
import { type CacheInput, createResultCache, createSupabaseCacheStore, type ResultCache } from "../cache/mod.ts";
import { ConfigError, type Env, envString } from "../runtime/mod.ts";
import { serviceKeyFromEnv } from "../identity/mod.ts";
import type { TaskInput } from "./table.ts";

/** Test seam: the cache to use (`null`: none), instead of the one the environment describes. */
export interface CacheDeps {
  resultCache?: ResultCache | null;
}

/**
 * Returns the result cache the environment describes, or undefined when it describes none
 * (`HF_RESULT_CACHE=off`, or no `SUPABASE_URL` or service key). Never throws.
 */
export function resultCacheFromEnv(env: Env, deps: CacheDeps = {}): ResultCache | undefined {
  if (deps.resultCache !== undefined) return deps.resultCache ?? undefined;
  if (envString(env, "HF_RESULT_CACHE")?.toLowerCase() === "off") return undefined;
  const url = envString(env, "SUPABASE_URL");
  let key: string;
  try {
    key = serviceKeyFromEnv(env);
  } catch (error) {
    if (error instanceof ConfigError) return undefined;
    throw error;
  }
  if (!url) return undefined;
  const db = createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
  return createResultCache(createSupabaseCacheStore(db));
}

/**
 * What a validated task input contributes to the cache key. JSON tasks: the text input (`inputs`)
 * as the input, every other field (prompt, messages, `seed`, `temperature`, `stream`, nested
 * `parameters`) as the parameters, so the policy sees the top-level fields it decides on. Media
 * tasks: the media's bytes as read (the raw body, or the Storage object downloaded with the
 * caller's JWT), which the key reduces to their SHA-256: the content, never the path, so a raw
 * body and any reference to the same bytes share one entry.
 */
export function cachePartsOf(
  input: TaskInput,
  mediaBytes?: Uint8Array,
): { parameters: Record<string, unknown>; input: CacheInput } {
  if (input.kind === "json") {
    const { inputs, ...parameters } = input.fields;
    return { parameters, input: { json: inputs ?? null } };
  }
  if (!mediaBytes) throw new TypeError("a media input needs its bytes for the cache key");
  return { parameters: input.parameters, input: { bytes: mediaBytes } };
}
