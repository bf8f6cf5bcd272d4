/**
 * Fault tests: whatever fails along the way, every uploaded image ends with exactly one caption
 * (of its own bytes) or a failed job that says why. Nothing is silently missing.
 */
import assert from "node:assert/strict";
import { describe, makeRandomPng } from "./helpers.ts";
import { FAST_RETRIES, type Local, withLocal } from "../support/local.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const IMAGES = 20;
// Short timeouts so a hung call fails fast and is retried.
const FAST_HF = { HF_TIMEOUT_MS: "500", HF_DEADLINE_MS: "2500", HF_RETRY_BASE_MS: "20", HF_RETRY_MAX_DELAY_MS: "200" };

/**
 * Uploads `count` distinct images, `concurrency` at a time, retrying an upload that fails (as an
 * app would); returns the caption each object id must end with.
 */
async function uploadImages(local: Local, count: number, concurrency = 5): Promise<Map<string, string>> {
  const expected = new Map<string, string>();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const png = await makeRandomPng();
      for (let attempt = 1;; attempt++) {
        const { data, error } = await local.admin.storage.from("images").upload(`batch/${i}.png`, png, {
          contentType: "image/png",
          upsert: true,
        });
        if (!error) {
          expected.set(data.id, (await describe(png))!);
          break;
        }
        if (attempt >= 50) throw new Error(`upload ${i} kept failing: ${error.message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return expected;
}

/** Waits until every job is done or failed, then checks each image has exactly its caption. */
async function assertNothingLost(local: Local, expected: Map<string, string>, timeoutMs = 60_000) {
  const { sql } = local.dev.stack;
  await local.waitFor("every job to settle", async () => {
    const [row] =
      await sql`select count(*)::int as open from captioning.jobs where status in ('pending', 'processing')`;
    const [jobs] = await sql`select count(*)::int as n from captioning.jobs`;
    return row.open === 0 && jobs.n === expected.size;
  }, timeoutMs);
  const failed = await sql`select object_id, last_error from captioning.jobs where status = 'failed'`;
  assert.deepEqual([...failed], [], "no job should be dead-lettered by transient faults");
  const captions = await sql`select id, caption from public.image_caption`;
  assert.equal(captions.length, expected.size, "exactly one caption per image");
  for (const row of captions) assert.equal(row.caption, expected.get(row.id), `caption of ${row.id}`);
}

Deno.test(
  "30% of Hugging Face calls fail (503, 429, 500, hang): every image gets one caption",
  opts,
  () =>
    withLocal(async (local) => {
      const expected = await uploadImages(local, IMAGES);
      await assertNothingLost(local, expected);
      const faults = local.fake.seen.length - IMAGES;
      assert.ok(faults > 0, "the fake should have injected faults");
    }, {
      fake: { faultRate: 0.3, faultKinds: ["503", "429", "500", "hang"], seed: 42 },
      env: FAST_HF,
      settings: FAST_RETRIES,
    }),
);

Deno.test(
  "Hugging Face is down for a stretch, then comes back: every image gets one caption",
  opts,
  () =>
    withLocal(async (local) => {
      local.fake.options.down = true;
      const expected = await uploadImages(local, IMAGES);
      await new Promise((r) => setTimeout(r, 3000));
      local.fake.options.down = false;
      await assertNothingLost(local, expected);
    }, { env: FAST_HF, settings: FAST_RETRIES }),
);

Deno.test(
  "the functions runtime is down while uploads go on, then restarts: nothing is lost",
  opts,
  () =>
    withLocal(async (local) => {
      local.dev.setFunctionsDown(true);
      const expected = await uploadImages(local, IMAGES);
      // Every webhook was refused, and pg_net does not retry.
      const [{ refused }] = await local.dev.stack.sql`
      select count(*)::int as refused from net._http_response where status_code = 503`;
      assert.ok(refused > 0);
      assert.equal(local.fake.seen.length, 0);
      local.dev.setFunctionsDown(false);
      await assertNothingLost(local, expected);
    }, { env: FAST_HF, settings: FAST_RETRIES }),
);

Deno.test("Storage downloads fail transiently: nothing is lost", opts, () => {
  let downloads = 0;
  return withLocal(async (local) => {
    const expected = await uploadImages(local, IMAGES);
    await assertNothingLost(local, expected);
    assert.ok(downloads > IMAGES, "some downloads should have failed and been retried");
  }, {
    env: FAST_HF,
    settings: FAST_RETRIES,
    intercept(req) {
      if (req.method !== "GET" || !new URL(req.url).pathname.startsWith("/storage/v1/object/")) return undefined;
      // Every third download fails the way a gateway in trouble does.
      return ++downloads % 3 === 1
        ? Response.json({ statusCode: "500", error: "internal", message: "backend unavailable" }, { status: 500 })
        : undefined;
    },
  });
});

Deno.test(
  "PostgreSQL restarts mid-run: nothing is lost, including pg_net's unlogged queue",
  opts,
  () =>
    withLocal(async (local) => {
      const { stack } = local.dev;
      const uploading = uploadImages(local, IMAGES, 4);
      const queued = await local.waitFor("webhooks waiting in pg_net's queue", async () => {
        const [row] = await stack.sql`select count(*)::int as n from net.http_request_queue`;
        return row.n >= 3 ? row : undefined;
      });
      // pg_net's queue is unlogged, as on the platform: crash recovery empties it.
      const [queue] = await stack
        .sql`select relpersistence from pg_class where oid = 'net.http_request_queue'::regclass`;
      assert.equal(queue.relpersistence, "u");
      assert.ok(queued.n >= 3);
      await stack.postgres!.restart("immediate");
      const expected = await uploading;
      await assertNothingLost(local, expected, 90_000);
    }, {
      env: FAST_HF,
      settings: FAST_RETRIES,
      // A slow webhook target holds up pg_net's single worker, so requests pile up in its queue.
      intercept: async (req) => {
        if (new URL(req.url).pathname.startsWith("/functions/")) await new Promise((r) => setTimeout(r, 150));
        return undefined;
      },
    }),
);
