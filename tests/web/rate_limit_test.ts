import assert from "node:assert/strict";
import { describeQuotas, formatSeconds, parseRateLimit } from "../../web/src/rate_limit.ts";

Deno.test("parseRateLimit reads the structured-field form with its policies", () => {
  const headers = new Headers({
    "RateLimit-Policy": '"requests_per_minute";q=10;w=60, "units_per_day";q=100;w=86400',
    "RateLimit": '"requests_per_minute";r=7;t=42, "units_per_day";r=91;t=3600',
  });
  assert.deepEqual(parseRateLimit(headers), [
    { policy: "requests_per_minute", remaining: 7, resetSeconds: 42, limit: 10, windowSeconds: 60 },
    { policy: "units_per_day", remaining: 91, resetSeconds: 3600, limit: 100, windowSeconds: 86400 },
  ]);
  assert.equal(
    describeQuotas(parseRateLimit(headers)),
    "7 of 10 requests left this minute, resets in 42 s · 91 of 100 units left today, resets in 1 h",
  );
});

Deno.test("parseRateLimit reads the earlier drafts' dictionary form, and nothing from absent or broken headers", () => {
  assert.deepEqual(parseRateLimit(new Headers({ RateLimit: "limit=10, remaining=0, reset=30" })), [
    { policy: "default", remaining: 0, resetSeconds: 30, limit: 10, windowSeconds: undefined },
  ]);
  assert.equal(
    describeQuotas(parseRateLimit(new Headers({ RateLimit: "limit=10, remaining=0, reset=30" }))),
    "0 of 10 left, resets in 30 s",
  );
  assert.equal(
    describeQuotas(parseRateLimit(new Headers({ "RateLimit-Policy": '"burst";q=5', RateLimit: '"burst";r=4' }))),
    "4 of 5 left (burst)",
  );
  assert.deepEqual(parseRateLimit(new Headers()), []);
  assert.deepEqual(parseRateLimit(new Headers({ RateLimit: '"x";t=5' })), []);
  assert.deepEqual(parseRateLimit(new Headers({ RateLimit: "garbage" })), []);
});

Deno.test("formatSeconds rounds up to what a person reads", () => {
  assert.equal(formatSeconds(0.2), "1 s");
  assert.equal(formatSeconds(59), "59 s");
  assert.equal(formatSeconds(60), "60 s");
  assert.equal(formatSeconds(61), "2 min");
  assert.equal(formatSeconds(3600), "1 h");
  assert.equal(formatSeconds(3 * 3600 + 300), "3 h 5 min");
  assert.equal(formatSeconds(-4), "0 s");
});
