import assert from "node:assert/strict";
import { runInBackground } from "../../../supabase/functions/_shared/runtime/background.ts";

type Global = { EdgeRuntime?: { waitUntil(work: Promise<unknown>): void } };

Deno.test("runInBackground hands the work to EdgeRuntime.waitUntil where the platform has it", async () => {
  const handed: Promise<unknown>[] = [];
  (globalThis as Global).EdgeRuntime = { waitUntil: (work) => void handed.push(work) };
  try {
    let done = false;
    runInBackground(Promise.resolve().then(() => done = true));
    assert.equal(handed.length, 1);
    await handed[0];
    assert.equal(done, true, "waitUntil's promise ends when the work does");
  } finally {
    delete (globalThis as Global).EdgeRuntime;
  }
});

Deno.test("runInBackground logs a failure instead of leaving an unhandled rejection", async () => {
  const logged: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    runInBackground(Promise.reject(new Error("store failed")));
    await new Promise((resolve) => setTimeout(resolve, 0));
  } finally {
    console.error = original;
  }
  assert.equal(logged.length, 1);
  assert.match(String(logged[0][1]), /store failed/);
});
