import assert from "node:assert/strict";
import { HttpError } from "../../../supabase/functions/_shared/http/mod.ts";
import {
  boolean,
  checkFields,
  describeRules,
  either,
  integer,
  listOf,
  number,
  object,
  oneOf,
  text,
} from "../../../supabase/functions/_shared/http/params.ts";

const rules = {
  top_k: integer(1, 10),
  size: integer(64, 128, 8),
  temperature: number(0, 2),
  name: text(5, { required: true }),
  flag: boolean,
  mode: oneOf("a", "b"),
  tags: listOf(text(3), 2),
  either: either(text(3), listOf(text(3), 2)),
  nested: object({ max_length: integer(1, 5) }),
};

function refused(value: unknown, field: string, message?: RegExp) {
  assert.throws(() => checkFields(rules, value, "parameters"), (e: unknown) => {
    assert.ok(e instanceof HttpError);
    assert.equal(e.status, 400);
    assert.equal(e.details.field, field);
    if (message) assert.match(e.message, message);
    return true;
  });
}

Deno.test("checkFields keeps valid fields and drops nulls", () => {
  assert.deepEqual(
    checkFields(rules, {
      top_k: 3,
      size: 72,
      temperature: 0.5,
      name: "x",
      flag: false,
      mode: "b",
      tags: ["a"],
      either: "ab",
      nested: { max_length: 2 },
      seed: null,
    }),
    {
      top_k: 3,
      size: 72,
      temperature: 0.5,
      name: "x",
      flag: false,
      mode: "b",
      tags: ["a"],
      either: "ab",
      nested: { max_length: 2 },
    },
  );
});

Deno.test("checkFields names the field: unknown, out of range, wrong type, nested", () => {
  refused({ top_p: 1 }, "parameters.top_p", /is not a known field/);
  refused({ top_k: 0 }, "parameters.top_k", /from 1 to 10/);
  refused({ top_k: 1.5 }, "parameters.top_k");
  refused({ size: 70 }, "parameters.size", /multiple of 8/);
  refused({ temperature: Infinity }, "parameters.temperature");
  refused({ name: "  " }, "parameters.name", /must not be empty/);
  refused({ name: "toolong" }, "parameters.name", /at most 5/);
  refused({ flag: "yes" }, "parameters.flag");
  refused({ mode: "c" }, "parameters.mode", /one of: a, b/);
  refused({ tags: [] }, "parameters.tags");
  refused({ tags: ["a", "b", "c"] }, "parameters.tags");
  refused({ either: 3 }, "parameters.either");
  refused({ nested: { max_length: 9 } }, "parameters.nested.max_length");
  refused({ nested: { other: 1 } }, "parameters.nested.other", /not a known field/);
  refused([], "parameters", /must be a JSON object/);
  // A prototype key is not a rule.
  refused({ constructor: 1 }, "parameters.constructor");
});

Deno.test("describeRules says what each field accepts", () => {
  const d = describeRules(rules);
  assert.equal(d.top_k, "integer 1–10");
  assert.equal(d.size, "integer 64–128, a multiple of 8");
  assert.equal(d.mode, "one of a, b");
  assert.match(d.nested, /max_length: integer 1–5/);
});
