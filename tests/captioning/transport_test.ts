/**
 * How the image reaches the model: the default per project URL, a signed URL end to end, and
 * what a job says when its bytes are missing or the function is misconfigured.
 */
import assert from "node:assert/strict";
import { imageTransportFromEnv } from "../../supabase/functions/huggingface-image-captioning/transport.ts";
import { FAST_RETRIES, withLocal } from "../support/local.ts";
import { describe, makeRandomPng } from "./helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("a hosted project defaults to url; one a provider cannot reach defaults to inline", () => {
  const cases: [string, string][] = [
    ["https://abcdefghijklmnop.supabase.co", "url"],
    ["https://api.example.com", "url"],
    ["http://127.0.0.1:54321", "inline"],
    ["http://localhost:54321", "inline"],
    ["http://kong:8000", "inline"],
    ["https://192.168.1.20", "inline"],
    ["https://10.0.0.5:8443", "inline"],
    ["http://abcdefghijklmnop.supabase.co", "inline"],
    ["https://host.docker.internal", "inline"],
  ];
  for (const [url, expected] of cases) assert.equal(imageTransportFromEnv({}, url), expected, url);
  assert.equal(imageTransportFromEnv({ CAPTION_IMAGE_TRANSPORT: "url" }, "http://127.0.0.1"), "url");
  assert.equal(imageTransportFromEnv({ CAPTION_IMAGE_TRANSPORT: "inline" }, "https://x.supabase.co"), "inline");
  assert.throws(
    () => imageTransportFromEnv({ CAPTION_IMAGE_TRANSPORT: "ftp" }, "https://x.supabase.co"),
    /url' or 'inline/,
  );
});

Deno.test(
  "url transport: the model is given a signed Storage URL, fetches the image and captions it",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      const png = await makeRandomPng();
      const { data } = await admin.storage.from("images").upload("url/one.png", png, { contentType: "image/png" });
      const row = await waitFor("caption", async () => {
        const [r] = await dev.stack.sql`select caption from public.image_caption where id = ${data!.id}`;
        return r;
      });
      assert.equal(row.caption, await describe(png));
      const url: string = fake.seen[0].json.messages[0].content[1].image_url.url;
      assert.match(url, new RegExp(`^${dev.apiUrl}/storage/v1/object/sign/images/url/one\\.png\\?token=`));
    }, { env: { CAPTION_IMAGE_TRANSPORT: "url" } }),
);

Deno.test(
  "a row whose file bytes are missing is retried, and last_error says so",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      dev.setFunctionsDown(true);
      const { data } = await admin.storage.from("images").upload("gone/bytes.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      const [{ version }] = await dev.stack.sql`select version from storage.objects where id = ${data!.id}`;
      await Deno.remove(`${dev.stack.storageDir}/${version}`);
      dev.setFunctionsDown(false);
      const job = await waitFor("last_error", async () => {
        const [j] = await dev.stack.sql`select status, last_error from captioning.jobs where object_id = ${data!.id}`;
        return j?.last_error ? j : undefined;
      }, 20_000);
      assert.match(job.last_error, /Storage answered 500 .*file bytes are missing from the storage backend/);
      assert.notEqual(job.status, "done");
      assert.equal(fake.seen.length, 0);
    }, { settings: FAST_RETRIES }),
);

Deno.test(
  "a misconfigured function writes the reason on the job, naming the setting only",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      const { data } = await admin.storage.from("images").upload("misconfigured.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      const job = await waitFor("last_error", async () => {
        const [j] = await dev.stack.sql`select status, last_error from captioning.jobs where object_id = ${data!.id}`;
        return j?.last_error ? j : undefined;
      });
      assert.match(
        job.last_error,
        /^function not started: Server misconfigured: CAPTION_MODE must be 'chat' or 'image-to-text'$/,
      );
      assert.equal(job.status, "pending");
      assert.equal(fake.seen.length, 0);
    }, { env: { CAPTION_MODE: "poetry" } }),
);

Deno.test(
  "CAPTION_IMAGE_RESIZE asks Storage for a transformed image through a render URL",
  opts,
  () =>
    withLocal(async ({ admin, dev, fake, waitFor }) => {
      const png = await makeRandomPng();
      const { data } = await admin.storage.from("images").upload("resize/one.png", png, { contentType: "image/png" });
      await waitFor("caption", async () => {
        const [r] = await dev.stack.sql`select caption from public.image_caption where id = ${data!.id}`;
        return r;
      });
      const url = new URL(fake.seen[0].json.messages[0].content[1].image_url.url);
      assert.equal(url.pathname, "/storage/v1/render/image/sign/images/resize/one.png");
      const claims = JSON.parse(
        atob(url.searchParams.get("token")!.split(".")[1].replaceAll("-", "+").replaceAll("_", "/")),
      );
      assert.equal(claims.transformations, "width:1024,height:1024,resize:contain");
    }, { env: { CAPTION_IMAGE_TRANSPORT: "url", CAPTION_IMAGE_RESIZE: "1024" } }),
);
