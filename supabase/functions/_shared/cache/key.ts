/**
 * The key of a cached inference result: a SHA-256 over everything the answer depends on.
 *
 * The key material is the canonical JSON of `{v, task, model, parameters, input}`:
 * - `task`: the gateway task (`summarization`, `text-to-image`, ...);
 * - `model`: the model that will answer (not the one the caller named, if a default or alias
 *   was resolved first);
 * - `parameters`: the task parameters, as canonical JSON (object keys sorted, numbers in
 *   ECMAScript's shortest round-trip form, `undefined` members dropped), so `{a: 1, b: 2.0}` and
 *   `{b: 2, a: 1}` give one key;
 * - `input`: for bytes (an image, audio) their SHA-256, so the key never holds the bytes; for a
 *   Storage reference the caller passes the SHA-256 of the object's content (never its path), so
 *   two paths to the same bytes share one entry; for a text or JSON input, its canonical JSON.
 *
 * `v` versions the scheme: changing it starts a fresh cache instead of serving old answers to
 * new questions.
 * @module
 */
import { createHash } from "node:crypto";

/** Bumped when the key material changes meaning. */
const KEY_VERSION = 1;

/** What a result depends on besides the task, model and parameters. */
export type CacheInput =
  | { bytes: Uint8Array }
  /** The hex SHA-256 of the content, e.g. of a Storage object computed while streaming it. */
  | { sha256: string }
  | { json: unknown };

/** Everything a cached answer depends on. */
export interface CacheKeyParts {
  task: string;
  model: string;
  parameters?: Record<string, unknown>;
  input: CacheInput;
}

/**
 * Returns the hex SHA-256 key of a call.
 * @throws {TypeError} when the parameters or a JSON input are not plain JSON data, or a given
 * `sha256` is not 64 hex digits.
 */
export async function cacheKey(parts: CacheKeyParts): Promise<string> {
  const material = canonicalJson({
    v: KEY_VERSION,
    task: parts.task,
    model: parts.model,
    parameters: parts.parameters ?? {},
    input: await inputDigest(parts.input),
  });
  return await sha256Hex(new TextEncoder().encode(material));
}

/**
 * Serialises plain JSON data with object keys sorted, so equal values give equal text.
 * @throws {TypeError} for a non-finite number, a bigint, a function, a symbol, or an object that
 * is not a plain object or array (a Date, a Map, bytes).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`${value} has no JSON form`);
    return JSON.stringify(value); // shortest round-trip form; -0 becomes 0
  }
  if (Array.isArray(value)) {
    return `[${value.map((item) => (item === undefined ? "null" : canonicalJson(item))).join(",")}]`;
  }
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new TypeError(`a ${proto?.constructor?.name ?? "non-plain"} object has no canonical JSON form`);
    }
    const members = Object.keys(value as Record<string, unknown>)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${members.join(",")}}`;
  }
  throw new TypeError(`a ${typeof value} has no JSON form`);
}

/** Returns the hex SHA-256 of bytes held in memory. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource)));
}

/**
 * Returns the hex SHA-256 of a stream, reading it chunk by chunk so memory stays flat whatever
 * its size (for content the function does not otherwise hold, e.g. a Storage object).
 * @throws what reading the stream throws.
 */
export async function sha256OfStream(stream: ReadableStream<Uint8Array>): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of stream) hash.update(chunk);
  return hash.digest("hex");
}

async function inputDigest(input: CacheInput): Promise<Record<string, unknown>> {
  if ("bytes" in input) return { sha256: await sha256Hex(input.bytes) };
  if ("sha256" in input) {
    if (typeof input.sha256 !== "string" || !/^[0-9a-f]{64}$/i.test(input.sha256)) {
      throw new TypeError("sha256 must be 64 hex digits");
    }
    return { sha256: input.sha256.toLowerCase() };
  }
  return { json: input.json };
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
