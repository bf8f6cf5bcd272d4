/**
 * The captioning pipeline end to end on a real PostgreSQL: supabase-js upload → trigger → pg_net
 * stand-in → function → fake Hugging Face → image_caption.
 */
import assert from "node:assert/strict";
import { describe, makeRandomPng } from "./helpers.ts";
import { withLocal } from "../support/local.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "an uploaded image gets its caption in image_caption",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      const png = await makeRandomPng();
      const { data, error } = await admin.storage.from("images").upload("cats/tabby.png", png, {
        contentType: "image/png",
      });
      assert.equal(error, null);
      const row = await waitFor("caption", async () => {
        const [r] = await dev.stack.sql`select * from public.image_caption where id = ${data!.id}`;
        return r;
      });
      assert.equal(row.caption, await describe(png));
      assert.equal(row.model, "Qwen/Qwen2.5-VL-7B-Instruct");
      assert.equal(fake.seen.length, 1);
      assert.equal(fake.seen[0].task, "chat");
      const [job] = await dev.stack.sql`select status, attempts from captioning.jobs where object_id = ${data!.id}`;
      assert.deepEqual({ ...job }, { status: "done", attempts: 1 });
    }),
);

Deno.test("image-to-text mode accepts both answer shapes", opts, async () => {
  for (const captionShape of ["object", "array"] as const) {
    await withLocal(async ({ admin, dev, fake, waitFor }) => {
      const png = await makeRandomPng();
      const { data } = await admin.storage.from("images").upload(`a/${captionShape}.png`, png, {
        contentType: "image/png",
      });
      const row = await waitFor("caption", async () => {
        const [r] = await dev.stack.sql`select * from public.image_caption where id = ${data!.id}`;
        return r;
      });
      assert.equal(row.caption, await describe(png));
      assert.equal(row.model, "Salesforce/blip-image-captioning-large");
      assert.equal(fake.seen[0].task, "image-to-text");
      assert.equal(fake.seen[0].headers.get("content-type"), "image/png");
    }, { fake: { captionShape }, env: { CAPTION_MODE: "image-to-text" } });
  }
});

Deno.test(
  "non-images and other buckets never reach Hugging Face",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake }) => {
      await dev.stack.sql`insert into storage.buckets (id, name) values ('documents', 'documents')`;
      const text = await admin.storage.from("images").upload("notes.txt", new Blob(["hello"]), {
        contentType: "text/plain",
      });
      assert.equal(text.error, null);
      const other = await admin.storage.from("documents").upload("x.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      assert.equal(other.error, null);
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(fake.seen.length, 0);
      const [{ count }] = await dev.stack.sql`select count(*)::int from captioning.jobs`;
      assert.equal(count, 0);
    }),
);

Deno.test(
  "a webhook call without the right secret gets 401 and writes nothing",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      const png = await makeRandomPng();
      const { data } = await admin.storage.from("images").upload("p.png", png, { contentType: "image/png" });
      await waitFor("caption", async () => (await dev.stack.sql`select 1 from public.image_caption`).length > 0);
      await dev.stack.sql`delete from public.image_caption`;
      await dev.stack.sql`update captioning.jobs set status = 'pending', next_attempt_at = now() + interval '1 hour'`;
      const [record] = await dev.stack.sql`select to_jsonb(o) as r from storage.objects o where id = ${data!.id}`;
      const body = JSON.stringify({
        type: "INSERT",
        table: "objects",
        schema: "storage",
        record: record.r,
        old_record: null,
      });
      for (const secret of [undefined, "wrong", ""]) {
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (secret !== undefined) headers["x-webhook-secret"] = secret;
        const res = await fetch(`${dev.apiUrl}/functions/v1/huggingface-image-captioning`, {
          method: "POST",
          headers,
          body,
        });
        assert.equal(res.status, 401);
        assert.match((await res.json()).error, /x-webhook-secret/);
      }
      const calls = fake.seen.length;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(fake.seen.length, calls);
      assert.equal((await dev.stack.sql`select 1 from public.image_caption`).length, 0);
    }),
);

Deno.test(
  "redelivered events leave one caption and raise no error",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      const { data } = await admin.storage.from("images").upload("r.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      const [record] = await dev.stack.sql`select to_jsonb(o) as r from storage.objects o where id = ${data!.id}`;
      const deliver = () =>
        fetch(`${dev.apiUrl}/functions/v1/huggingface-image-captioning`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-webhook-secret": dev.functionsEnv.CAPTION_WEBHOOK_SECRET! },
          body: JSON.stringify({
            type: "INSERT",
            table: "objects",
            schema: "storage",
            record: record.r,
            old_record: null,
          }),
        });
      // Several at once, racing the webhook's own delivery.
      const answers = await Promise.all([deliver(), deliver(), deliver(), deliver()]);
      for (const res of answers) {
        assert.ok(res.status === 200 || res.status === 202, `status ${res.status}`);
        await res.body?.cancel();
      }
      await waitFor("caption", async () => (await dev.stack.sql`select 1 from public.image_caption`).length > 0);
      const late = await deliver();
      assert.equal(late.status, 200);
      assert.equal((await late.json()).status, "done");
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await dev.stack.sql`select 1 from public.image_caption`).length, 1);
      assert.equal(fake.seen.length, 1, "exactly one Hugging Face call for one version");
    }),
);

Deno.test(
  "deleting the object through the Storage API removes its caption and job",
  opts,
  () =>
    withLocal(async ({ admin, dev, waitFor }) => {
      const { data } = await admin.storage.from("images").upload("d.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      await waitFor("caption", async () => (await dev.stack.sql`select 1 from public.image_caption`).length > 0);
      const removed = await admin.storage.from("images").remove(["d.png"]);
      assert.equal(removed.error, null);
      assert.equal(removed.data?.length, 1);
      assert.equal((await dev.stack.sql`select 1 from public.image_caption where id = ${data!.id}`).length, 0);
      assert.equal((await dev.stack.sql`select 1 from captioning.jobs where object_id = ${data!.id}`).length, 0);
    }),
);

Deno.test(
  "a user reads the captions of their own images and nobody else's",
  opts,
  () =>
    withLocal(async ({ dev, userClient, waitFor }) => {
      const alice = crypto.randomUUID();
      const bob = crypto.randomUUID();
      const aliceClient = await userClient(alice);
      const bobClient = await userClient(bob);
      const up = await aliceClient.storage.from("images").upload(`${alice}/me.png`, await makeRandomPng(), {
        contentType: "image/png",
      });
      assert.equal(up.error, null);
      // A user may not write outside their own folder.
      const intrusion = await bobClient.storage.from("images").upload(`${alice}/x.png`, await makeRandomPng(), {
        contentType: "image/png",
      });
      assert.notEqual(intrusion.error, null);
      await waitFor("caption", async () => (await dev.stack.sql`select 1 from public.image_caption`).length > 0);

      const mine = await aliceClient.from("image_caption").select("id, caption");
      assert.equal(mine.error, null);
      assert.equal(mine.data?.length, 1);
      assert.equal(mine.data?.[0].id, up.data!.id);
      const theirs = await bobClient.from("image_caption").select("id, caption");
      assert.equal(theirs.error, null);
      assert.deepEqual(theirs.data, []);
      // Nobody but the service role writes captions.
      const forged = await aliceClient.from("image_caption").insert({ id: up.data!.id, caption: "x", model: "y" });
      assert.notEqual(forged.error, null);
    }),
);

Deno.test(
  "an upload succeeds and leaves a trace when the webhook's Vault secrets are missing",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake }) => {
      await dev.stack.sql`delete from vault.secrets where name = 'project_url'`;
      const { data, error } = await admin.storage.from("images").upload("v.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      assert.equal(error, null);
      const [job] = await dev.stack.sql`select status, last_error from captioning.jobs where object_id = ${data!.id}`;
      assert.equal(job.status, "pending");
      assert.match(job.last_error, /project_url/);
      assert.equal(fake.seen.length, 0);
    }, { sweepIntervalMs: 60_000 }),
);

Deno.test(
  "the migration schedules the sweeper with pg_cron where pg_cron is installed",
  opts,
  () =>
    withLocal(async ({ dev }) => {
      const [ext] = await dev.stack
        .sql`select exists (select 1 from pg_extension where extname = 'pg_cron') as installed`;
      const [available] = await dev.stack.sql`
      select exists (select 1 from pg_available_extensions where name = 'pg_cron') as yes`;
      assert.equal(ext.installed, available.yes);
      if (!available.yes) return; // without pg_cron the migration warns, and `deno task dev` sweeps
      const [job] = await dev.stack
        .sql`select schedule, command, active from cron.job where jobname = 'captioning-sweep'`;
      assert.equal(job.command, "select captioning.sweep()");
      assert.equal(job.active, true);
      // pg_cron 1.5+ takes '5 seconds'; Debian's 1.4 only minutes.
      assert.match(job.schedule, /^(5 seconds|\* \* \* \* \*)$/);
    }),
);
