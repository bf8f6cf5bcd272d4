/**
 * The asymmetric JWT signing key of the local Auth stand-in, as new Supabase projects have: ES256,
 * with a `kid`, its public half published at `/auth/v1/.well-known/jwks.json`.
 *
 * @module
 */
import * as jose from "npm:jose@6.2.17";

/** A signing key: the public JWKS to publish and a function that signs with the private half. */
export interface SigningKey {
  kid: string;
  /** The public key set (`{keys: [{kty: "EC", crv: "P-256", kid, alg: "ES256", use: "sig", …}]}`). */
  jwks: jose.JSONWebKeySet;
  /** Signs `claims` as a JWT with `{alg: "ES256", kid, typ: "JWT"}`; throws nothing. */
  sign(claims: jose.JWTPayload): Promise<string>;
}

/** Generates a fresh ES256 signing key with a random `kid`; throws nothing. */
export async function createSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const kid = crypto.randomUUID();
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: "ES256", use: "sig", key_ops: ["verify"] };
  return {
    kid,
    jwks: { keys: [jwk] },
    sign: (claims) => new jose.SignJWT(claims).setProtectedHeader({ alg: "ES256", kid, typ: "JWT" }).sign(privateKey),
  };
}
