/**
 * Field rules for request bodies: each rule checks one value and says in words what it accepts,
 * so the same table validates a request and describes it (`GET huggingface-inference`).
 * @module
 */
import { HttpError } from "./errors.ts";

/** One field's rule: `check` returns what is wrong with a value, or `undefined` when it is fine. */
export interface Rule {
  check(value: unknown): string | undefined;
  /** What the rule accepts, e.g. "integer 1–100". */
  describe: string;
  /** For a nested object: the rules of its fields. */
  fields?: Rules;
}

/** The rules of an object's fields, by name. */
export type Rules = Readonly<Record<string, Rule>>;

/** An integer in [min, max], optionally a multiple of `step`. */
export function integer(min: number, max: number, step = 1): Rule {
  const describe = `integer ${min}–${max}${step > 1 ? `, a multiple of ${step}` : ""}`;
  return {
    describe,
    check: (v) =>
      typeof v !== "number" || !Number.isInteger(v) || v < min || v > max || v % step !== 0
        ? `must be an integer from ${min} to ${max}${step > 1 ? `, a multiple of ${step}` : ""}`
        : undefined,
  };
}

/** A finite number in [min, max]. */
export function number(min: number, max: number): Rule {
  return {
    describe: `number ${min}–${max}`,
    check: (v) =>
      typeof v !== "number" || !Number.isFinite(v) || v < min || v > max
        ? `must be a number from ${min} to ${max}`
        : undefined,
  };
}

/** A string of at most `max` characters; `required` also refuses a blank one. */
export function text(max: number, { required = false } = {}): Rule {
  return {
    describe: `string, at most ${max} characters${required ? ", not blank" : ""}`,
    check: (v) =>
      typeof v !== "string"
        ? "must be a string"
        : required && v.trim() === ""
        ? "must not be empty"
        : v.length > max
        ? `must be at most ${max} characters`
        : undefined,
  };
}

/** A boolean. */
export const boolean: Rule = {
  describe: "boolean",
  check: (v) => (typeof v === "boolean" ? undefined : "must be true or false"),
};

/** One of the listed strings. */
export function oneOf(...values: string[]): Rule {
  return {
    describe: `one of ${values.join(", ")}`,
    check: (v) => (typeof v === "string" && values.includes(v) ? undefined : `must be one of: ${values.join(", ")}`),
  };
}

/** A non-empty array of at most `maxItems` values, each checked by `item`. */
export function listOf(item: Rule, maxItems: number): Rule {
  return {
    describe: `array of 1–${maxItems} × ${item.describe}`,
    check(v) {
      if (!Array.isArray(v) || v.length === 0 || v.length > maxItems) {
        return `must be an array of 1 to ${maxItems} items`;
      }
      for (const [i, x] of v.entries()) {
        const problem = item.check(x);
        if (problem) return `[${i}] ${problem}`;
      }
      return undefined;
    },
  };
}

/** Either of two rules (e.g. a string or a list of strings). */
export function either(a: Rule, b: Rule): Rule {
  return {
    describe: `${a.describe}, or ${b.describe}`,
    check: (
      v,
    ) => (a.check(v) === undefined || b.check(v) === undefined ? undefined : `must be ${a.describe}, or ${b.describe}`),
  };
}

/** A nested object whose fields follow `rules` (unknown fields refused); {@linkcode checkFields} descends into it. */
export function object(rules: Rules): Rule {
  return {
    describe: `object: { ${Object.entries(rules).map(([k, r]) => `${k}: ${r.describe}`).join("; ")} }`,
    fields: rules,
    check: (v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? undefined : "must be a JSON object"),
  };
}

/** Describes every field of `rules` in words, for an API description. */
export function describeRules(rules: Rules): Record<string, string> {
  return Object.fromEntries(Object.entries(rules).map(([name, rule]) => [name, rule.describe]));
}

/**
 * Checks an object against `rules` and returns its fields without `null`/`undefined` ones.
 * Field names in errors are prefixed with `path` (e.g. `parameters.top_k`).
 * @throws {HttpError} 400 whose JSON names the offending `field`: not an object, an unknown field, a bad value.
 */
export function checkFields(rules: Rules, value: unknown, path = ""): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, `${path || "Request body"} must be a JSON object`, path ? { field: path } : {});
  }
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(value)) {
    if (v === undefined || v === null) continue;
    const field = path ? `${path}.${name}` : name;
    const rule = Object.hasOwn(rules, name) ? rules[name] : undefined;
    if (!rule) throw new HttpError(400, `${field} is not a known field`, { field });
    const problem = rule.check(v);
    if (problem) throw new HttpError(400, `${field} ${problem}`, { field });
    out[name] = rule.fields ? checkFields(rule.fields, v, field) : v;
  }
  return out;
}
