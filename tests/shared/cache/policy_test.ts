import assert from "node:assert/strict";
import { CACHE_RULES, cacheDecision } from "../../../supabase/functions/_shared/cache/policy.ts";

const DETERMINISTIC = [
  "summarization",
  "translation",
  "text-classification",
  "fill-mask",
  "feature-extraction",
  "image-to-text",
  "image-classification",
  "object-detection",
  "image-segmentation",
  "automatic-speech-recognition",
  "audio-classification",
];

Deno.test("every deterministic task is cached, with or without parameters", () => {
  for (const task of DETERMINISTIC) {
    assert.equal(CACHE_RULES[task], "always", task);
    assert.equal(cacheDecision(task, "m", undefined).cacheable, true, task);
    assert.equal(cacheDecision(task, "m", { temperature: 1.2 }).cacheable, true, task);
  }
});

Deno.test("text-to-image and text-to-speech are cached only with a fixed integer seed", () => {
  for (const task of ["text-to-image", "text-to-speech"]) {
    assert.equal(cacheDecision(task, "m", {}).cacheable, false);
    assert.equal(cacheDecision(task, "m", { seed: "7" }).cacheable, false);
    assert.equal(cacheDecision(task, "m", { seed: 7.5 }).cacheable, false);
    assert.equal(cacheDecision(task, "m", { seed: 0 }).cacheable, true);
    assert.equal(cacheDecision(task, "m", { seed: 4294967295 }).cacheable, true);
  }
  const unseeded = { unseededModels: new Set(["org/ignores-seed"]) };
  assert.equal(cacheDecision("text-to-image", "org/ignores-seed", { seed: 1 }, undefined, unseeded).cacheable, false);
  assert.equal(cacheDecision("text-to-image", "org/honours-seed", { seed: 1 }, undefined, unseeded).cacheable, true);
});

Deno.test("chat and text generation are cached only with temperature 0, never streamed", () => {
  for (const task of ["chat-completion", "text-generation"]) {
    assert.equal(cacheDecision(task, "m", {}).cacheable, false, "default temperature samples");
    assert.equal(cacheDecision(task, "m", { temperature: 0.7 }).cacheable, false);
    assert.equal(cacheDecision(task, "m", { temperature: "0" }).cacheable, false);
    assert.equal(cacheDecision(task, "m", { temperature: 0 }).cacheable, true);
    assert.equal(cacheDecision(task, "m", { temperature: 0, stream: true }).cacheable, false);
    assert.equal(cacheDecision(task, "m", { temperature: 0, stream: false }).cacheable, true);
  }
});

Deno.test("a task missing from the table is never cached", () => {
  for (const task of ["zero-shot-classification", "toString", "__proto__", ""]) {
    assert.equal(cacheDecision(task, "m", { seed: 1, temperature: 0 }).cacheable, false, task);
  }
});

Deno.test("Cache-Control: no-cache bypasses the lookup but stays cacheable; no-store skips the cache", () => {
  const noCache = cacheDecision("summarization", "m", {}, new Headers({ "cache-control": "No-Cache" }));
  assert.deepEqual({ ...noCache, reason: undefined }, { cacheable: true, bypassLookup: true, reason: undefined });
  const maxAge = cacheDecision("summarization", "m", {}, new Headers({ "cache-control": "max-age=0, no-cache=x" }));
  assert.equal(maxAge.bypassLookup, true);
  const noStore = cacheDecision("summarization", "m", {}, new Headers({ "cache-control": "no-store" }));
  assert.equal(noStore.cacheable, false);
  assert.equal(
    cacheDecision("summarization", "m", {}, new Headers({ "cache-control": "max-age=60" })).bypassLookup,
    false,
  );
  // An uncacheable call is not made cacheable by no-cache.
  assert.equal(cacheDecision("text-to-image", "m", {}, new Headers({ "cache-control": "no-cache" })).cacheable, false);
});
