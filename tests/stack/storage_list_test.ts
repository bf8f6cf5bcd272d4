import assert from "node:assert/strict";
import { createClient } from "npm:@supabase/supabase-js@2.119.0";
import { makePng } from "../support/images.ts";
import { withLocal } from "../support/local.ts";
import { entriesUnder, type ListEntry } from "./storage_list.ts";

const file = (name: string): ListEntry => ({
  name,
  id: crypto.randomUUID(),
  updated_at: "t",
  created_at: "t",
  last_accessed_at: "t",
  metadata: {},
});

Deno.test("entriesUnder lists files and folders directly under the prefix, sorted, filtered by search", () => {
  const rows = [file("u/b.png"), file("u/a.png"), file("u/sub/c.png"), file("u/sub/d.png")];
  assert.deepEqual(entriesUnder(rows, "u/", "", false).map((e) => [e.name, e.id === null]), [
    ["a.png", false],
    ["b.png", false],
    ["sub", true],
  ]);
  assert.deepEqual(entriesUnder(rows, "u/", "b", true).map((e) => e.name), ["b.png"]);
  assert.deepEqual(entriesUnder(rows, "u/", "", true).map((e) => e.name), ["sub", "b.png", "a.png"]);
});

Deno.test("storage list and my_caption_jobs show a user their own images only", async () => {
  await withLocal(async (local) => {
    const options = { auth: { persistSession: false, autoRefreshToken: false } };
    const alice = createClient(local.dev.apiUrl, local.dev.stack.anonKey, options);
    const bob = createClient(local.dev.apiUrl, local.dev.stack.anonKey, options);
    const a = (await alice.auth.signInAnonymously()).data.user!.id;
    const b = (await bob.auth.signInAnonymously()).data.user!.id;
    const png = await makePng(8, 8);
    assert.equal(
      (await alice.storage.from("images").upload(`${a}/one.png`, png, { contentType: "image/png" })).error,
      null,
    );
    assert.equal(
      (await alice.storage.from("images").upload(`${a}/broken.png`, new Uint8Array([1, 2, 3]), {
        contentType: "image/png",
      })).error,
      null,
    );

    const listed = await alice.storage.from("images").list(a);
    assert.equal(listed.error, null);
    assert.deepEqual(listed.data!.map((e) => e.name), ["broken.png", "one.png"]);
    assert.deepEqual((await bob.storage.from("images").list(a)).data, []);
    assert.deepEqual((await bob.storage.from("images").list(b)).data, []);

    const jobs = await local.waitFor("both jobs finished", async () => {
      const { data } = await alice.rpc("my_caption_jobs");
      return data?.length === 2 && data.every((j: { status: string }) => ["done", "failed"].includes(j.status))
        ? data
        : undefined;
    }, 15_000);
    const byStatus = Object.fromEntries(jobs.map((j: { status: string; last_error: string }) => [j.status, j]));
    assert.ok(byStatus.done);
    assert.match(byStatus.failed.last_error, /image/i);
    assert.deepEqual((await bob.rpc("my_caption_jobs")).data, []);
    const anon = await createClient(local.dev.apiUrl, local.dev.stack.anonKey, options).rpc("my_caption_jobs");
    assert.equal(anon.status, 401);
  });
});
