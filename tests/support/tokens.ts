/**
 * JWTs for tests, minted the way Supabase Auth mints them.
 * @module
 */
import * as jose from "npm:jose@6.2.17";
import { LOCAL_JWT_SECRET, signUserToken } from "../stack/keys.ts";

export { LOCAL_JWT_SECRET };

/** Mints a legacy HS256 token (no `kid`) with the given claims, valid for `expiresIn` seconds. */
export function signHs256(claims: jose.JWTPayload, secret = LOCAL_JWT_SECRET, expiresIn = 3600): Promise<string> {
  return new jose.SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn)
    .sign(new TextEncoder().encode(secret));
}

/** A signed-in user's access token, as Supabase Auth issues it. */
export function userToken(sub = crypto.randomUUID(), secret = LOCAL_JWT_SECRET, expiresIn = 3600): Promise<string> {
  return signUserToken({ sub, expiresIn }, secret);
}

/** An asymmetric signing key with its public JWKS, as a project on JWT signing keys has. */
export async function makeSigningKey(alg: "ES256" | "RS256" = "ES256") {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
  const kid = crypto.randomUUID();
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: "sig" };
  return {
    jwks: { keys: [jwk] },
    sign: (claims: jose.JWTPayload, expiresIn = 3600) =>
      new jose.SignJWT(claims)
        .setProtectedHeader({ alg, kid, typ: "JWT" })
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn)
        .sign(privateKey),
  };
}
