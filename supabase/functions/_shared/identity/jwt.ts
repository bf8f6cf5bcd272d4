/**
 * Verifying the caller's Supabase JWT (`Authorization: Bearer …`).
 *
 * The platform's `verify_jwt` does this at the gateway; checking again here keeps a function safe
 * when `verify_jwt` is off and gives it the caller's identity. Two kinds of token are accepted:
 * - tokens signed with the project's JWT signing keys (ES256/RS256 against its JWKS, or HS256
 *   with a `kid` against a shared-secret key in the inline `SUPABASE_JWKS`);
 * - legacy HS256 tokens signed with the project's shared secret (the CLI's local keys are these).
 *
 * `@supabase/server` rejects legacy HS256 tokens by design, so this uses `jose` directly.
 * @module
 */
import * as jose from "npm:jose@6.2.17";
import { ConfigError, type Env, envString } from "../runtime/mod.ts";
import { HttpError } from "../http/mod.ts";

/** The claims of a verified token. */
export type Claims = jose.JWTPayload & { role?: string; email?: string };

/** Verifies a bearer token; throws {@linkcode HttpError} 401 when it is not acceptable. */
export type BearerVerifier = (req: Request) => Promise<Claims>;

/** Where verification keys come from. */
export interface AuthConfig {
  /** Legacy shared secret for HS256 tokens without a `kid`. */
  jwtSecret?: string;
  /** An inline JWKS (`SUPABASE_JWKS`). */
  jwks?: jose.JSONWebKeySet;
  /** Where to fetch the JWKS when none is inline. */
  jwksUrl?: URL;
}

const ASYMMETRIC_ALGS = ["ES256", "RS256", "EdDSA"];
// A few seconds of leeway for clock skew between Auth and the function's host.
const CLOCK_TOLERANCE_S = 5;
// Verifying costs ~0.1-0.2 ms of crypto per call, more than the rest of a request; a token that
// verified once verifies again until it expires, so remember it briefly (bounded, so a revoked
// signing key stops working within a minute).
const VERIFIED_CACHE_SIZE = 1024;
const VERIFIED_CACHE_TTL_MS = 60_000;

/**
 * Reads {@linkcode AuthConfig} from the environment: `SUPABASE_JWT_SECRET` (or `JWT_SECRET`,
 * a name `supabase secrets set` accepts), `SUPABASE_JWKS`, and `SUPABASE_URL` for the JWKS URL.
 * @throws {ConfigError} when `SUPABASE_JWKS` is not valid JSON.
 */
export function authConfigFromEnv(env: Env): AuthConfig {
  const jwksText = envString(env, "SUPABASE_JWKS");
  let jwks: jose.JSONWebKeySet | undefined;
  if (jwksText) {
    let parsed;
    try {
      parsed = JSON.parse(jwksText);
    } catch {
      throw new ConfigError("SUPABASE_JWKS is not valid JSON");
    }
    jwks = Array.isArray(parsed) ? { keys: parsed } : parsed;
    if (!jwks?.keys?.length) jwks = undefined;
  }
  const supabaseUrl = envString(env, "SUPABASE_URL");
  return {
    jwtSecret: envString(env, "SUPABASE_JWT_SECRET", "JWT_SECRET"),
    jwks,
    jwksUrl: supabaseUrl ? new URL("/auth/v1/.well-known/jwks.json", supabaseUrl) : undefined,
  };
}

/** Builds a {@linkcode BearerVerifier}; a remote JWKS is fetched lazily and cached by `jose`. */
export function createBearerVerifier(config: AuthConfig): BearerVerifier {
  const verify = createJwtVerifier(config);
  return async (req) => await verify(bearerToken(req));
}

/** Verifies a JWT given as a string; throws {@linkcode HttpError} 401 when it is not acceptable. */
export type JwtVerifier = (token: string) => Promise<Claims>;

/** Builds a {@linkcode JwtVerifier} that remembers tokens it verified, briefly. */
export function createJwtVerifier(config: AuthConfig): JwtVerifier {
  const verify = createTokenVerifier(config);
  const verified = new Map<string, { claims: Claims; until: number }>();
  return async (token) => {
    const hit = verified.get(token);
    if (hit && hit.until > Date.now()) return hit.claims;
    if (hit) verified.delete(token);
    const claims = await verify(token);
    if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value!);
    const expiry = typeof claims.exp === "number" ? claims.exp * 1000 : Infinity;
    verified.set(token, { claims, until: Math.min(expiry, Date.now() + VERIFIED_CACHE_TTL_MS) });
    return claims;
  };
}

function createTokenVerifier(config: AuthConfig): (token: string) => Promise<Claims> {
  const secret = config.jwtSecret ? new TextEncoder().encode(config.jwtSecret) : undefined;
  // jose's key sets refuse symmetric keys, so a shared-secret signing key (an `oct` JWK in the
  // inline JWKS, only ever present there) is looked up by `kid` here.
  const symmetricKeys = new Map(
    (config.jwks?.keys ?? []).filter((k) => k.kty === "oct" && k.kid && k.k).map((k) => [k.kid!, k]),
  );
  const asymmetric = { keys: (config.jwks?.keys ?? []).filter((k) => k.kty !== "oct") };
  const keySet = asymmetric.keys.length
    ? jose.createLocalJWKSet(asymmetric)
    : config.jwksUrl
    ? jose.createRemoteJWKSet(config.jwksUrl, { timeoutDuration: 5_000 })
    : undefined;

  return async (token) => {
    let header: jose.ProtectedHeaderParameters;
    try {
      header = jose.decodeProtectedHeader(token);
    } catch {
      throw unauthorized("Authorization token is malformed");
    }
    try {
      if (header.alg === "HS256") {
        const key = header.kid
          ? symmetricKeys.has(header.kid) ? await jose.importJWK(symmetricKeys.get(header.kid)!, "HS256") : undefined
          : secret;
        if (!key) {
          throw unauthorized(
            header.kid
              ? "Token is not signed by a known key"
              : "Legacy HS256 tokens are not accepted: no JWT secret is set",
          );
        }
        return (await jose.jwtVerify<Claims>(token, key, {
          algorithms: ["HS256"],
          clockTolerance: CLOCK_TOLERANCE_S,
        })).payload;
      }
      if (!keySet) throw unauthorized("Token verification is not configured: no JWKS available");
      return (await jose.jwtVerify<Claims>(token, keySet, {
        algorithms: ASYMMETRIC_ALGS,
        clockTolerance: CLOCK_TOLERANCE_S,
      })).payload;
    } catch (error) {
      if (error instanceof HttpError) throw error;
      throw unauthorized(describeJoseError(error));
    }
  };
}

/** Returns the token of an `Authorization: Bearer` header; throws 401 when absent or malformed. */
export function bearerToken(req: Request): string {
  const header = req.headers.get("authorization");
  if (!header) throw unauthorized("Missing Authorization header");
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthorized("Authorization header must be 'Bearer <token>'");
  return match[1];
}

function unauthorized(message: string): HttpError {
  return new HttpError(401, message, {}, { "WWW-Authenticate": 'Bearer realm="supabase"' });
}

function describeJoseError(error: unknown): string {
  if (error instanceof jose.errors.JWTExpired) return "Token has expired";
  if (error instanceof jose.errors.JWSSignatureVerificationFailed) return "Token signature is invalid";
  if (error instanceof jose.errors.JWKSNoMatchingKey) return "Token is not signed by a known key";
  if (error instanceof jose.errors.JOSEAlgNotAllowed) return "Token algorithm is not accepted";
  if (error instanceof jose.errors.JWKSTimeout || error instanceof TypeError) {
    return "Could not fetch the JWKS to verify the token";
  }
  return "Token is invalid";
}
