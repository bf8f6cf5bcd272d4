/**
 * Reading configuration from an injected environment snapshot.
 */
import assert from "node:assert/strict";
import {
  ConfigError,
  configured,
  envInt,
  envString,
  requireEnv,
} from "../../../supabase/functions/_shared/runtime/env.ts";
import { HttpError } from "../../../supabase/functions/_shared/http/mod.ts";

/** Runs `fn` and returns what it threw, failing when it throws nothing. */
function thrownBy(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  assert.fail("expected an error");
}

Deno.test("envString returns the first set name, trimmed", () => {
  const env = { A: undefined, B: "  first  ", C: "second" };
  assert.equal(envString(env, "A", "B", "C"), "first");
  assert.equal(envString(env, "C", "B"), "second");
});

Deno.test("envString skips blank and whitespace-only values", () => {
  assert.equal(envString({ A: "", B: " \t\n ", C: "value" }, "A", "B", "C"), "value");
  assert.equal(envString({ A: "", B: "   " }, "A", "B"), undefined);
  assert.equal(envString({}, "A"), undefined);
  assert.equal(envString({ A: "x" }), undefined, "no names, no value");
});

Deno.test("requireEnv returns the first set value", () => {
  assert.equal(requireEnv({ B: " b " }, "A", "B"), "b");
});

Deno.test("requireEnv names every variable it tried, and never a value", () => {
  const secret = "   "; // set but blank, so it counts as missing
  const error = thrownBy(() => requireEnv({ TOKEN_A: secret, OTHER: "hf_not_this_one" }, "TOKEN_A", "TOKEN_B"));
  assert.ok(error instanceof ConfigError);
  assert.equal(error.name, "ConfigError");
  assert.equal(error.message, "TOKEN_A or TOKEN_B is not set");
  assert.ok(!error.message.includes("hf_not_this_one"));
});

Deno.test("envInt returns the fallback when unset or blank, and parses a trimmed integer", () => {
  assert.equal(envInt({}, "N", 7), 7);
  assert.equal(envInt({ N: "  " }, "N", 7), 7);
  assert.equal(envInt({ N: " 42 " }, "N", 7), 42);
  assert.equal(envInt({ N: "0" }, "N", 7), 0);
});

Deno.test("envInt accepts the bounds themselves", () => {
  assert.equal(envInt({ N: "1" }, "N", 5, { min: 1, max: 20 }), 1);
  assert.equal(envInt({ N: "20" }, "N", 5, { min: 1, max: 20 }), 20);
});

Deno.test("envInt rejects out-of-range and non-integer values, naming the variable and range only", () => {
  for (const raw of ["0", "21", "-3", "2.5", "ten", "12abc", "Infinity"]) {
    const error = thrownBy(() => envInt({ HF_MAX_ATTEMPTS: raw }, "HF_MAX_ATTEMPTS", 4, { min: 1, max: 20 }));
    assert.ok(error instanceof ConfigError, raw);
    assert.equal(error.message, "HF_MAX_ATTEMPTS must be an integer from 1 to 20", raw);
  }
});

Deno.test("envInt defaults to a non-negative range", () => {
  assert.throws(() => envInt({ N: "-1" }, "N", 0), ConfigError);
  assert.equal(envInt({ N: String(Number.MAX_SAFE_INTEGER) }, "N", 0), Number.MAX_SAFE_INTEGER);
});

Deno.test("configured builds on first use only and keeps the value", () => {
  let builds = 0;
  const get = configured(() => ({ build: ++builds }));
  assert.equal(builds, 0, "nothing is built before first use");
  const first = get();
  assert.equal(get(), first);
  assert.equal(get(), first);
  assert.equal(builds, 1);
});

Deno.test("configured turns a ConfigError into an HttpError 500 naming the variable, on every call", () => {
  let builds = 0;
  const get = configured(() => {
    builds++;
    return requireEnv({}, "HUGGING_FACE_ACCESS_TOKEN");
  });
  for (let i = 0; i < 2; i++) {
    const error = thrownBy(get);
    assert.ok(error instanceof HttpError);
    assert.equal(error.status, 500);
    assert.equal(error.message, "Server misconfigured: HUGGING_FACE_ACCESS_TOKEN is not set");
  }
  assert.equal(builds, 2, "a failed build is not cached; the next call tries again");
});

Deno.test({
  // Only a ConfigError's message is public; other build errors may quote a secret value.
  name: "configured does not reveal the message of an unexpected (non-Config) error",
  fn() {
    const builders = [
      () => JSON.parse("not-json-secret"),
      () => {
        throw new Error("cannot connect to postgres://svc:hunter2@db.internal");
      },
    ];
    for (const build of builders) {
      const error = thrownBy(configured(build));
      assert.ok(!/not-json-secret|hunter2/.test(error.message), error.message);
    }
  },
});
