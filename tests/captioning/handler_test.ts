/**
 * The captioning handler called directly, with an injected environment: everything it decides
 * before it touches the database (caller, method, body, event, bucket) needs no server at all.
 */
import assert from "node:assert/strict";
import type { Env } from "../../supabase/functions/_shared/runtime/env.ts";
import { createHandler } from "../../supabase/functions/huggingface-image-captioning/handler.ts";

const SECRET = "handler-test-webhook-secret";
const env: Env = {
  SUPABASE_URL: "http://127.0.0.1:9", // never reached by these requests
  SUPABASE_SERVICE_ROLE_KEY: "service-role-key",
  CAPTION_WEBHOOK_SECRET: SECRET,
  HUGGING_FACE_ACCESS_TOKEN: "hf_never_used",
};
const URL_ = "http://functions.test/functions/v1/huggingface-image-captioning";

function call(body: string, headers: Record<string, string> = {}, method = "POST", environment: Env = env) {
  const background: Promise<unknown>[] = [];
  const handler = createHandler(environment, { waitUntil: (p) => void background.push(p) });
  return handler(
    new Request(URL_, {
      method,
      headers: { "content-type": "application/json", "x-webhook-secret": SECRET, ...headers },
      body: method === "GET" ? undefined : body,
    }),
  ).then(async (res) => ({ res, json: await res.json(), background }));
}

const event = (record: Record<string, unknown> | null, type = "INSERT") =>
  JSON.stringify({ type, table: "objects", schema: "storage", record, old_record: null });
const record = (overrides: Record<string, unknown> = {}) => ({
  id: crypto.randomUUID(),
  bucket_id: "images",
  name: "a.png",
  metadata: { mimetype: "image/png" },
  ...overrides,
});

Deno.test("a wrong or missing secret is a 401 before anything else is read", async () => {
  for (const headers of [{ "x-webhook-secret": "nope" }, { "x-webhook-secret": "" }]) {
    const { res, json, background } = await call("{not json", headers);
    assert.equal(res.status, 401);
    assert.match(json.error, /x-webhook-secret/);
    assert.equal(background.length, 0);
  }
});

Deno.test("methods other than POST get 405", async () => {
  const { res } = await call("", {}, "GET");
  assert.equal(res.status, 405);
  assert.equal(res.headers.get("allow"), "POST");
});

Deno.test("bad bodies get 400, 413 or 415", async () => {
  const cases: [string, Record<string, string>, number][] = [
    ["{", {}, 400],
    [event(record({ id: "nope" })), {}, 400],
    [JSON.stringify({ pad: "x".repeat(300_000) }), {}, 413],
    [event(record()), { "content-type": "text/plain" }, 415],
  ];
  for (const [body, headers, status] of cases) {
    const { res, json } = await call(body, headers);
    assert.equal(res.status, status, body.slice(0, 40));
    assert.equal(typeof json.error, "string");
  }
});

Deno.test("other buckets, non-images and deletes are skipped with 200 and no background work", async () => {
  for (
    const body of [
      event(record({ bucket_id: "avatars" })),
      event(record({ metadata: { mimetype: "text/plain" } })),
      event(null, "DELETE"),
    ]
  ) {
    const { res, json, background } = await call(body);
    assert.equal(res.status, 200);
    assert.equal(json.status, "skipped");
    assert.equal(background.length, 0);
  }
});

Deno.test("CAPTION_BUCKET chooses the captioned bucket", async () => {
  const { json } = await call(event(record({ bucket_id: "images" })), {}, "POST", { ...env, CAPTION_BUCKET: "photos" });
  assert.equal(json.status, "skipped");
  assert.match(json.reason, /images/);
});

Deno.test("a missing webhook secret setting is a 500 naming the variable", async () => {
  const { CAPTION_WEBHOOK_SECRET: _, ...withoutSecret } = env;
  const { res, json } = await call(event(record()), {}, "POST", withoutSecret);
  assert.equal(res.status, 500);
  assert.match(json.error, /CAPTION_WEBHOOK_SECRET/);
});

Deno.test("an unreachable database is a 503, so the sweeper's next send can succeed", async () => {
  const original = console.error;
  console.error = () => {};
  try {
    const { res, json, background } = await call(event(record()));
    assert.equal(res.status, 503);
    assert.match(json.error, /database is unavailable/);
    assert.equal(background.length, 0);
  } finally {
    console.error = original;
  }
});
