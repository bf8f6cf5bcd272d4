import assert from "node:assert/strict";
import { displayName, uploadKey } from "../../web/src/object_keys.ts";
import { parseConfig } from "../../web/src/config.ts";

// The Storage API's key rule (see shared facts).
const VALID_KEY = /^[A-Za-z0-9_/!.*'() &$=@;:+,?-]+$/;

Deno.test("uploadKey puts the file in the user's folder with a key the Storage API accepts", () => {
  const user = "2f1c7a4e-0000-4000-8000-000000000001";
  for (const name of ["cat.png", "Grüße aus Köln.jpg", "ファイル.png", "a#b%c[1].png", "../../etc/passwd", ""]) {
    const key = uploadKey(user, name, 1700000000000);
    assert.ok(key.startsWith(`${user}/1700000000000-`), key);
    assert.match(key, VALID_KEY);
    assert.equal(key.split("/").length, 2, `${name} stays in the user's folder: ${key}`);
  }
  assert.equal(uploadKey(user, "Grüße aus Köln.jpg", 1), `${user}/1-Gruße-aus-Koln.jpg`.replace("ß", ""));
  assert.equal(displayName(uploadKey(user, "cat.png", 5)), "cat.png");
});

Deno.test("parseConfig accepts a project URL and key, and refuses anything else", () => {
  assert.deepEqual(parseConfig({ supabaseUrl: "https://abc.supabase.co/", supabaseKey: "sb_publishable_x" }), {
    supabaseUrl: "https://abc.supabase.co",
    supabaseKey: "sb_publishable_x",
  });
  assert.equal(parseConfig({ supabaseUrl: "javascript:alert(1)", supabaseKey: "k" }), null);
  assert.equal(parseConfig({ supabaseUrl: "https://abc.supabase.co" }), null);
  assert.equal(parseConfig("nope"), null);
});
