import assert from "node:assert/strict";
import { HfHttpError } from "../../../supabase/functions/_shared/hf/errors.ts";
import { isModelProblem, runWithFallback } from "../../../supabase/functions/_shared/hf/fallback.ts";
import { HttpError } from "../../../supabase/functions/_shared/http/mod.ts";

const upstream = (status: number) => new HfHttpError(new HttpError(502, `upstream ${status}`), status);

Deno.test("isModelProblem: 402, 404, 410 and 5xx move on; the caller's 4xx, 429 and local errors do not", () => {
  for (const s of [402, 404, 410, 500, 502, 503]) assert.equal(isModelProblem(upstream(s)), true, String(s));
  for (const s of [400, 401, 413, 422, 429]) assert.equal(isModelProblem(upstream(s)), false, String(s));
  assert.equal(isModelProblem(new HttpError(503, "paused")), false);
  assert.equal(isModelProblem(new TypeError("network")), false);
});

Deno.test("runWithFallback tries the chain in order and says which model served", async () => {
  const tried: string[] = [];
  const result = await runWithFallback(["a", "b", "c"], (m) => {
    tried.push(m);
    if (m === "a") return Promise.reject(upstream(410));
    if (m === "b") return Promise.reject(upstream(503));
    return Promise.resolve(`served by ${m}`);
  });
  assert.deepEqual(result, { value: "served by c", model: "c" });
  assert.deepEqual(tried, ["a", "b", "c"]);
});

Deno.test("runWithFallback stops at a caller-caused error, and throws the last model's error", async () => {
  const tried: string[] = [];
  await assert.rejects(
    runWithFallback(["a", "b"], (m) => (tried.push(m), Promise.reject(upstream(422)))),
    (e: unknown) => e instanceof HfHttpError && e.upstreamStatus === 422,
  );
  assert.deepEqual(tried, ["a"]);
  await assert.rejects(
    runWithFallback(["a", "b"], (m) => Promise.reject(upstream(m === "a" ? 404 : 402))),
    (e: unknown) => e instanceof HfHttpError && e.upstreamStatus === 402,
  );
});
