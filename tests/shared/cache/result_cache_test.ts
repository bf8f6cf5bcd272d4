/**
 * withCache against a real PostgreSQL with the real migrations, through supabase-js and the
 * PostgREST and Storage stand-ins: hit and miss, bypass, coalescing within and across instances,
 * what is not stored, and degrading to a plain call when the cache fails.
 */
import assert from "node:assert/strict";
import { cacheKey } from "../../../supabase/functions/_shared/cache/key.ts";
import { type CacheStore, createSupabaseCacheStore } from "../../../supabase/functions/_shared/cache/store.ts";
import { cacheIdle, createResultCache, withCache } from "../../../supabase/functions/_shared/cache/result_cache.ts";
import { client, freePort } from "../../stack/testing.ts";
import { makePng } from "../../support/images.ts";
import { countingUpstream, withCacheStack } from "./helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const MODEL = "org/model";

const keyOf = (text: string, task = "summarization") =>
  cacheKey({ task, model: MODEL, parameters: { max_length: 60 }, input: { json: text } });

Deno.test("withCache on a real database", opts, (t) =>
  withCacheStack(async ({ stack, admin, newCache }) => {
    await t.step("a repeated JSON call is a hit with no upstream call", async () => {
      const cache = newCache();
      const upstream = countingUpstream(() => JSON.stringify([{ summary_text: "short" }]));
      const call = { key: await keyOf("a long text"), task: "summarization", model: MODEL };
      const miss = await withCache(cache, call, upstream.produce);
      assert.equal(miss.headers.get("x-cache"), "MISS");
      assert.deepEqual(await miss.json(), [{ summary_text: "short" }]);
      await cacheIdle(cache);

      const hit = await withCache(cache, call, upstream.produce);
      assert.equal(hit.status, 200);
      assert.equal(hit.headers.get("x-cache"), "HIT");
      assert.equal(hit.headers.get("x-model"), MODEL);
      assert.equal(hit.headers.get("content-type"), "application/json");
      assert.equal(await hit.text(), JSON.stringify([{ summary_text: "short" }]));
      assert.equal(upstream.calls, 1);

      const [row] = await stack.sql`
        select task, model, status, body::text as body, object_path, byte_size, hits, last_hit_at is not null as hit
          from cache.entries where key = ${call.key}`;
      assert.deepEqual({ ...row }, {
        task: "summarization",
        model: MODEL,
        status: "ready",
        body: JSON.stringify([{ summary_text: "short" }]),
        object_path: null,
        byte_size: "26",
        hits: "1",
        hit: true,
      });
    });

    await t.step("another instance hits the same entry: the cache is shared", async () => {
      const upstream = countingUpstream(() => "{}");
      const hit = await withCache(
        newCache(),
        { key: await keyOf("a long text"), task: "summarization", model: MODEL },
        upstream.produce,
      );
      assert.equal(hit.headers.get("x-cache"), "HIT");
      assert.equal(upstream.calls, 0);
    });

    await t.step("an image answer is stored in the private bucket and served back byte for byte", async () => {
      const cache = newCache();
      const png = await makePng(16, 16, [200, 10, 10]);
      const upstream = countingUpstream(() => png.slice(), { contentType: "image/png" });
      const key = await cacheKey({
        task: "text-to-image",
        model: MODEL,
        parameters: { seed: 7 },
        input: { json: "a llama" },
      });
      const call = { key, task: "text-to-image", model: MODEL, hitHeaders: { "cache-control": "no-store" } };
      const miss = await withCache(cache, call, upstream.produce);
      assert.deepEqual(new Uint8Array(await miss.arrayBuffer()), png);
      await cacheIdle(cache);
      const hit = await withCache(newCache(), call, upstream.produce);
      assert.equal(hit.headers.get("x-cache"), "HIT");
      assert.equal(hit.headers.get("content-type"), "image/png");
      assert.equal(hit.headers.get("cache-control"), "no-store");
      assert.deepEqual(new Uint8Array(await hit.arrayBuffer()), png);
      assert.equal(upstream.calls, 1);
      const [row] = await stack.sql`
        select e.body is null as no_body, e.byte_size::int as size, o.bucket_id, o.metadata->>'mimetype' as type
          from cache.entries e join storage.objects o on o.name = e.object_path where e.key = ${key}`;
      assert.deepEqual({ ...row }, {
        no_body: true,
        size: png.byteLength,
        bucket_id: "inference-cache",
        type: "image/png",
      });
    });

    await t.step("Cache-Control: no-cache calls upstream and replaces the stored answer", async () => {
      const cache = newCache();
      let version = 1;
      const upstream = countingUpstream(() => JSON.stringify({ version }));
      const call = { key: await keyOf("bypass me"), task: "summarization", model: MODEL };
      await (await withCache(cache, call, upstream.produce)).text();
      await cacheIdle(cache);
      version = 2;
      const bypassed = await withCache(cache, { ...call, bypassLookup: true }, upstream.produce);
      assert.equal(bypassed.headers.get("x-cache"), "MISS");
      assert.deepEqual(await bypassed.json(), { version: 2 });
      assert.equal(upstream.calls, 2);
      await cacheIdle(cache);
      const hit = await withCache(cache, call, upstream.produce);
      assert.equal(hit.headers.get("x-cache"), "HIT");
      assert.deepEqual(await hit.json(), { version: 2 });
      assert.equal(upstream.calls, 2);
    });

    await t.step("20 identical parallel requests make one upstream call", async () => {
      const cache = newCache();
      const upstream = countingUpstream(() => JSON.stringify({ label: "POSITIVE" }), { delayMs: 100 });
      const call = { key: await keyOf("coalesce", "text-classification"), task: "text-classification", model: MODEL };
      const responses = await Promise.all(Array.from({ length: 20 }, () => withCache(cache, call, upstream.produce)));
      const bodies = await Promise.all(responses.map((r) => r.json()));
      assert.equal(upstream.calls, 1);
      assert.ok(bodies.every((b) => b.label === "POSITIVE"));
      const outcomes = responses.map((r) => r.headers.get("x-cache"));
      assert.equal(outcomes.filter((o) => o === "MISS").length, 1);
      assert.equal(outcomes.filter((o) => o === "HIT").length, 19);
    });

    await t.step("two instances, ten identical requests each, make one upstream call", async () => {
      const [a, b] = [newCache(), newCache()];
      const upstream = countingUpstream(() => JSON.stringify({ text: "hello" }), { delayMs: 400 });
      const call = {
        key: await keyOf("two instances", "automatic-speech-recognition"),
        task: "automatic-speech-recognition",
        model: MODEL,
      };
      const responses = await Promise.all(
        Array.from({ length: 20 }, (_, i) => withCache(i % 2 ? b : a, call, upstream.produce)),
      );
      const bodies = await Promise.all(responses.map((r) => r.json()));
      assert.equal(upstream.calls, 1);
      assert.ok(bodies.every((body) => body.text === "hello"));
    });

    await t.step("a failed or errored call is not stored and lets waiters go", async () => {
      const cache = newCache();
      const failing = countingUpstream(() => JSON.stringify({ error: "loading" }), { status: 503 });
      const call = { key: await keyOf("fails", "fill-mask"), task: "fill-mask", model: MODEL };
      const res = await withCache(cache, call, failing.produce);
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("x-cache"), "MISS");
      await res.body?.cancel();
      await cacheIdle(cache);
      await assert.rejects(withCache(cache, call, () => Promise.reject(new Error("upstream down"))), /upstream down/);
      await cacheIdle(cache);
      assert.equal((await stack.sql`select 1 from cache.entries where key = ${call.key}`).length, 0, "claim released");
      const ok = countingUpstream(() => "[]");
      const started = Date.now();
      const later = await withCache(newCache(), call, ok.produce);
      assert.equal(later.headers.get("x-cache"), "MISS");
      assert.equal(ok.calls, 1);
      assert.ok(Date.now() - started < 1000, "no wait on a released claim");
    });

    await t.step("a fallback model's answer is not stored under the primary's key", async () => {
      const cache = newCache();
      const upstream = countingUpstream(() => "{}", { model: "org/fallback" });
      const call = { key: await keyOf("fallback"), task: "summarization", model: MODEL };
      const first = await withCache(cache, call, upstream.produce);
      assert.equal(first.headers.get("x-model"), "org/fallback");
      await first.text();
      await cacheIdle(cache);
      await (await withCache(cache, call, upstream.produce)).text();
      assert.equal(upstream.calls, 2);
    });

    await t.step("an answer over maxEntryBytes streams through whole and is not stored", async () => {
      const cache = newCache({ maxEntryBytes: 1000 });
      const big = JSON.stringify({ embedding: Array.from({ length: 500 }, (_, i) => i / 7) });
      const upstream = countingUpstream(() => big);
      const call = { key: await keyOf("big", "feature-extraction"), task: "feature-extraction", model: MODEL };
      assert.equal(await (await withCache(cache, call, upstream.produce)).text(), big);
      await cacheIdle(cache);
      await (await withCache(cache, call, upstream.produce)).text();
      assert.equal(upstream.calls, 2);
    });

    await t.step("a waiter takes over the key when its producer died (lease expired)", async () => {
      const store = createSupabaseCacheStore(client(stack.apiUrl, stack.serviceRoleKey));
      const key = await keyOf("dead producer");
      assert.equal((await store.claim(key, "summarization", MODEL, 1)).outcome, "claimed");
      const upstream = countingUpstream(() => JSON.stringify({ ok: true }));
      const started = Date.now();
      const res = await withCache(newCache(), { key, task: "summarization", model: MODEL }, upstream.produce);
      assert.equal(res.headers.get("x-cache"), "MISS");
      assert.equal(upstream.calls, 1);
      const waited = Date.now() - started;
      assert.ok(waited >= 500 && waited < 3000, `waited ${waited} ms for the lease`);
    });

    await t.step("a waiter gives up after waitMs and calls upstream itself", async () => {
      const store = createSupabaseCacheStore(client(stack.apiUrl, stack.serviceRoleKey));
      const key = await keyOf("slow producer");
      await store.claim(key, "summarization", MODEL, 60);
      const upstream = countingUpstream(() => "{}");
      const started = Date.now();
      const res = await withCache(
        newCache({ waitMs: 300 }),
        { key, task: "summarization", model: MODEL },
        upstream.produce,
      );
      assert.equal(res.status, 200);
      assert.equal(upstream.calls, 1);
      assert.ok(Date.now() - started < 2000);
    });

    await t.step("a store that fails after the claim still releases it", async () => {
      const real = createSupabaseCacheStore(client(stack.apiUrl, stack.serviceRoleKey));
      const broken: CacheStore = { ...real, save: () => Promise.reject(new Error("bucket full")) };
      const cache = createResultCache(broken);
      const upstream = countingUpstream(() => "{}");
      const call = { key: await keyOf("save fails"), task: "summarization", model: MODEL };
      assert.equal(await (await withCache(cache, call, upstream.produce)).text(), "{}");
      await cacheIdle(cache);
      assert.equal((await stack.sql`select 1 from cache.entries where key = ${call.key}`).length, 0);
    });

    await t.step("an instance that stores also evicts, and deletes evicted objects through Storage", async () => {
      const store = createSupabaseCacheStore(client(stack.apiUrl, stack.serviceRoleKey));
      const oldKey = await keyOf("stale image", "text-to-speech");
      const audio = new Uint8Array([1, 2, 3, 4]);
      await store.save({ key: oldKey, task: "text-to-speech", model: MODEL, contentType: "audio/flac", bytes: audio });
      const [{ path }] = await stack.sql`select object_path as path from cache.entries where key = ${oldKey}`;
      await stack.sql`update cache.entries set created_at = now() - interval '40 days' where key = ${oldKey}`;

      const cache = newCache();
      const upstream = countingUpstream(() => "{}");
      await (await withCache(
        cache,
        { key: await keyOf("fresh"), task: "summarization", model: MODEL },
        upstream.produce,
      ))
        .text();
      await cacheIdle(cache);
      assert.equal((await stack.sql`select 1 from cache.entries where key = ${oldKey}`).length, 0);
      assert.equal((await stack.sql`select 1 from storage.objects where name = ${path}`).length, 0);
      assert.equal((await stack.sql`select 1 from cache.orphaned_objects`).length, 0);
    });

    await t.step("the API roles cannot reach the cache", async () => {
      const anon = client(stack.apiUrl, stack.anonKey);
      const lookup = await anon.rpc("inference_cache_lookup", { cache_key: await keyOf("a long text") });
      assert.ok(lookup.error, "anon may not call the cache RPCs");
      const clear = await admin.schema("cache").from("entries").select("*");
      assert.ok(clear.error, "the cache schema is not exposed");
      const [{ path }] = await stack
        .sql`select object_path as path from cache.entries where object_path is not null limit 1`;
      const read = await anon.storage.from("inference-cache").download(path);
      assert.ok(read.error, "the cache bucket is private");
    });
  }));

Deno.test("a cache whose database is down degrades to a plain call", opts, async () => {
  // Nothing listens on this port: every RPC fails to connect.
  const down = createResultCache(createSupabaseCacheStore(client(`http://127.0.0.1:${freePort()}`, "key")));
  const upstream = countingUpstream(() => JSON.stringify({ ok: true }));
  const call = { key: await keyOf("down"), task: "summarization", model: MODEL };
  for (let i = 0; i < 3; i++) {
    const res = await withCache(down, call, upstream.produce);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-cache"), "MISS");
    assert.deepEqual(await res.json(), { ok: true });
    await cacheIdle(down);
  }
  assert.equal(upstream.calls, 3);
});

Deno.test("a cache that hangs is given up after storeTimeoutMs, then skipped", opts, async () => {
  const never = () => new Promise<never>(() => {});
  const hanging: CacheStore = { lookup: never, claim: never, save: never, release: never, sweep: never };
  const cache = createResultCache(hanging, { storeTimeoutMs: 100, retryAfterFailureMs: 60_000 });
  const upstream = countingUpstream(() => "{}");
  const call = { key: await keyOf("hang"), task: "summarization", model: MODEL };
  let started = Date.now();
  assert.equal((await withCache(cache, call, upstream.produce)).status, 200);
  assert.ok(Date.now() - started < 1000);
  started = Date.now();
  assert.equal((await withCache(cache, call, upstream.produce)).status, 200);
  assert.ok(Date.now() - started < 50, "skipped while the cache is known to fail");
  assert.equal(upstream.calls, 2);
});
