/**
 * A real PostgreSQL with the project's migrations behind the Storage and PostgREST stand-ins, for
 * the result-cache tests, and a counting upstream.
 * @module
 */
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import { type Stack, startStack } from "../../stack/stack.ts";
import { client, freePort, serveApi } from "../../stack/testing.ts";
import { createSupabaseCacheStore } from "../../../supabase/functions/_shared/cache/store.ts";
import {
  createResultCache,
  type ResultCache,
  type ResultCacheOptions,
} from "../../../supabase/functions/_shared/cache/result_cache.ts";

/** A running stack and ways to reach it. */
export interface CacheStack {
  stack: Stack;
  /** supabase-js with the service key, as a function has it. */
  admin: SupabaseClient;
  /** A cache as one function instance has it (each call: a new instance with its own memory). */
  newCache(options?: ResultCacheOptions): ResultCache;
}

/** Starts a stack, runs `fn`, and stops the stack whatever happens. */
export async function withCacheStack(fn: (s: CacheStack) => Promise<void>): Promise<void> {
  const port = freePort();
  const stack = await startStack({ apiPort: port, dbPort: freePort() });
  const server = serveApi(stack, port);
  try {
    await fn({
      stack,
      admin: client(stack.apiUrl, stack.serviceRoleKey),
      newCache: (options) =>
        createResultCache(createSupabaseCacheStore(client(stack.apiUrl, stack.serviceRoleKey)), options),
    });
  } finally {
    await server.shutdown();
    await stack.stop();
  }
}

/** An upstream that counts its calls and answers `body` with `contentType` after `delayMs`. */
export function countingUpstream(
  body: () => BodyInit,
  { contentType = "application/json", delayMs = 0, status = 200, model = "org/model" } = {},
) {
  const upstream = {
    calls: 0,
    produce: async () => {
      upstream.calls++;
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      return new Response(body(), { status, headers: { "content-type": contentType, "x-model": model } });
    },
  };
  return upstream;
}
