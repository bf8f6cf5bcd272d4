import assert from "node:assert/strict";
import { HttpError } from "../../../supabase/functions/_shared/http/mod.ts";
import { checkStorageRef, readStorageObject } from "../../../supabase/functions/_shared/tasks/storage_ref.ts";

const req = (headers: Record<string, string> = { authorization: "Bearer user-jwt" }) =>
  new Request("http://fn.test/", { method: "POST", headers });

async function statusOf(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HttpError);
    return e.status;
  }
  return 200;
}

Deno.test("checkStorageRef refuses paths that climb or that Storage would refuse", () => {
  assert.deepEqual(checkStorageRef({ bucket: "images", path: "u/a b.png" }), { bucket: "images", path: "u/a b.png" });
  for (const path of ["../x", "a/../b", "/abs", "a//b", "a/./b", "ü.png", "a#b", ""]) {
    assert.throws(() => checkStorageRef({ bucket: "images", path }), HttpError, path);
  }
  assert.throws(() => checkStorageRef({ bucket: "../x", path: "a" }), HttpError);
});

Deno.test("readStorageObject downloads as the caller, and keeps Storage's own status", async () => {
  const seen: Request[] = [];
  const answers: Response[] = [
    new Response(new Uint8Array([1, 2, 3]), { headers: { "content-type": "image/png" } }),
    Response.json({ statusCode: "404", error: "not_found", message: "Object not found" }, { status: 400 }),
    Response.json({ statusCode: "403", error: "Unauthorized", message: "no" }, { status: 400 }),
    new Response("x".repeat(20)),
    new Response("oops", { status: 500 }),
  ];
  const access = {
    supabaseUrl: "http://supabase.test/",
    anonKey: "anon",
    fetch: (input: string | URL | Request, init?: RequestInit) => {
      seen.push(new Request(input, init));
      return Promise.resolve(answers.shift()!);
    },
  };
  const file = await readStorageObject(access, req(), { bucket: "images", path: "u/a b.png" }, 10);
  assert.deepEqual([...file.bytes], [1, 2, 3]);
  assert.equal(file.contentType, "image/png");
  assert.equal(seen[0].url, "http://supabase.test/storage/v1/object/authenticated/images/u/a%20b.png");
  assert.equal(seen[0].headers.get("authorization"), "Bearer user-jwt");
  assert.equal(seen[0].headers.get("apikey"), "anon");
  assert.equal(await statusOf(readStorageObject(access, req(), { bucket: "images", path: "u/x" }, 10)), 404);
  assert.equal(await statusOf(readStorageObject(access, req(), { bucket: "images", path: "u/x" }, 10)), 403);
  assert.equal(await statusOf(readStorageObject(access, req(), { bucket: "images", path: "u/x" }, 10)), 413);
  assert.equal(await statusOf(readStorageObject(access, req(), { bucket: "images", path: "u/x" }, 10)), 502);
  // No caller token: 401 before anything is fetched.
  assert.equal(await statusOf(readStorageObject(access, req({}), { bucket: "images", path: "u/x" }, 10)), 401);
  assert.equal(seen.length, 5);
});
