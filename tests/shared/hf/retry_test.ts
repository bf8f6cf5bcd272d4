/**
 * Backoff arithmetic, Retry-After parsing and an abortable sleep.
 */
import assert from "node:assert/strict";
import { backoffDelay, parseRetryAfter, sleep } from "../../../supabase/functions/_shared/hf/retry.ts";

const always = (value: number) => () => value;

Deno.test("backoffDelay is 0 when random gives 0, whatever the attempt", () => {
  for (const attempt of [1, 2, 5, 30]) {
    assert.equal(backoffDelay(attempt, 500, 20_000, always(0)), 0);
  }
});

Deno.test("backoffDelay reaches its ceiling base·2^(attempt-1) when random gives 1", () => {
  assert.equal(backoffDelay(1, 500, 20_000, always(1)), 500);
  assert.equal(backoffDelay(2, 500, 20_000, always(1)), 1000);
  assert.equal(backoffDelay(3, 500, 20_000, always(1)), 2000);
  assert.equal(backoffDelay(6, 500, 20_000, always(1)), 16_000);
});

Deno.test("backoffDelay is capped at maxMs", () => {
  assert.equal(backoffDelay(7, 500, 20_000, always(1)), 20_000);
  assert.equal(backoffDelay(60, 500, 20_000, always(1)), 20_000);
  assert.equal(backoffDelay(3, 500, 1_000, always(0.5)), 500);
});

Deno.test("backoffDelay scales the ceiling by random and rounds to whole ms", () => {
  assert.equal(backoffDelay(2, 500, 20_000, always(0.25)), 250);
  assert.equal(backoffDelay(1, 3, 20_000, always(0.5)), 2); // 1.5 rounds to 2
});

Deno.test("backoffDelay with the real Math.random stays within [0, ceiling]", () => {
  for (let i = 0; i < 200; i++) {
    const delay = backoffDelay(3, 100, 20_000);
    assert.ok(delay >= 0 && delay <= 400 && Number.isInteger(delay), String(delay));
  }
});

Deno.test("parseRetryAfter reads delta seconds, with or without decimals and spaces", () => {
  assert.equal(parseRetryAfter("0"), 0);
  assert.equal(parseRetryAfter("17"), 17_000);
  assert.equal(parseRetryAfter(" 3 "), 3_000);
  assert.equal(parseRetryAfter("1.5"), 1_500);
  assert.equal(parseRetryAfter("0.25"), 250);
});

Deno.test("parseRetryAfter reads an HTTP date relative to now, and a past date as 0", () => {
  const now = Date.parse("Wed, 21 Oct 2026 07:28:00 GMT");
  assert.equal(parseRetryAfter("Wed, 21 Oct 2026 07:28:30 GMT", now), 30_000);
  assert.equal(parseRetryAfter("Wed, 21 Oct 2026 08:28:00 GMT", now), 3_600_000);
  assert.equal(parseRetryAfter("Wed, 21 Oct 2026 07:27:00 GMT", now), 0);
});

Deno.test("parseRetryAfter returns undefined when absent or unparseable", () => {
  for (const value of [undefined, null, "", "soon", "1e3", "5s", "0x10", "twelve monkeys"]) {
    assert.equal(parseRetryAfter(value, 0), undefined, JSON.stringify(value));
  }
});

Deno.test({
  // V8's Date.parse reads these as dates; they must not turn into "retry now".
  name: "parseRetryAfter returns undefined for garbage that V8's Date.parse happens to accept",
  fn() {
    for (const value of ["-5", "+5", "1.", "abc 1"]) {
      assert.equal(parseRetryAfter(value, Date.parse("2026-11-22T00:00:00Z")), undefined, value);
    }
  },
});

Deno.test("sleep resolves after the delay", async () => {
  const started = performance.now();
  await sleep(20);
  assert.ok(performance.now() - started >= 15);
});

Deno.test("sleep resolves with an unaborted signal and detaches from it", async () => {
  const controller = new AbortController();
  await sleep(1, controller.signal);
  controller.abort(new Error("late")); // must not throw or reject anything now
});

Deno.test("sleep rejects with the signal's reason when it aborts first", async () => {
  const controller = new AbortController();
  const reason = new DOMException("caller gave up", "AbortError");
  const sleeping = sleep(60_000, controller.signal); // the timer is cleared on abort, so no leak
  controller.abort(reason);
  await assert.rejects(sleeping, (error) => error === reason);
});

Deno.test("sleep rejects at once on an already-aborted signal", async () => {
  const reason = new Error("already gone");
  await assert.rejects(sleep(60_000, AbortSignal.abort(reason)), (error) => error === reason);
});
