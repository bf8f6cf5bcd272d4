/**
 * The Supabase CLI's local JWT secret and the legacy HS256 keys and user tokens signed with it.
 *
 * @module
 */
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  type JSONWebKeySet,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from "npm:jose@6.2.17";

/** The CLI's default local JWT secret. */
export const LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

/** Expiry of the CLI's demo keys (2032-11-12). */
const DEMO_KEY_EXP = 1983812996;

/** Claims the stand-ins read from a verified token. */
export interface ApiClaims extends JWTPayload {
  role?: string;
  email?: string;
}

/** Mints a legacy API key (`anon`, `service_role`, …) the way the CLI does; throws nothing. */
export async function signKey(role: string, secret: string = LOCAL_JWT_SECRET): Promise<string> {
  return await new SignJWT({ iss: "supabase-demo", role, exp: DEMO_KEY_EXP })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(secretKey(secret));
}

/** Options for {@linkcode signUserToken}. */
export interface UserTokenOptions {
  sub: string;
  email?: string;
  /** Lifetime in seconds (default 3600); may be negative to mint an expired token. */
  expiresIn?: number;
}

/** Mints a signed-in user's access token (role and aud `authenticated`); throws nothing. */
export async function signUserToken(
  opts: UserTokenOptions,
  secret: string = LOCAL_JWT_SECRET,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT({
    sub: opts.sub,
    role: "authenticated",
    aud: "authenticated",
    ...(opts.email ? { email: opts.email } : {}),
    iat: now,
    exp: now + (opts.expiresIn ?? 3600),
  })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(secretKey(secret));
}

// One jose key set per published JWKS, built on first use.
const keySets = new WeakMap<JSONWebKeySet, ReturnType<typeof createLocalJWKSet>>();

/**
 * Verifies a token and returns its claims: HS256 with the shared secret, or (with `jwks`, the Auth
 * stand-in's public keys) ES256/RS256 by `kid`, as the platform accepts both.
 * Throws jose's error when it is malformed, forged, expired or signed by an unknown key.
 */
export async function verifyApiJwt(
  token: string,
  secret: string = LOCAL_JWT_SECRET,
  jwks?: JSONWebKeySet,
): Promise<ApiClaims> {
  if (jwks && decodeProtectedHeader(token).alg !== "HS256") {
    let keySet = keySets.get(jwks);
    if (!keySet) keySets.set(jwks, keySet = createLocalJWKSet(jwks));
    const { payload } = await jwtVerify<ApiClaims>(token, keySet, { algorithms: ["ES256", "RS256"] });
    return payload;
  }
  const { payload } = await jwtVerify<ApiClaims>(token, secretKey(secret), {
    algorithms: ["HS256"],
  });
  return payload;
}

/** Encodes the shared secret as jose's HMAC key; throws nothing. */
function secretKey(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}
