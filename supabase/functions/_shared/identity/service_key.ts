/**
 * The project's service key, for functions that call the API as the service role.
 * @module
 */
import { ConfigError, type Env, envString, requireEnv } from "../runtime/mod.ts";

/**
 * Returns the new default secret key (`SUPABASE_SECRET_KEYS`, a JSON map keyed `default`) when
 * present, else the legacy `SUPABASE_SERVICE_ROLE_KEY`.
 * @throws {ConfigError} when neither is set or `SUPABASE_SECRET_KEYS` is not valid JSON.
 */
export function serviceKeyFromEnv(env: Env): string {
  const keys = envString(env, "SUPABASE_SECRET_KEYS");
  if (keys) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(keys);
    } catch {
      throw new ConfigError("SUPABASE_SECRET_KEYS is not valid JSON");
    }
    const key = (parsed as Record<string, unknown>)?.default;
    if (typeof key === "string" && key) return key;
  }
  return requireEnv(env, "SUPABASE_SERVICE_ROLE_KEY");
}
