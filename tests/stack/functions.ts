/**
 * A stand-in for the functions gateway: serves every function under `/functions/v1/<name>` as the
 * Supabase CLI does, applying `verify_jwt` from `supabase/config.toml`.
 *
 * Each function's `handler.ts` is loaded in-process with the environment the platform would give
 * it; `index.ts` (what `supabase functions serve` runs) only passes that handler to `Deno.serve`.
 * @module
 */
import { parse as parseToml } from "npm:smol-toml@1.9.1";
import { authConfigFromEnv, createBearerVerifier } from "../../supabase/functions/_shared/identity/jwt.ts";
import type { Env } from "../../supabase/functions/_shared/runtime/env.ts";
import { HttpError, jsonError } from "../../supabase/functions/_shared/http/mod.ts";

const FUNCTIONS_DIR = new URL("../../supabase/functions/", import.meta.url);
const CONFIG_TOML = new URL("../../supabase/config.toml", import.meta.url);

type Handler = (req: Request) => Promise<Response>;

/** A loaded function. */
export interface LoadedFunction {
  name: string;
  verifyJwt: boolean;
  handler: Handler;
}

/** Loads every function directory (those with a `handler.ts`), with its `verify_jwt` setting. */
export async function loadFunctions(env: Env, deps: Record<string, unknown> = {}): Promise<LoadedFunction[]> {
  const config = parseToml(await Deno.readTextFile(CONFIG_TOML)) as {
    functions?: Record<string, { verify_jwt?: boolean }>;
  };
  const loaded: LoadedFunction[] = [];
  for await (const entry of Deno.readDir(FUNCTIONS_DIR)) {
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    const module = new URL(`${entry.name}/handler.ts`, FUNCTIONS_DIR);
    try {
      await Deno.stat(module);
    } catch {
      continue;
    }
    const { createHandler } = await import(module.href);
    loaded.push({
      name: entry.name,
      // The CLI's default is to verify.
      verifyJwt: config.functions?.[entry.name]?.verify_jwt ?? true,
      handler: createHandler(env, deps),
    });
  }
  return loaded.sort((a, b) => a.name.localeCompare(b.name));
}

/** Routes `/functions/v1/<name>[/…]` to its function; `null` for other paths. */
export function createFunctionsRouter(
  functions: LoadedFunction[],
  env: Env,
): (req: Request) => Promise<Response | null> {
  const byName = new Map(functions.map((f) => [f.name, f]));
  const verifyBearer = createBearerVerifier(authConfigFromEnv(env));
  return async (req) => {
    const match = /^\/functions\/v1\/([^/?]+)/.exec(new URL(req.url).pathname);
    if (!match) return null;
    const fn = byName.get(match[1]);
    if (!fn) return jsonError(404, `Function not found: ${match[1]}`);
    // Like the platform's gateway: preflights pass, everything else needs a valid JWT.
    if (fn.verifyJwt && req.method !== "OPTIONS") {
      try {
        await verifyBearer(req);
      } catch (error) {
        if (error instanceof HttpError) return jsonError(401, `Invalid JWT: ${error.message}`);
        throw error;
      }
    }
    return await fn.handler(req);
  };
}
