import assert from "node:assert/strict";
import { describeFunctionError, readFunctionError } from "../../web/src/function_errors.ts";

Deno.test("a 400 names the field as the form labels it", () => {
  assert.deepEqual(describeFunctionError(400, { error: "width must be a multiple of 8", field: "width" }), {
    status: 400,
    message: "Width must be a multiple of 8",
    field: "width",
    retryAfterSeconds: undefined,
  });
  assert.equal(
    describeFunctionError(400, { error: "is not a known field", field: "colour" }).message,
    "colour: is not a known field",
  );
  assert.equal(describeFunctionError(400, { error: "Body is not valid JSON" }).message, "Body is not valid JSON");
});

Deno.test("401, 429 (quota and upstream), 503, 504 and others read as sentences with the wait", () => {
  assert.match(
    describeFunctionError(401, { error: "Token has expired" }).message,
    /^You are not signed in.*Token has expired.*Sign in again\.$/,
  );
  const quota = describeFunctionError(429, { error: "quota", limit: "requests_per_minute", retry_after_seconds: 42 });
  assert.equal(quota.message, "Too many requests this minute. Try again in 42 s.");
  assert.equal(quota.retryAfterSeconds, 42);
  assert.equal(
    describeFunctionError(429, { error: "q", limit: "units_per_day", retry_after_seconds: 7200 }).message,
    "You have used today's quota. Try again in 2 h.",
  );
  assert.equal(
    describeFunctionError(429, { error: "Hugging Face rate limit" }, "12").message,
    "Too many requests (Hugging Face rate limit). Try again in 12 s.",
  );
  assert.equal(
    describeFunctionError(503, { error: "Model is loading" }, "20").message,
    "The model is busy or unavailable (Model is loading). Try again in 20 s.",
  );
  assert.equal(
    describeFunctionError(503, {}).message,
    "The model is busy or unavailable (service unavailable). Try again later.",
  );
  assert.equal(describeFunctionError(504, {}).message, "The model took too long to answer. Try again.");
  assert.equal(describeFunctionError(418, { error: "teapot" }).message, "Error 418: teapot.");
});

Deno.test("readFunctionError copes with a body that is not JSON", async () => {
  const error = await readFunctionError(new Response("<html>bad gateway</html>", { status: 502 }));
  assert.equal(error.message, "The model provider refused the call: bad gateway.");
});
