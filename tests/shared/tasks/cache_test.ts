/**
 * task_cache.ts: when the gateway has a result cache, and what of a task input goes into its key.
 */
import assert from "node:assert/strict";
import { cacheKey, sha256Hex } from "../../../supabase/functions/_shared/cache/key.ts";
import { cacheDecision } from "../../../supabase/functions/_shared/cache/policy.ts";
import { createResultCache } from "../../../supabase/functions/_shared/cache/result_cache.ts";
import { cachePartsOf, resultCacheFromEnv } from "../../../supabase/functions/_shared/tasks/cache.ts";
import type { CacheStore } from "../../../supabase/functions/_shared/cache/store.ts";

const CONFIGURED = { SUPABASE_URL: "http://127.0.0.1:1", SUPABASE_SERVICE_ROLE_KEY: "service-key" };

Deno.test("resultCacheFromEnv: a cache only with SUPABASE_URL and a service key, and not when turned off", () => {
  assert.ok(resultCacheFromEnv(CONFIGURED));
  assert.ok(
    resultCacheFromEnv({ SUPABASE_URL: "http://127.0.0.1:1", SUPABASE_SECRET_KEYS: '{"default":"sb_secret_x"}' }),
  );
  assert.equal(resultCacheFromEnv({}), undefined);
  assert.equal(resultCacheFromEnv({ SUPABASE_URL: "http://127.0.0.1:1" }), undefined);
  assert.equal(resultCacheFromEnv({ SUPABASE_SERVICE_ROLE_KEY: "service-key" }), undefined);
  assert.equal(resultCacheFromEnv({ ...CONFIGURED, HF_RESULT_CACHE: "OFF" }), undefined);
  // A broken key map is no cache, not a crash at boot.
  assert.equal(resultCacheFromEnv({ SUPABASE_URL: "http://127.0.0.1:1", SUPABASE_SECRET_KEYS: "{" }), undefined);
});

Deno.test("resultCacheFromEnv: an injected cache (or null for none) wins over the environment", () => {
  const injected = createResultCache({} as CacheStore);
  assert.equal(resultCacheFromEnv({}, { resultCache: injected }), injected);
  assert.equal(resultCacheFromEnv(CONFIGURED, { resultCache: null }), undefined);
});

Deno.test("cachePartsOf: a JSON task's inputs is the input, its other fields the parameters the policy reads", () => {
  const chat = cachePartsOf({ kind: "json", fields: { inputs: "hi", temperature: 0, stream: false } });
  assert.deepEqual(chat, { parameters: { temperature: 0, stream: false }, input: { json: "hi" } });
  assert.equal(cacheDecision("text-generation", "m", chat.parameters).cacheable, true);
  const streamed = cachePartsOf({ kind: "json", fields: { inputs: "hi", temperature: 0, stream: true } });
  assert.equal(cacheDecision("text-generation", "m", streamed.parameters).cacheable, false);
  const image = cachePartsOf({ kind: "json", fields: { prompt: "a llama", seed: 42 } });
  assert.deepEqual(image, { parameters: { prompt: "a llama", seed: 42 }, input: { json: null } });
  assert.equal(cacheDecision("text-to-image", "m", image.parameters).cacheable, true);
  const unseeded = cachePartsOf({ kind: "json", fields: { prompt: "a llama" } });
  assert.equal(cacheDecision("text-to-image", "m", unseeded.parameters).cacheable, false);
});

Deno.test("cachePartsOf: media is keyed by its content, the same key as its SHA-256", async () => {
  const bytes = new Uint8Array([137, 80, 78, 71, 1, 2, 3]);
  const parts = cachePartsOf(
    { kind: "media", media: { bytes, type: "image/png" }, parameters: { threshold: 0.5 } },
    bytes,
  );
  assert.deepEqual(parts.parameters, { threshold: 0.5 });
  const key = (input: Parameters<typeof cacheKey>[0]["input"]) =>
    cacheKey({ task: "image-classification", model: "m", parameters: parts.parameters, input });
  assert.equal(await key(parts.input), await key({ sha256: await sha256Hex(bytes) }));
  assert.notEqual(await key(parts.input), await key({ bytes: new Uint8Array([1]) }));
  assert.throws(() => cachePartsOf({ kind: "media", media: { bytes, type: "image/png" }, parameters: {} }), TypeError);
});
