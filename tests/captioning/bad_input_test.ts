/**
 * Bad input to the captioning function and the pipeline: each gets a clear 4xx or a recorded
 * failed job; none crashes the function, loses a job or leaves a half-written row.
 */
import assert from "node:assert/strict";
import { describe, makeRandomPng } from "./helpers.ts";
import { type Local, withLocal } from "../support/local.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function webhook(local: Local, body: BodyInit, headers: Record<string, string> = {}) {
  return fetch(`${local.dev.apiUrl}/functions/v1/huggingface-image-captioning`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-webhook-secret": local.dev.functionsEnv.CAPTION_WEBHOOK_SECRET!,
      ...headers,
    },
    body,
  });
}

const record = (overrides: Record<string, unknown> = {}) => ({
  id: crypto.randomUUID(),
  bucket_id: "images",
  name: "x.png",
  version: crypto.randomUUID(),
  metadata: { mimetype: "image/png", size: 100 },
  ...overrides,
});
const event = (overrides: Record<string, unknown> = {}) =>
  JSON.stringify({
    type: "INSERT",
    table: "objects",
    schema: "storage",
    record: record(),
    old_record: null,
    ...overrides,
  });

Deno.test("malformed webhook requests get a clear 4xx and touch nothing", opts, () =>
  withLocal(async (local) => {
    const cases: [string, BodyInit, number, Record<string, string>?][] = [
      ["malformed JSON", "{not json", 400],
      ["a JSON array", "[]", 400],
      ["a body over the limit", JSON.stringify({ type: "INSERT", pad: "x".repeat(300_000) }), 413],
      ["the wrong content type", event(), 415, { "content-type": "text/plain" }],
      ["a missing record", event({ record: undefined }), 400],
      ["a record without an id", event({ record: record({ id: undefined }) }), 400],
      ["a record id that is not a uuid", event({ record: record({ id: "../etc" }) }), 400],
      ["an empty name", event({ record: record({ name: "" }) }), 400],
      ["an extra field", event({ extra: 1 }), 400],
      ["another table", event({ table: "buckets" }), 400],
      ["an unknown event type", event({ type: "TRUNCATE" }), 400],
    ];
    for (const [label, body, status, headers] of cases) {
      const res = await webhook(local, body, headers);
      assert.equal(res.status, status, label);
      const json = await res.json();
      assert.equal(typeof json.error, "string", label);
    }
    const [{ count }] = await local.dev.stack.sql`select count(*)::int from captioning.jobs`;
    assert.equal(count, 0);
    assert.equal(local.fake.seen.length, 0);
  }));

Deno.test(
  "an object deleted before its webhook arrives is answered 2xx 'gone', with nothing to retry",
  opts,
  () =>
    withLocal(async (local) => {
      const res = await webhook(local, event());
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: "gone", reason: "the object no longer exists" });
      const [{ count }] = await local.dev.stack.sql`select count(*)::int from captioning.jobs`;
      assert.equal(count, 0);
      assert.equal(local.fake.seen.length, 0);
    }),
);

Deno.test("events the pipeline does not caption are answered 2xx 'skipped'", opts, () =>
  withLocal(async (local) => {
    for (
      const [label, body] of [
        ["an unknown bucket", event({ record: record({ bucket_id: "nope" }) })],
        ["a non-image", event({ record: record({ metadata: { mimetype: "application/pdf" } }) })],
        ["no metadata", event({ record: record({ metadata: null }) })],
        ["a delete", event({ type: "DELETE", record: null, old_record: record() })],
      ]
    ) {
      const res = await webhook(local, body);
      assert.equal(res.status, 200, label);
      assert.equal((await res.json()).status, "skipped", label);
    }
    assert.equal(local.fake.seen.length, 0);
  }));

Deno.test(
  "bad files become failed jobs that say why, and never reach Hugging Face",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      const files: [string, Blob, RegExp][] = [
        ["empty.png", new Blob([], { type: "image/png" }), /empty/],
        ["corrupt.png", new Blob([crypto.getRandomValues(new Uint8Array(500))], { type: "image/png" }), /not a PNG/],
        ["text.jpg", new Blob(["just text, really".repeat(10)], { type: "image/jpeg" }), /not a PNG/],
        ["huge.png", new Blob([await makeRandomPng(400)], { type: "image/png" }), /over the 2000-byte limit/],
      ];
      for (const [name, blob, reason] of files) {
        const up = await admin.storage.from("images").upload(name, blob, { contentType: blob.type });
        assert.equal(up.error, null, name);
        const job = await waitFor(`failed job for ${name}`, async () =>
          (await dev.stack.sql`select * from captioning.jobs where object_id = ${up.data!.id} and status = 'failed'`)[
            0
          ]);
        assert.match(job.last_error, reason, name);
        assert.equal(job.attempts, 1, `${name} is not retried`);
      }
      assert.equal(fake.seen.length, 0);
      assert.equal((await dev.stack.sql`select 1 from public.image_caption`).length, 0);
    }, { env: { CAPTION_MAX_IMAGE_BYTES: "2000" } }),
);

Deno.test(
  "paths with spaces and dots are captioned like any other; unicode keys are refused by Storage",
  opts,
  () =>
    withLocal(async ({ admin, dev, waitFor }) => {
      // The Storage API accepts only a safe ASCII set in object keys: a unicode key never becomes a row.
      const unicode = await admin.storage.from("images").upload("ünïcødé/猫 🐈.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      assert.equal((unicode.error as { statusCode?: string } | null)?.statusCode, "400");
      assert.match(unicode.error!.message, /Invalid key/);

      const names = ["with space/a b.png", "dots/a..b/..c.png", "symbols/(1) it's=ok!.png"];
      const expected = new Map<string, string>();
      for (const name of names) {
        const png = await makeRandomPng();
        const up = await admin.storage.from("images").upload(name, png, { contentType: "image/png" });
        assert.equal(up.error, null, `${name}: ${up.error?.message}`);
        expected.set(up.data!.id, (await describe(png))!);
      }
      await waitFor(
        "all captions",
        async () => (await dev.stack.sql`select 1 from public.image_caption`).length === names.length,
      );
      for (const row of await dev.stack.sql`select id, caption from public.image_caption`) {
        assert.equal(row.caption, expected.get(row.id));
      }
    }),
);

Deno.test(
  "'..' in a path is resolved by the URL before Storage sees it, and cannot escape the bucket",
  opts,
  () =>
    withLocal(async ({ admin, dev, waitFor }) => {
      // fetch normalises dot segments: a/../b.png is the object b.png.
      const inside = await admin.storage.from("images").upload("a/../b.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      assert.equal(inside.error, null);
      const [row] = await dev.stack.sql`select name from storage.objects where id = ${inside.data!.id}`;
      assert.equal(row.name, "b.png");
      await waitFor(
        "caption of b.png",
        async () => (await dev.stack.sql`select 1 from public.image_caption`).length === 1,
      );
      // Climbing above the bucket names another bucket, which does not exist.
      const escape = await admin.storage.from("images").upload("a/../../etc/passwd.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      assert.equal((escape.error as { statusCode?: string } | null)?.statusCode, "404");
      assert.equal((await dev.stack.sql`select 1 from storage.objects`).length, 1);
      assert.equal((await dev.stack.sql`select 1 from captioning.jobs`).length, 1);
    }),
);
