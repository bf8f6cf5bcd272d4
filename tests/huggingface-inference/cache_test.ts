/**
 * The result cache through the `huggingface-inference` handler, as the platform runs it: real
 * PostgreSQL with the migrations behind the PostgREST and Storage stand-ins, the real meter (RPC
 * store), the Hugging Face stand-in counting upstream calls. Hit and miss per cached task, what is
 * never cached, bypass, 0 units on a hit, coalescing within and across instances, and the
 * `text-to-image` function sharing the gateway's entries.
 */
import assert from "node:assert/strict";
import { createHandler } from "../../supabase/functions/huggingface-inference/handler.ts";
import { createHandler as createTextToImage } from "../../supabase/functions/text-to-image/handler.ts";
import { CACHE_RULES } from "../../supabase/functions/_shared/cache/policy.ts";
import { cacheIdle, createResultCache, type ResultCache } from "../../supabase/functions/_shared/cache/result_cache.ts";
import { createSupabaseCacheStore } from "../../supabase/functions/_shared/cache/store.ts";
import type { Handler } from "../../supabase/functions/_shared/http/mod.ts";
import { signUserToken } from "../stack/keys.ts";
import { client, waitFor } from "../stack/testing.ts";
import { makeWav } from "../support/audio.ts";
import { startFakeHf } from "../support/fake_hf.ts";
import { makePng } from "../support/images.ts";
import { createMemoryMeterStore } from "../support/memory_meter.ts";
import { LOCAL_JWT_SECRET, userToken } from "../support/tokens.ts";
import { withCacheStack } from "../shared/cache/helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const HF_TOKEN = "hf_cache_test_secret_token";
const URL_BASE = "http://functions.test/functions/v1/huggingface-inference";

type Body = { body: BodyInit; type: string };
const json = (value: unknown): Body => ({ body: JSON.stringify(value), type: "application/json" });

/** One request per cached task (every CACHE_RULES row the gateway serves), in a form that is cached. */
const CACHED: Record<string, () => Body | Promise<Body>> = {
  "summarization": () => json({ inputs: "The tower is 324 metres tall.", parameters: { truncation: "only_first" } }),
  "translation": () => json({ inputs: "Hello", parameters: { tgt_lang: "de" } }),
  "text-classification": () => json({ inputs: "What an awful day" }),
  "fill-mask": () => json({ inputs: "Paris is the [MASK] of France." }),
  "feature-extraction": () => json({ inputs: ["one", "two"] }),
  "text-generation": () => json({ inputs: "hi", temperature: 0 }),
  "text-to-image": () => json({ prompt: "a llama", seed: 42 }),
  "image-to-text": async () => ({ body: await makePng(20, 10), type: "image/png" }),
  "image-classification": async () => ({ body: await makePng(21, 10), type: "image/png" }),
  "object-detection": async () => ({ body: await makePng(22, 10), type: "image/png" }),
  "image-segmentation": async () => ({ body: await makePng(23, 10), type: "image/png" }),
  "automatic-speech-recognition": () => ({ body: makeWav(0.25), type: "audio/wav" }),
  "audio-classification": () => ({ body: makeWav(0.3), type: "audio/wav" }),
};

/** Requests the policy never caches, and why. */
const UNCACHED: [string, string, () => Body][] = [
  ["text-to-image", "no seed", () => json({ prompt: "a llama" })],
  ["text-generation", "sampled (no temperature 0)", () => json({ inputs: "hi" })],
  ["text-generation", "streamed", () => json({ inputs: "hi", temperature: 0, stream: true })],
  ["text-to-speech", "takes no seed", () => json({ inputs: "hello" })],
];

Deno.test("the gateway answers through the result cache", opts, (t) =>
  withCacheStack(async ({ stack }) => {
    const fake = startFakeHf({ token: HF_TOKEN });
    const env = {
      HUGGING_FACE_ACCESS_TOKEN: HF_TOKEN,
      HF_BASE_URL: fake.url,
      SUPABASE_URL: stack.apiUrl,
      SUPABASE_SERVICE_ROLE_KEY: stack.serviceRoleKey,
      SUPABASE_JWT_SECRET: stack.jwtSecret,
    };
    // An instance: its own memory (in-flight calls), the shared database; stores awaited by tests.
    const instance = (make: typeof createHandler = createHandler): { handler: Handler; cache: ResultCache } => {
      const cache = createResultCache(createSupabaseCacheStore(client(stack.apiUrl, stack.serviceRoleKey)));
      return { handler: make(env, { resultCache: cache }), cache };
    };
    // A user on an unlimited tier, so that many calls in a test step are never refused.
    const newUser = async () => {
      const id = crypto.randomUUID();
      await stack.sql`insert into inference.tiers values (${`t-${id}`}, null, null)`;
      await stack.sql`insert into inference.user_tiers values (${id}, ${`t-${id}`})`;
      return { id, token: await signUserToken({ sub: id }, stack.jwtSecret) };
    };
    const alice = await newUser();
    const call = async (
      h: Handler,
      task: string,
      { body, type }: Body,
      headers: HeadersInit = {},
      token = alice.token,
    ) => {
      const res = await h(
        new Request(`${URL_BASE}/${task}`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": type, ...headers },
          body,
        }),
      );
      return { res, bytes: new Uint8Array(await res.arrayBuffer()) };
    };
    const a = instance();

    try {
      await t.step("each cached task: a miss calls upstream, the same call again is a hit without one", async () => {
        const served = new Set(Object.keys(CACHED));
        assert.deepEqual(
          Object.keys(CACHE_RULES).filter((task) => !served.has(task)).sort(),
          ["chat-completion", "text-to-speech"],
          "a cached task without a hit/miss case",
        );
        for (const [task, body] of Object.entries(CACHED)) {
          const before = fake.seen.length;
          const miss = await call(a.handler, task, await body());
          assert.equal(miss.res.status, 200, `${task}: ${new TextDecoder().decode(miss.bytes)}`);
          assert.equal(miss.res.headers.get("x-cache"), "MISS", task);
          assert.equal(fake.seen.length, before + 1, `${task}: the miss called upstream once`);
          await cacheIdle(a.cache);
          const hit = await call(a.handler, task, await body());
          assert.equal(hit.res.status, 200, task);
          assert.equal(hit.res.headers.get("x-cache"), "HIT", task);
          assert.equal(hit.res.headers.get("content-type"), miss.res.headers.get("content-type"), task);
          assert.equal(hit.res.headers.get("x-model"), miss.res.headers.get("x-model"), task);
          assert.equal(hit.res.headers.get("cache-control"), "no-store", task);
          assert.deepEqual(hit.bytes, miss.bytes, `${task}: the hit is the miss's answer`);
          assert.equal(fake.seen.length, before + 1, `${task}: the hit called upstream`);
        }
      });

      await t.step("what the policy never caches goes upstream every time, without X-Cache", async () => {
        for (const [task, why, body] of UNCACHED) {
          const before = fake.seen.length;
          for (let i = 0; i < 2; i++) {
            const { res } = await call(a.handler, task, body());
            assert.equal(res.status, 200, `${task} (${why})`);
            assert.equal(res.headers.get("x-cache"), null, `${task} (${why})`);
            await cacheIdle(a.cache);
          }
          assert.equal(fake.seen.length, before + 2, `${task} (${why}) was answered from the cache`);
        }
      });

      await t.step(
        "a seeded image: another seed is another entry; the text-to-image function shares them",
        async () => {
          const before = fake.seen.length;
          const other = await call(a.handler, "text-to-image", json({ prompt: "a llama", seed: 43 }));
          assert.equal(other.res.headers.get("x-cache"), "MISS");
          assert.equal(fake.seen.length, before + 1);
          await cacheIdle(a.cache);
          // The function posts to its own URL; its task and key are the gateway's.
          const fn = instance(createTextToImage);
          const shared = await call(fn.handler, "text-to-image", json({ prompt: "a llama", seed: 43 }));
          assert.equal(shared.res.headers.get("x-cache"), "HIT");
          assert.equal(shared.res.headers.get("content-type"), "image/png");
          assert.deepEqual(shared.bytes, other.bytes);
          assert.equal(fake.seen.length, before + 1);
        },
      );

      await t.step("Cache-Control: no-cache skips the lookup but stores the fresh answer", async () => {
        const body = () => json({ inputs: "bypass me" });
        const before = fake.seen.length;
        const first = await call(a.handler, "summarization", body(), { "cache-control": "no-cache" });
        assert.equal(first.res.headers.get("x-cache"), "MISS");
        await cacheIdle(a.cache);
        const again = await call(a.handler, "summarization", body(), { "cache-control": "no-cache" });
        assert.equal(again.res.headers.get("x-cache"), "MISS", "no-cache was answered from the cache");
        await cacheIdle(a.cache);
        assert.equal(fake.seen.length, before + 2);
        const hit = await call(a.handler, "summarization", body());
        assert.equal(hit.res.headers.get("x-cache"), "HIT", "the bypassing call did not store");
        assert.equal(fake.seen.length, before + 2);
      });

      await t.step("a hit costs 0 units and is logged cache = 'hit'; a miss pays the task's cost", async () => {
        const body = () => json({ inputs: "metered text" });
        const bob = await newUser();
        await call(a.handler, "summarization", body(), {}, bob.token);
        await cacheIdle(a.cache);
        const hit = await call(a.handler, "summarization", body(), {}, bob.token);
        assert.equal(hit.res.headers.get("x-cache"), "HIT");
        const rows = await waitFor("two usage rows", async () => {
          const found = await stack.sql`
            select status, units, cache, model from public.inference_usage
             where user_id = ${bob.id} order by id`;
          return found.length >= 2 ? found : undefined;
        });
        assert.deepEqual(rows.map((r) => [r.status, r.units, r.cache, r.model]), [
          [200, 2, null, "facebook/bart-large-cnn"],
          [200, 0, "hit", "facebook/bart-large-cnn"],
        ]);
      });

      await t.step("20 identical parallel requests make 1 upstream call", async () => {
        const before = fake.seen.length;
        const results = await Promise.all(
          Array.from({ length: 20 }, () => call(a.handler, "summarization", json({ inputs: "twenty at once" }))),
        );
        assert.deepEqual(new Set(results.map((r) => r.res.status)), new Set([200]));
        assert.equal(results.filter((r) => r.res.headers.get("x-cache") === "MISS").length, 1);
        assert.equal(new Set(results.map((r) => new TextDecoder().decode(r.bytes))).size, 1);
        assert.equal(fake.seen.length, before + 1);
        await cacheIdle(a.cache);
      });

      await t.step("two instances against one database, called at once: 1 upstream call", async () => {
        const b = instance();
        const before = fake.seen.length;
        fake.enqueue({ delayMs: 300 });
        const [one, two] = await Promise.all([
          call(a.handler, "text-classification", json({ inputs: "two instances" })),
          call(b.handler, "text-classification", json({ inputs: "two instances" })),
        ]);
        assert.deepEqual([one.res.status, two.res.status], [200, 200]);
        assert.deepEqual(
          [one.res.headers.get("x-cache"), two.res.headers.get("x-cache")].sort(),
          ["HIT", "MISS"],
        );
        assert.deepEqual(one.bytes, two.bytes);
        assert.equal(fake.seen.length, before + 1);
        await Promise.all([cacheIdle(a.cache), cacheIdle(b.cache)]);
        // Both were served and metered (the usage is written after the answer, before the stack stops).
        await waitFor("the usage of both", async () => {
          const [row] = await stack.sql`
            select count(*)::int as n from public.inference_usage
             where user_id = ${alice.id} and task = 'text-classification'`;
          return row.n === 4;
        });
      });
    } finally {
      await cacheIdle(a.cache);
      await fake.stop();
    }
  }));

Deno.test("without SUPABASE_URL or a service key the gateway runs with no cache", opts, async () => {
  const fake = startFakeHf({ token: HF_TOKEN });
  try {
    const handler = createHandler({
      HUGGING_FACE_ACCESS_TOKEN: HF_TOKEN,
      HF_BASE_URL: fake.url,
      SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
    }, { meterStore: createMemoryMeterStore() });
    const token = await userToken();
    for (let i = 0; i < 2; i++) {
      const res = await handler(
        new Request(`${URL_BASE}/summarization`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ inputs: "no cache here" }),
        }),
      );
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-cache"), null);
      await res.body?.cancel();
    }
    assert.equal(fake.seen.length, 2);
  } finally {
    await fake.stop();
  }
});
