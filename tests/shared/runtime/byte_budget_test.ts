import assert from "node:assert/strict";
import { createByteBudget } from "../../../supabase/functions/_shared/runtime/byte_budget.ts";
import { HttpError } from "../../../supabase/functions/_shared/http/mod.ts";

Deno.test("byte budget: reservations within capacity are granted at once and given back", async () => {
  const budget = createByteBudget(100);
  const a = await budget.reserve(60);
  const b = await budget.reserve(40);
  assert.deepEqual(budget.available(), 0);
  a();
  a(); // a second release gives nothing more back
  assert.deepEqual(budget.available(), 60);
  b();
  assert.deepEqual(budget.available(), 100);
});

Deno.test("byte budget: a reservation waits for bytes to be given back, first come first served", async () => {
  const budget = createByteBudget(100, { waitMs: 1000 });
  const first = await budget.reserve(80);
  const order: string[] = [];
  const big = budget.reserve(70).then((release) => (order.push("big"), release));
  const small = budget.reserve(10).then((release) => (order.push("small"), release));
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(order, [], "the small one does not overtake the big one waiting ahead of it");
  first();
  (await big)();
  (await small)();
  assert.deepEqual(order, ["big", "small"]);
  assert.deepEqual(budget.available(), 100);
});

Deno.test("byte budget: more than the capacity waits until it is alone, then takes all of it", async () => {
  const budget = createByteBudget(100, { waitMs: 1000 });
  const held = await budget.reserve(1);
  const whole = budget.reserve(500);
  held();
  const release = await whole;
  assert.deepEqual(budget.available(), 0);
  release();
  assert.deepEqual(budget.available(), 100);
});

Deno.test("byte budget: a reservation not served within the wait is refused with 503 and Retry-After", async () => {
  const budget = createByteBudget(100, { waitMs: 30, retryAfterS: 7 });
  const held = await budget.reserve(100);
  const error = await budget.reserve(1).then(() => undefined, (e) => e);
  assert.ok(error instanceof HttpError);
  assert.deepEqual(error.status, 503);
  assert.deepEqual(new Headers(error.headers).get("Retry-After"), "7");
  held();
  assert.deepEqual(budget.available(), 100, "the refused one holds nothing");
});

Deno.test("byte budget: a refused head of the queue lets smaller ones behind it through", async () => {
  const budget = createByteBudget(100, { waitMs: 1000 });
  const held = await budget.reserve(50);
  const controller = new AbortController();
  const big = budget.reserve(100, controller.signal);
  const small = budget.reserve(50);
  controller.abort();
  await assert.rejects(big, HttpError);
  (await small)();
  held();
  assert.deepEqual(budget.available(), 100);
});

Deno.test("byte budget: a capacity that is not a positive integer is refused", () => {
  for (const capacity of [0, -1, 1.5, NaN]) {
    assert.throws(() => createByteBudget(capacity), RangeError);
  }
});
