/**
 * The cache store on a real PostgreSQL with the real migrations: TTL per task, the size cap
 * (least recently used first), and evicted objects deleted from the bucket through Storage.
 */
import assert from "node:assert/strict";
import { cacheKey } from "../../../supabase/functions/_shared/cache/key.ts";
import { createSupabaseCacheStore } from "../../../supabase/functions/_shared/cache/store.ts";
import { makePng } from "../../support/images.ts";
import { withCacheStack } from "./helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const MODEL = "org/model";
const keyOf = (text: string) => cacheKey({ task: "t", model: MODEL, input: { json: text } });
const json = (bytes: number) => new TextEncoder().encode(JSON.stringify("x".repeat(bytes - 2)));

Deno.test("cache eviction on a real database", opts, (t) =>
  withCacheStack(async ({ stack, admin }) => {
    const store = createSupabaseCacheStore(admin);
    const objectCount = async () =>
      (await stack.sql`select count(*)::int as n from storage.objects where bucket_id = 'inference-cache'`)[0].n;

    await t.step("an entry past its task's TTL is not served, and eviction deletes its object", async () => {
      const png = await makePng(8, 8, [1, 2, 3]);
      const image = await keyOf("old image");
      const text = await keyOf("old text");
      await store.save({ key: image, task: "text-to-image", model: MODEL, contentType: "image/png", bytes: png });
      await store.save({
        key: text,
        task: "translation",
        model: MODEL,
        contentType: "application/json",
        bytes: json(10),
      });
      assert.ok(await store.lookup(image));
      assert.equal(await objectCount(), 1);

      // text-to-image keeps 30 days, translation the '*' default of 7: at 8 days only one is stale.
      await stack.sql`update cache.entries set created_at = now() - interval '8 days'`;
      assert.ok(await store.lookup(image), "within its own 30-day TTL");
      assert.equal(await store.lookup(text), null, "past the default 7-day TTL");
      await stack.sql`update cache.ttl set ttl_seconds = 86400 where task = 'text-to-image'`;
      assert.equal(await store.lookup(image), null, "a TTL change applies at once");

      assert.equal(await store.sweep(), 1, "one object removed through Storage");
      assert.equal((await stack.sql`select 1 from cache.entries`).length, 0);
      assert.equal(await objectCount(), 0);
      assert.equal((await stack.sql`select 1 from cache.orphaned_objects`).length, 0);
      await stack.sql`update cache.ttl set ttl_seconds = 2592000 where task = 'text-to-image'`;
    });

    await t.step("beyond max_bytes the least recently used entries go first", async () => {
      const [a, b, c, d] = await Promise.all(["a", "b", "c", "d"].map(keyOf));
      const png = await makePng(8, 8, [9, 9, 9]);
      for (const key of [a, b, c]) {
        await store.save({
          key,
          task: "summarization",
          model: MODEL,
          contentType: "application/json",
          bytes: json(100),
        });
      }
      await store.save({ key: d, task: "image-classification", model: MODEL, contentType: "image/png", bytes: png });
      await stack.sql`update cache.entries set created_at = now() - interval '4 minutes' where key = ${d}`;
      await stack.sql`update cache.entries set created_at = now() - interval '3 minutes' where key = ${a}`;
      await stack.sql`update cache.entries set created_at = now() - interval '2 minutes' where key = ${b}`;
      await stack.sql`update cache.entries set created_at = now() - interval '1 minute' where key = ${c}`;
      assert.ok(await store.lookup(a), "a is now the most recently used");
      await stack.sql`update cache.settings set value = '250' where key = 'max_bytes'`;

      const [{ evicted }] = await stack.sql`select cache.evict() as evicted`;
      assert.equal(evicted, 2);
      const kept = (await stack.sql`select key from cache.entries`).map((r) => r.key).sort();
      assert.deepEqual(kept, [a, c].sort(), "b and d were the least recently used");
      assert.equal(await objectCount(), 1, "d's object waits for the Storage API");
      assert.equal(await store.sweep(), 1);
      assert.equal(await objectCount(), 0);
      await stack.sql`update cache.settings set value = '1073741824' where key = 'max_bytes'`;
    });

    await t.step("replacing a binary entry queues its old object; cache.clear() queues the rest", async () => {
      const key = await keyOf("replace");
      for (const colour of [[1, 1, 1], [2, 2, 2]] as const) {
        const bytes = await makePng(8, 8, [...colour]);
        await store.save({ key, task: "text-to-speech", model: MODEL, contentType: "audio/flac", bytes });
      }
      assert.equal((await stack.sql`select 1 from cache.orphaned_objects`).length, 1);
      await stack.sql`select cache.clear()`;
      assert.equal((await stack.sql`select 1 from cache.entries`).length, 0);
      await store.sweep();
      assert.equal(await objectCount(), 0);
    });

    await t.step("the migration schedules eviction with pg_cron where pg_cron is installed", async () => {
      const [available] = await stack.sql`
        select exists (select 1 from pg_available_extensions where name = 'pg_cron') as yes`;
      if (!available.yes) return; // without pg_cron the functions evict while they store
      const [job] = await stack.sql`select schedule, command from cron.job where jobname = 'inference-cache-evict'`;
      assert.deepEqual({ ...job }, { schedule: "* * * * *", command: "select cache.evict()" });
    });
  }));
