/**
 * The local stack under a burst: 500 uploads at once through supabase-js. The stand-ins queue
 * requests beyond their connection pools, as the real services do, instead of failing with
 * "too many connections"; the project's max_in_flight feeds the burst to Hugging Face.
 */
import assert from "node:assert/strict";
import { describe } from "./helpers.ts";
import { makePng } from "../support/images.ts";
import { withLocal } from "../support/local.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const UPLOADS = 500;

Deno.test(
  "500 images uploaded at once all succeed and each gets exactly one caption",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      // Distinct images, so that each caption is its own.
      const pngs = await Promise.all(
        Array.from({ length: UPLOADS }, (_, i) => makePng(8, 8, [i % 256, i >> 8, 77])),
      );
      const results = await Promise.all(
        pngs.map((png, i) => admin.storage.from("images").upload(`burst/${i}.png`, png, { contentType: "image/png" })),
      );
      const failures = results.filter((r) => r.error).map((r) => r.error!.message);
      assert.deepEqual(failures, [], `${failures.length} uploads failed`);

      const expected = new Map(
        await Promise.all(results.map(async (r, i) => [r.data!.id, await describe(pngs[i])] as const)),
      );
      await waitFor("every caption", async () => {
        const [{ n }] = await dev.stack.sql`select count(*)::int as n from captioning.jobs where status = 'done'`;
        return n === UPLOADS;
      }, 180_000);

      const captions = await dev.stack.sql`select id, caption from public.image_caption`;
      assert.equal(captions.length, UPLOADS);
      for (const { id, caption } of captions) assert.equal(caption, expected.get(id));
      // One Hugging Face answer per image: no caption was paid for twice.
      assert.equal(fake.captionsAnswered.size, UPLOADS);
      assert.ok([...fake.captionsAnswered.values()].every((n) => n === 1));
      const [{ failed }] = await dev.stack
        .sql`select count(*)::int as failed from captioning.jobs where status <> 'done'`;
      assert.equal(failed, 0);
    }, { settings: { max_in_flight: "16" } }),
);
