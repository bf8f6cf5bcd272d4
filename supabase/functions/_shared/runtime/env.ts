/**
 * Reading configuration from an environment snapshot.
 *
 * Functions take an {@linkcode Env} instead of calling `Deno.env` so tests can inject one.
 * @module
 */
import { HttpError } from "../http/mod.ts";

/** An environment snapshot, as `Deno.env.toObject()` returns it. */
export type Env = Readonly<Record<string, string | undefined>>;

/** A configuration problem: a missing or malformed variable. The message names it, never its value. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Returns the first of `names` that is set and non-blank, trimmed, or `undefined`. */
export function envString(env: Env, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  return undefined;
}

/** Returns the first of `names` that is set, or throws {@linkcode ConfigError} naming them all. */
export function requireEnv(env: Env, ...names: string[]): string {
  const value = envString(env, ...names);
  if (value === undefined) throw new ConfigError(`${names.join(" or ")} is not set`);
  return value;
}

/**
 * Returns `name` as an integer within [min, max], or `fallback` when unset.
 * @throws {ConfigError} when the value is not an integer in range.
 */
export function envInt(
  env: Env,
  name: string,
  fallback: number,
  { min = 0, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): number {
  const raw = envString(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

/**
 * Returns a getter that builds a value on first use and keeps it. A configuration error surfaces
 * as a 500 naming the variable on each request, rather than as a crash when the function boots.
 */
export function configured<T>(build: () => T): () => T {
  let built: { value: T } | undefined;
  return () => {
    if (!built) {
      try {
        built = { value: build() };
      } catch (error) {
        // Only a ConfigError's message is written to be public; anything else may quote a value.
        if (error instanceof ConfigError) throw new HttpError(500, `Server misconfigured: ${error.message}`);
        console.error("configuration failed:", error instanceof Error ? error.name : typeof error);
        throw new HttpError(500, "Server misconfigured");
      }
    }
    return built.value;
  };
}
