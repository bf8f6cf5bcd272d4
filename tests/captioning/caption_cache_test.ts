/**
 * Captions by content through the real pipeline: the same bytes uploaded again, under any name,
 * are captioned with no Hugging Face call, and the job says `cache = 'hit'`.
 */
import assert from "node:assert/strict";
import { describe, makeRandomPng } from "./helpers.ts";
import { withLocal } from "../support/local.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "the same bytes uploaded under another name get their caption with no Hugging Face call",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      const png = await makeRandomPng();
      const captionOf = (id: string) =>
        waitFor("caption", async () => {
          const [row] = await dev.stack.sql`
            select c.caption, c.model, j.cache from public.image_caption c
              join captioning.jobs j on j.object_id = c.id where c.id = ${id} and j.status = 'done'`;
          return row;
        });

      // A caption is stored just after its job is done.
      const cached = async (bytes: Uint8Array) => {
        const caption = await describe(bytes);
        await waitFor("cached caption", async () =>
          (await dev.stack.sql`select 1 from cache.entries where task = 'caption' and body->>'caption' = ${caption!}`)[
            0
          ]);
      };

      const first = await admin.storage.from("images").upload("alice/cat.png", png, { contentType: "image/png" });
      assert.equal(first.error, null);
      const one = await captionOf(first.data!.id);
      assert.equal(one.caption, await describe(png));
      assert.equal(one.cache, "miss");
      assert.equal(fake.seen.length, 1);
      await cached(png);

      const second = await admin.storage.from("images").upload("bob/renamed-copy.png", png, {
        contentType: "image/png",
      });
      const two = await captionOf(second.data!.id);
      assert.deepEqual({ ...two }, { caption: one.caption, model: one.model, cache: "hit" });
      assert.equal(fake.seen.length, 1, "no second Hugging Face call");

      // Different bytes are captioned afresh.
      const other = await makeRandomPng();
      const third = await admin.storage.from("images").upload("carol/other.png", other, { contentType: "image/png" });
      const three = await captionOf(third.data!.id);
      assert.equal(three.caption, await describe(other));
      assert.equal(three.cache, "miss");
      assert.equal(fake.seen.length, 2);
      await cached(other);

      // Replacing a file with new bytes clears the old outcome until the new caption is in.
      await admin.storage.from("images").upload("bob/renamed-copy.png", other, {
        contentType: "image/png",
        upsert: true,
      });
      const replaced = await waitFor("new caption", async () => {
        const [row] = await dev.stack.sql`
          select c.caption, j.cache from public.image_caption c join captioning.jobs j on j.object_id = c.id
            where c.id = ${second.data!.id} and j.status = 'done' and c.caption = ${three.caption}`;
        return row;
      });
      assert.equal(replaced.cache, "hit");
      assert.equal(fake.seen.length, 2);
    }),
);

Deno.test(
  "captions go on when the cache is broken",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      // As if the result-cache migration were missing: every cache RPC is unknown to the API.
      await dev.stack.sql`revoke execute on function public.inference_cache_lookup(text) from service_role`;
      await dev.stack
        .sql`revoke execute on function public.inference_cache_put(text, text, text, text, text, text, bigint)
                          from service_role`;
      const png = await makeRandomPng();
      for (const name of ["x/one.png", "y/two.png"]) {
        const { data } = await admin.storage.from("images").upload(name, png, { contentType: "image/png" });
        const row = await waitFor("caption", async () => {
          const [r] = await dev.stack.sql`
            select c.caption, j.cache from public.image_caption c join captioning.jobs j on j.object_id = c.id
              where c.id = ${data!.id} and j.status = 'done'`;
          return r;
        });
        assert.deepEqual({ ...row }, { caption: await describe(png), cache: "miss" });
      }
      assert.equal(fake.seen.length, 2, "without a cache, each upload is a call");
    }),
);
