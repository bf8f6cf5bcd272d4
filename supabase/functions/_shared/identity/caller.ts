/**
 * Who is calling an inference function, from the request's API key and user token.
 *
 * The anon key and the publishable key ship inside every app, so holding one proves nothing:
 * only a signed-in user (a verified JWT with `role = authenticated`) or the service role is a
 * caller, unless the project opts in to public access with `INFERENCE_ALLOW_ANON=true`, which
 * keys public callers on their IP address. Users signed in anonymously are callers on a tier of
 * their own. New API keys (`sb_publishable_…`, `sb_secret_…`) are not JWTs and are recognised as
 * such.
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { type AuthConfig, authConfigFromEnv, type Claims, createJwtVerifier } from "./jwt.ts";
import { ConfigError, configured, type Env, envString } from "../runtime/mod.ts";
import { HttpError, type Middleware, requestValue } from "../http/mod.ts";

/** An identified caller. */
export interface Caller {
  /** `user` (signed in, anonymously or not), `ip` (public access), `service` (never limited). */
  kind: "user" | "ip" | "service";
  /** What quotas are counted on: `user:<id>` or `ip:<address>`; null for the service role. */
  key: string | null;
  /** The signed-in user's id, else null. */
  userId: string | null;
  /** The tier unless `inference.user_tiers` says otherwise: `authenticated` or `anonymous`. */
  tier: string;
  /** How the usage log names the caller: the key, or `service_role`. */
  label: string;
}

/** Identifies the caller of a request; throws {@linkcode HttpError} 401 for anyone not allowed. */
export type CallerIdentifier = (req: Request) => Promise<Caller>;

/** What identifying callers needs. */
export interface CallerConfig {
  auth: AuthConfig;
  /** `INFERENCE_ALLOW_ANON=true`: callers without a user token are served, keyed on their IP. */
  allowAnon: boolean;
  /** The project's secret API keys (`sb_secret_…`), which act as the service role. */
  secretKeys: string[];
}

/** Test seam: replaces caller identification (default: from the environment). */
export interface IdentifyDeps {
  identifyCaller?: CallerIdentifier;
}

/** The caller {@linkcode createIdentify}'s middleware identified, for the pieces after it (the meter). */
export const callerOf = requestValue<Caller>("caller");

/**
 * Builds the middleware that identifies each request's caller before anything else reads it: anyone
 * not allowed gets 401 (their body is never read), everyone else is kept as `callerOf(req)`.
 * Configuration errors surface per request as a 500 naming the variable.
 */
export function createIdentify(env: Env, deps: IdentifyDeps = {}): Middleware {
  const identify = deps.identifyCaller
    ? () => deps.identifyCaller!
    : configured(() => createCallerIdentifier(callerConfigFromEnv(env)));
  return async (req, next) => {
    callerOf.set(req, await identify()(req));
    return await next(req);
  };
}

/** The 401 message every caller who is not signed in gets. */
export const SIGN_IN_MESSAGE = "Sign in to use this function";

/**
 * Reads {@linkcode CallerConfig}: the JWT settings of {@linkcode authConfigFromEnv},
 * `INFERENCE_ALLOW_ANON`, and `SUPABASE_SECRET_KEYS` (a JSON map of secret keys).
 * @throws {ConfigError} for a malformed variable.
 */
export function callerConfigFromEnv(env: Env): CallerConfig {
  const allow = envString(env, "INFERENCE_ALLOW_ANON")?.toLowerCase() ?? "false";
  if (!["true", "false", "1", "0"].includes(allow)) throw new ConfigError("INFERENCE_ALLOW_ANON must be true or false");
  let secretKeys: string[] = [];
  const keys = envString(env, "SUPABASE_SECRET_KEYS");
  if (keys) {
    try {
      secretKeys = Object.values(JSON.parse(keys) as Record<string, unknown>).filter((k): k is string =>
        typeof k === "string" && k.startsWith("sb_secret_")
      );
    } catch {
      throw new ConfigError("SUPABASE_SECRET_KEYS is not valid JSON");
    }
  }
  return { auth: authConfigFromEnv(env), allowAnon: allow === "true" || allow === "1", secretKeys };
}

/** Builds a {@linkcode CallerIdentifier}. */
export function createCallerIdentifier(config: CallerConfig): CallerIdentifier {
  const verify = createJwtVerifier(config.auth);
  const secretDigests = config.secretKeys.map(digest);

  const publicCaller = (req: Request): Caller => {
    if (!config.allowAnon) throw signIn();
    // The platform's proxy puts the client's address first.
    const ip = req.headers.get("x-forwarded-for")?.split(",")[0].trim() || "unknown";
    return { kind: "ip", key: `ip:${ip}`, userId: null, tier: "anonymous", label: `ip:${ip}` };
  };

  return async (req) => {
    const authorization = req.headers.get("authorization");
    let token: string | null = null;
    if (authorization !== null) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      if (!match) throw signIn("Authorization header must be 'Bearer <token>'");
      token = match[1];
    }
    token ??= req.headers.get("apikey");
    if (!token || token.startsWith("sb_publishable_")) return publicCaller(req);
    if (token.startsWith("sb_secret_")) {
      const given = digest(token);
      if (!secretDigests.some((d) => timingSafeEqual(d, given))) throw signIn("Invalid API key");
      return service;
    }
    let claims: Claims;
    try {
      claims = await verify(token);
    } catch (error) {
      if (error instanceof HttpError) throw signIn(error.message);
      throw error;
    }
    if (claims.role === "service_role") return service;
    if (claims.role === "anon") return publicCaller(req);
    if (claims.role !== "authenticated" || typeof claims.sub !== "string" || !claims.sub) {
      throw signIn("Token is not a signed-in user's");
    }
    const tier = claims.is_anonymous === true ? "anonymous" : "authenticated";
    // Supabase Auth's ids are uuids; any other subject is still metered, on its key alone.
    const userId = UUID.test(claims.sub) ? claims.sub.toLowerCase() : null;
    return { kind: "user", key: `user:${claims.sub}`, userId, tier, label: `user:${claims.sub}` };
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const service: Caller = { kind: "service", key: null, userId: null, tier: "service_role", label: "service_role" };

function signIn(reason?: string): HttpError {
  return new HttpError(401, SIGN_IN_MESSAGE, reason ? { reason } : {}, {
    "WWW-Authenticate": 'Bearer realm="supabase"',
  });
}

function digest(value: string): Uint8Array {
  return createHash("sha256").update(value).digest();
}
