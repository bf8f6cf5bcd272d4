/**
 * The task-handler seam on a real database: the policy decides, the key is derived from the call,
 * and an uncacheable call goes straight upstream.
 */
import assert from "node:assert/strict";
import { cachedInference, type InferenceCall } from "../../../supabase/functions/_shared/cache/cached_inference.ts";
import { CACHE_RULES, type CacheRule } from "../../../supabase/functions/_shared/cache/policy.ts";
import { cacheIdle } from "../../../supabase/functions/_shared/cache/result_cache.ts";
import { makePng } from "../../support/images.ts";
import { countingUpstream, withCacheStack } from "./helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const MODEL = "org/model";

Deno.test("cachedInference follows the policy table", opts, (t) =>
  withCacheStack(async ({ stack, newCache }) => {
    const cache = newCache();
    const png = await makePng(8, 8, [5, 5, 5]);
    const twice = async (call: InferenceCall, upstream: ReturnType<typeof countingUpstream>) => {
      const outcomes: (string | null)[] = [];
      for (let i = 0; i < 2; i++) {
        const res = await cachedInference(cache, call, upstream.produce);
        await res.arrayBuffer();
        await cacheIdle(cache);
        outcomes.push(res.headers.get("x-cache"));
      }
      return outcomes;
    };

    await t.step("a repeated summarization is a HIT with no second upstream call", async () => {
      const upstream = countingUpstream(() => JSON.stringify([{ summary_text: "s" }]));
      const call = { task: "summarization", model: MODEL, input: { json: "long text" }, headers: new Headers() };
      assert.deepEqual(await twice(call, upstream), ["MISS", "HIT"]);
      assert.equal(upstream.calls, 1);
    });

    await t.step("every task in the table: a miss, then a hit with no upstream call", async () => {
      const qualifying: Record<CacheRule, Record<string, unknown>> = {
        always: {},
        seeded: { seed: 3 },
        greedy: { temperature: 0 },
      };
      for (const [task, rule] of Object.entries(CACHE_RULES)) {
        const binary = rule === "seeded";
        const upstream = binary
          ? countingUpstream(() => png.slice(), { contentType: task === "text-to-speech" ? "audio/flac" : "image/png" })
          : countingUpstream(() => JSON.stringify({ task }));
        const input = task.startsWith("image") || task.endsWith("detection") || task.startsWith("audio") ||
            task === "automatic-speech-recognition"
          ? { bytes: png }
          : { json: `input for ${task}` };
        const call = { task, model: MODEL, parameters: qualifying[rule], input, headers: new Headers() };
        assert.deepEqual(await twice(call, upstream), ["MISS", "HIT"], task);
        assert.equal(upstream.calls, 1, task);
      }
    });

    await t.step("an unseeded text-to-image is never cached and carries no X-Cache", async () => {
      const upstream = countingUpstream(() => png.slice(), { contentType: "image/png" });
      const call = {
        task: "text-to-image",
        model: MODEL,
        parameters: { width: 64 },
        input: { json: "a llama" },
        headers: new Headers(),
      };
      const count = async () => (await stack.sql`select count(*)::int as n from cache.entries`)[0].n;
      const before = await count();
      assert.deepEqual(await twice(call, upstream), [null, null]);
      assert.equal(upstream.calls, 2);
      assert.equal(await count(), before, "nothing stored");
    });

    await t.step("a seeded text-to-image is cached; another seed is another entry", async () => {
      const upstream = countingUpstream(() => png.slice(), { contentType: "image/png" });
      const call = (seed: number) => ({
        task: "text-to-image",
        model: MODEL,
        parameters: { width: 64, seed },
        input: { json: "a llama" },
        headers: new Headers(),
      });
      assert.deepEqual(await twice(call(1), upstream), ["MISS", "HIT"]);
      assert.deepEqual(await twice(call(2), upstream), ["MISS", "HIT"]);
      assert.equal(upstream.calls, 2);
    });

    await t.step("Cache-Control: no-cache calls upstream every time, and stores for the others", async () => {
      const upstream = countingUpstream(() => JSON.stringify({ label: "x" }));
      const call = { task: "text-classification", model: MODEL, input: { json: "fresh please" } };
      const bypass = { ...call, headers: new Headers({ "cache-control": "no-cache" }) };
      assert.deepEqual(await twice(bypass, upstream), ["MISS", "MISS"]);
      assert.deepEqual(await twice({ ...call, headers: new Headers() }, upstream), ["HIT", "HIT"]);
      assert.equal(upstream.calls, 2);
    });

    await t.step("chat with temperature 0 is cached unless streamed", async () => {
      const upstream = countingUpstream(() => JSON.stringify({ choices: [] }));
      const input = { json: [{ role: "user", content: "hi" }] };
      const call = { task: "chat-completion", model: MODEL, input, headers: new Headers() };
      assert.deepEqual(await twice({ ...call, parameters: { temperature: 0, stream: true } }, upstream), [null, null]);
      assert.deepEqual(await twice({ ...call, parameters: { temperature: 0 } }, upstream), ["MISS", "HIT"]);
      assert.equal(upstream.calls, 3);
    });

    await t.step("without a cache configured, calls go straight upstream", async () => {
      const upstream = countingUpstream(() => "{}");
      const call = { task: "summarization", model: MODEL, input: { json: "x" }, headers: new Headers() };
      const res = await cachedInference(undefined, call, upstream.produce);
      assert.equal(res.headers.get("x-cache"), null);
      assert.equal(upstream.calls, 1);
    });
  }));
