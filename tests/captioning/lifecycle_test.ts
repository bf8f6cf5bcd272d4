/**
 * The job lifecycle: re-uploads re-caption, stale attempts change nothing, deletes cancel, dead
 * letters can be re-queued, old images can be backfilled, and a dead worker's lease is recovered.
 */
import assert from "node:assert/strict";
import { describe, makeRandomPng } from "./helpers.ts";
import { FAST_RETRIES, withLocal } from "../support/local.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "re-uploading with upsert keeps the id and replaces the caption",
  opts,
  () =>
    withLocal(async ({ admin, dev, waitFor }) => {
      const first = await makeRandomPng();
      const second = await makeRandomPng(48);
      const up1 = await admin.storage.from("images").upload("same.png", first, { contentType: "image/png" });
      await waitFor(
        "first caption",
        async () =>
          (await dev.stack.sql`select caption from public.image_caption where id = ${up1.data!.id}`)[0]?.caption ===
            await describe(first),
      );
      const up2 = await admin.storage.from("images").upload("same.png", second, {
        contentType: "image/png",
        upsert: true,
      });
      assert.equal(up2.error, null);
      assert.equal(up2.data!.id, up1.data!.id, "an upsert keeps the object id");
      const expected = await describe(second);
      await waitFor(
        "second caption",
        async () =>
          (await dev.stack.sql`select caption from public.image_caption where id = ${up1.data!.id}`)[0]?.caption ===
            expected,
      );
      const [version] = await dev.stack.sql`
      select c.object_version = o.version as current from public.image_caption c join storage.objects o using (id)`;
      assert.equal(version.current, true);
    }),
);

Deno.test(
  "a slow attempt for an old version finishing late does not overwrite the newer caption",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      fake.enqueue({ delayMs: 1500 }); // the first version's call is slow
      const old = await makeRandomPng();
      const fresh = await makeRandomPng(40);
      const up = await admin.storage.from("images").upload("race.png", old, { contentType: "image/png" });
      await waitFor("slow call started", () => fake.seen.length === 1);
      await admin.storage.from("images").upload("race.png", fresh, { contentType: "image/png", upsert: true });
      const expected = await describe(fresh);
      await waitFor(
        "new caption",
        async () =>
          (await dev.stack.sql`select caption from public.image_caption where id = ${up.data!.id}`)[0]?.caption ===
            expected,
      );
      await new Promise((r) => setTimeout(r, 2000)); // the old attempt has now finished
      const [row] = await dev.stack.sql`select caption from public.image_caption where id = ${up.data!.id}`;
      assert.equal(row.caption, expected);
      const [job] = await dev.stack.sql`select status from captioning.jobs where object_id = ${up.data!.id}`;
      assert.equal(job.status, "done");
    }),
);

Deno.test(
  "deleting an object mid-caption cancels its job and writes nothing",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      fake.enqueue({ delayMs: 800 });
      const up = await admin.storage.from("images").upload("gone.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      await waitFor("call started", () => fake.seen.length === 1);
      assert.equal((await admin.storage.from("images").remove(["gone.png"])).error, null);
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal((await dev.stack.sql`select 1 from captioning.jobs where object_id = ${up.data!.id}`).length, 0);
      assert.equal((await dev.stack.sql`select 1 from public.image_caption`).length, 0);
    }),
);

Deno.test(
  "a permanent failure is dead-lettered, visible in SQL, and can be re-queued",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      fake.enqueue(Response.json({ error: "model rejects this image" }, { status: 400 }));
      const png = await makeRandomPng();
      const up = await admin.storage.from("images").upload("dl.png", png, { contentType: "image/png" });
      const failed = await waitFor(
        "dead letter",
        async () =>
          (await dev.stack.sql`select * from captioning.jobs where object_id = ${up.data!.id} and status = 'failed'`)[
            0
          ],
      );
      assert.match(failed.last_error, /rejected the input/);
      assert.equal(failed.attempts, 1);
      const [{ requeue_failed }] = await dev.stack.sql`select captioning.requeue_failed()`;
      assert.equal(requeue_failed, 1);
      await waitFor(
        "caption after requeue",
        async () =>
          (await dev.stack.sql`select caption from public.image_caption where id = ${up.data!.id}`)[0]?.caption ===
            await describe(png),
      );
    }, { settings: FAST_RETRIES }),
);

Deno.test(
  "retryable failures back off and give up after max_attempts",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      fake.options.faultRate = 1;
      fake.options.faultKinds = ["500"];
      const up = await admin.storage.from("images").upload("flaky.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      const job = await waitFor(
        "dead letter",
        async () =>
          (await dev.stack.sql`select * from captioning.jobs where object_id = ${up.data!.id} and status = 'failed'`)[
            0
          ],
        20_000,
      );
      assert.equal(job.attempts, 3);
      assert.match(job.last_error, /answered 500/);
      // Each job attempt made HF_MAX_ATTEMPTS (2) calls, and no more.
      assert.equal(fake.seen.length, 6);
    }, { settings: { ...FAST_RETRIES, max_attempts: "3" }, env: { HF_MAX_ATTEMPTS: "2" } }),
);

Deno.test(
  "backfill captions images stored before the pipeline existed",
  opts,
  () =>
    withLocal(async ({ admin, dev, waitFor }) => {
      await dev.stack.sql`alter table storage.objects disable trigger caption_new_image`;
      const pngs = [await makeRandomPng(), await makeRandomPng()];
      for (const [i, png] of pngs.entries()) {
        await admin.storage.from("images").upload(`old/${i}.png`, png, { contentType: "image/png" });
      }
      await dev.stack.sql`alter table storage.objects enable trigger caption_new_image`;
      assert.equal((await dev.stack.sql`select 1 from captioning.jobs`).length, 0);
      const [{ backfill }] = await dev.stack.sql`select captioning.backfill()`;
      assert.equal(backfill, 2);
      await waitFor(
        "both captions",
        async () => (await dev.stack.sql`select 1 from public.image_caption`).length === 2,
      );
      const [{ again }] = await dev.stack.sql`select captioning.backfill() as again`;
      assert.equal(again, 0, "captioned images are not enqueued again");
    }, { settings: FAST_RETRIES }),
);

Deno.test(
  "a worker that dies holding a lease is replaced once the lease expires",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      await dev.stack.sql`alter table storage.objects disable trigger caption_new_image`;
      const png = await makeRandomPng();
      const up = await admin.storage.from("images").upload("orphan.png", png, { contentType: "image/png" });
      await dev.stack.sql`alter table storage.objects enable trigger caption_new_image`;
      // A worker claims the job and dies without a word.
      const [claim] = await dev.stack.sql`select * from public.caption_job_claim(${up.data!.id})`;
      assert.equal(claim.outcome, "claimed");
      await waitFor(
        "caption by another worker",
        async () =>
          (await dev.stack.sql`select caption from public.image_caption where id = ${up.data!.id}`)[0]?.caption ===
            await describe(png),
        15_000,
      );
      // The dead worker's lease no longer counts.
      const [late] = await dev.stack.sql`select public.caption_job_complete(${
        up.data!.id
      }, ${claim.lease_token}, 'stale', 'm') as r`;
      assert.equal(late.r, "stale");
      assert.equal(fake.seen.length, 1);
    }, { settings: { ...FAST_RETRIES, lease_seconds: "1" } }),
);
