import assert from "node:assert/strict";
import { cacheKey, canonicalJson, sha256Hex, sha256OfStream } from "../../../supabase/functions/_shared/cache/key.ts";

const base = { task: "summarization", model: "org/model", parameters: { max_length: 60 }, input: { json: "text" } };

Deno.test("canonicalJson sorts keys at every depth and drops undefined members", () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [1, { z: true, y: null }], c: "x" }, u: undefined }),
    '{"a":{"c":"x","d":[1,{"y":null,"z":true}]},"b":1}',
  );
  assert.equal(canonicalJson([undefined, "é\n"]), '[null,"é\\n"]');
});

Deno.test("canonicalJson writes numbers in one form", () => {
  assert.equal(
    canonicalJson({ a: 1.0, b: 1e21, c: -0, d: 0.1 + 0.2 }),
    '{"a":1,"b":1e+21,"c":0,"d":0.30000000000000004}',
  );
});

Deno.test("canonicalJson refuses what JSON cannot say exactly", () => {
  for (const bad of [NaN, Infinity, 1n, () => 1, Symbol("s"), new Date(0), new Map(), new Uint8Array(1)]) {
    assert.throws(() => canonicalJson({ bad }), TypeError, String(bad));
  }
});

Deno.test("the key is 64 hex digits and the same for the same call written differently", async () => {
  const key = await cacheKey(base);
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.equal(await cacheKey({ ...base, parameters: { max_length: 60.0 } }), key);
  const reordered = {
    input: { json: "text" },
    parameters: { max_length: 60 },
    model: "org/model",
    task: "summarization",
  };
  assert.equal(await cacheKey(reordered), key);
});

Deno.test("the key changes with the task, the model, any parameter and the input", async () => {
  const key = await cacheKey(base);
  const variants = [
    { ...base, task: "translation" },
    { ...base, model: "org/other" },
    { ...base, parameters: { max_length: 61 } },
    { ...base, parameters: { max_length: 60, min_length: 1 } },
    { ...base, parameters: undefined },
    { ...base, input: { json: "text " } },
    { ...base, input: { json: ["text"] } },
  ];
  const keys = await Promise.all(variants.map(cacheKey));
  assert.equal(new Set([key, ...keys]).size, variants.length + 1);
});

Deno.test("bytes are keyed by their SHA-256: the same content under any path shares one key", async () => {
  const bytes = new TextEncoder().encode("the same image bytes");
  const byBytes = await cacheKey({ ...base, task: "image-to-text", input: { bytes } });
  const digest = await sha256Hex(bytes);
  assert.equal(await cacheKey({ ...base, task: "image-to-text", input: { sha256: digest } }), byBytes);
  assert.equal(await cacheKey({ ...base, task: "image-to-text", input: { sha256: digest.toUpperCase() } }), byBytes);
  assert.notEqual(await cacheKey({ ...base, task: "image-to-text", input: { bytes: bytes.subarray(1) } }), byBytes);
  // A text input that happens to spell the digest is a different question.
  assert.notEqual(await cacheKey({ ...base, task: "image-to-text", input: { json: digest } }), byBytes);
  await assert.rejects(cacheKey({ ...base, input: { sha256: "abc" } }), TypeError);
});

Deno.test("sha256OfStream hashes a stream chunk by chunk to the same digest", async () => {
  const bytes = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 251);
  const stream = new Blob([bytes.subarray(0, 70_000), bytes.subarray(70_000)]).stream();
  assert.equal(await sha256OfStream(stream), await sha256Hex(bytes));
  // The well-known digest of the empty string.
  assert.equal(
    await sha256OfStream(new Blob([]).stream()),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
});
