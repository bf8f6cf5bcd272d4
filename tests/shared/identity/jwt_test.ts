import { ConfigError } from "../../../supabase/functions/_shared/runtime/env.ts";
/**
 * Verifying the caller's Supabase JWT: legacy HS256 tokens, signing keys from an inline or remote
 * JWKS, and the verified-token cache.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as jose from "npm:jose@6.2.17";
import {
  type AuthConfig,
  authConfigFromEnv,
  bearerToken,
  createBearerVerifier,
} from "../../../supabase/functions/_shared/identity/jwt.ts";
import { HttpError } from "../../../supabase/functions/_shared/http/mod.ts";
import { LOCAL_JWT_SECRET, makeSigningKey, signHs256, userToken } from "../../support/tokens.ts";

const OTHER_SECRET = "another-secret-that-is-at-least-32-characters";

/** A request carrying `Authorization: Bearer <token>` (or the raw `authorization` given). */
function withAuth(authorization?: string): Request {
  const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
  return new Request("http://functions.test/functions/v1/any", { method: "POST", headers });
}
const bearer = (token: string) => withAuth(`Bearer ${token}`);

/** Verifies `token` with a fresh verifier for `config`. */
const verify = (config: AuthConfig, token: string) => createBearerVerifier(config)(bearer(token));

/** Asserts `promise` rejects with a 401 that asks for a bearer token, with a message matching `pattern`. */
async function assertUnauthorized(promise: Promise<unknown>, pattern: RegExp) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof HttpError, `expected an HttpError, got ${error}`);
    assert.equal(error.status, 401);
    assert.equal(new Headers(error.headers).get("www-authenticate"), 'Bearer realm="supabase"');
    assert.match(error.message, pattern);
    return;
  }
  assert.fail("the token was accepted");
}

/** An unsigned token (`alg: none`), built by hand since no library will sign one. */
function unsignedToken(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "none", typ: "JWT" })}.${part(claims)}.`;
}

const nowS = () => Math.floor(Date.now() / 1000);
const until = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms - Date.now())));

// --- Legacy HS256 ----------------------------------------------------------------------------

Deno.test("a legacy HS256 token (no kid) signed with the secret yields its claims", async () => {
  const sub = crypto.randomUUID();
  const claims = await verify({ jwtSecret: LOCAL_JWT_SECRET }, await userToken(sub));
  assert.equal(claims.sub, sub);
  assert.equal(claims.role, "authenticated");
  assert.equal(claims.aud, "authenticated");
});

Deno.test("the CLI's anon key (HS256, no exp) is accepted", async () => {
  const anon = await new jose.SignJWT({ iss: "supabase-demo", role: "anon" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(LOCAL_JWT_SECRET));
  assert.equal((await verify({ jwtSecret: LOCAL_JWT_SECRET }, anon)).role, "anon");
});

Deno.test("a legacy token signed with another secret is refused", async () => {
  await assertUnauthorized(
    verify({ jwtSecret: LOCAL_JWT_SECRET }, await userToken(undefined, OTHER_SECRET)),
    /^Token signature is invalid$/,
  );
});

Deno.test("a tampered legacy token is refused", async () => {
  const [header, , signature] = (await userToken()).split(".");
  const payload = Buffer.from(
    JSON.stringify({ sub: "x", role: "service_role", exp: nowS() + 3600 }),
  )
    .toString("base64url");
  await assertUnauthorized(
    verify({ jwtSecret: LOCAL_JWT_SECRET }, `${header}.${payload}.${signature}`),
    /signature is invalid/,
  );
});

Deno.test("an expired legacy token is refused (beyond the 5 s clock tolerance)", async () => {
  await assertUnauthorized(
    verify({ jwtSecret: LOCAL_JWT_SECRET }, await userToken(undefined, LOCAL_JWT_SECRET, -60)),
    /^Token has expired$/,
  );
});

Deno.test("a legacy token is refused when no JWT secret is configured", async () => {
  const { jwks } = await makeSigningKey("ES256");
  for (const config of [{}, { jwks }]) {
    await assertUnauthorized(
      verify(config, await userToken()),
      /^Legacy HS256 tokens are not accepted/,
    );
  }
});

Deno.test("an unsigned alg:none token is refused, whatever is configured", async () => {
  const token = unsignedToken({ sub: "x", role: "service_role", exp: nowS() + 3600 });
  const { jwks } = await makeSigningKey("ES256");
  for (
    const config of [{ jwtSecret: LOCAL_JWT_SECRET }, { jwks }, {
      jwtSecret: LOCAL_JWT_SECRET,
      jwks,
    }]
  ) {
    await assertUnauthorized(verify(config, token), /./);
  }
});

// --- The Authorization header ----------------------------------------------------------------

Deno.test("a missing or non-Bearer Authorization header is a 401", async () => {
  const cases: [string | undefined, RegExp][] = [
    [undefined, /^Missing Authorization header$/],
    ["", /^Missing Authorization header$/],
    ["Basic dXNlcjpwYXNz", /must be 'Bearer <token>'/],
    ["Bearer", /must be 'Bearer <token>'/],
    ["Bearer two tokens", /must be 'Bearer <token>'/],
    ["Token abc.def.ghi", /must be 'Bearer <token>'/],
  ];
  const verifier = createBearerVerifier({ jwtSecret: LOCAL_JWT_SECRET });
  for (const [authorization, pattern] of cases) {
    await assertUnauthorized(verifier(withAuth(authorization)), pattern);
  }
});

Deno.test("a malformed token is a 401", async () => {
  const verifier = createBearerVerifier({ jwtSecret: LOCAL_JWT_SECRET });
  for (const token of ["not-a-jwt", "a.b.c", "eyJub3QiOiJhIGhlYWRlciJ9.e30.", "...."]) {
    await assertUnauthorized(verifier(bearer(token)), /./);
  }
  await assertUnauthorized(verifier(bearer("not-a-jwt")), /^Authorization token is malformed$/);
});

Deno.test("bearerToken is case-insensitive about the scheme and tolerates extra spaces", () => {
  assert.equal(bearerToken(withAuth("bearer abc.def.ghi")), "abc.def.ghi");
  assert.equal(bearerToken(withAuth("BEARER   abc.def.ghi  ")), "abc.def.ghi");
});

// --- Signing keys (JWKS) ---------------------------------------------------------------------

for (const alg of ["ES256", "RS256"] as const) {
  Deno.test(`an ${alg} token with a kid verifies against SUPABASE_JWKS given as {"keys": [...]} or a bare array`, async () => {
    const key = await makeSigningKey(alg);
    const sub = crypto.randomUUID();
    const token = await key.sign({ sub, role: "authenticated" });
    for (const text of [JSON.stringify(key.jwks), JSON.stringify(key.jwks.keys)]) {
      const config = authConfigFromEnv({ SUPABASE_JWKS: text });
      assert.deepEqual(config.jwks, key.jwks);
      assert.equal((await verify(config, token)).sub, sub);
    }
  });
}

Deno.test("a token whose kid is not in the JWKS is refused", async () => {
  const known = await makeSigningKey("ES256");
  const stranger = await makeSigningKey("ES256");
  await assertUnauthorized(
    verify({ jwks: known.jwks, jwtSecret: LOCAL_JWT_SECRET }, await stranger.sign({ sub: "x" })),
    /^Token is not signed by a known key$/,
  );
});

Deno.test("a token signed by another key under a known kid is refused", async () => {
  const known = await makeSigningKey("ES256");
  const { privateKey } = await jose.generateKeyPair("ES256");
  const kid = known.jwks.keys[0].kid;
  const forged = await new jose.SignJWT({ sub: "x", role: "service_role" })
    .setProtectedHeader({ alg: "ES256", kid })
    .setExpirationTime("1h")
    .sign(privateKey);
  await assertUnauthorized(verify({ jwks: known.jwks }, forged), /signature is invalid/);
});

Deno.test("an HS256 token claiming an asymmetric key's kid is refused (no algorithm confusion)", async () => {
  const key = await makeSigningKey("RS256");
  const jwk = key.jwks.keys[0];
  const forged = await new jose.SignJWT({ sub: "x", role: "service_role" })
    .setProtectedHeader({ alg: "HS256", kid: jwk.kid })
    .setExpirationTime("1h")
    .sign(new TextEncoder().encode(JSON.stringify(jwk)));
  await assertUnauthorized(verify({ jwks: key.jwks, jwtSecret: LOCAL_JWT_SECRET }, forged), /./);
});

/** A symmetric signing key with a kid, in a JWKS, as a project's shared-secret signing key is. */
function symmetricSigningKey(secretText: string) {
  const kid = crypto.randomUUID();
  const secret = new TextEncoder().encode(secretText);
  return {
    jwks: {
      keys: [{ kty: "oct", k: Buffer.from(secret).toString("base64url"), kid, alg: "HS256" }],
    },
    sign: (claims: jose.JWTPayload, headerKid: string = kid) =>
      new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256", kid: headerKid, typ: "JWT" })
        .setExpirationTime("1h").sign(secret),
  };
}

Deno.test({
  // jose's key sets refuse symmetric keys; a shared-secret signing key in SUPABASE_JWKS must still verify.
  name: "an HS256 token with a kid verifies against a symmetric key in the JWKS",
  async fn() {
    const key = symmetricSigningKey(OTHER_SECRET);
    assert.equal(
      (await verify({ jwks: key.jwks }, await key.sign({ sub: "hs-kid" }))).sub,
      "hs-kid",
    );
  },
});

Deno.test("an HS256 token with a kid is not checked against the legacy secret", async () => {
  const key = symmetricSigningKey(OTHER_SECRET);
  const legacyWithKid = await symmetricSigningKey(LOCAL_JWT_SECRET).sign(
    { sub: "x" },
    "not-in-the-jwks",
  );
  await assertUnauthorized(
    verify({ jwks: key.jwks, jwtSecret: LOCAL_JWT_SECRET }, legacyWithKid),
    /./,
  );
});

Deno.test("a token with a kid is refused when no JWKS is available", async () => {
  const key = await makeSigningKey("ES256");
  await assertUnauthorized(
    verify({ jwtSecret: LOCAL_JWT_SECRET }, await key.sign({ sub: "x" })),
    /^Token verification is not configured: no JWKS available$/,
  );
});

Deno.test("an expired ES256 token is refused", async () => {
  const key = await makeSigningKey("ES256");
  await assertUnauthorized(
    verify({ jwks: key.jwks }, await key.sign({ sub: "x" }, -60)),
    /^Token has expired$/,
  );
});

// --- Configuration ---------------------------------------------------------------------------

Deno.test("authConfigFromEnv reads the secret, falling back to JWT_SECRET", () => {
  assert.equal(
    authConfigFromEnv({ SUPABASE_JWT_SECRET: " s1 ", JWT_SECRET: "s2" }).jwtSecret,
    "s1",
  );
  assert.equal(authConfigFromEnv({ JWT_SECRET: "s2" }).jwtSecret, "s2");
  assert.deepEqual(authConfigFromEnv({}), {
    jwtSecret: undefined,
    jwks: undefined,
    jwksUrl: undefined,
  });
});

Deno.test("authConfigFromEnv derives the JWKS URL from SUPABASE_URL", () => {
  for (
    const url of [
      "http://127.0.0.1:54321",
      "http://127.0.0.1:54321/",
      "http://127.0.0.1:54321/rest/v1",
    ]
  ) {
    assert.equal(
      authConfigFromEnv({ SUPABASE_URL: url }).jwksUrl?.href,
      "http://127.0.0.1:54321/auth/v1/.well-known/jwks.json",
      url,
    );
  }
});

Deno.test("authConfigFromEnv ignores an empty SUPABASE_JWKS and rejects one that is not JSON", () => {
  assert.equal(authConfigFromEnv({ SUPABASE_JWKS: '{"keys":[]}' }).jwks, undefined);
  assert.equal(authConfigFromEnv({ SUPABASE_JWKS: "[]" }).jwks, undefined);
  assert.throws(() => authConfigFromEnv({ SUPABASE_JWKS: "{not json" }), ConfigError);
});

// --- Remote JWKS -----------------------------------------------------------------------------

Deno.test("a remote JWKS at {SUPABASE_URL}/auth/v1/.well-known/jwks.json is fetched once for several tokens", async () => {
  const key = await makeSigningKey("ES256");
  const paths: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    paths.push(new URL(req.url).pathname);
    return Response.json(key.jwks);
  });
  try {
    const config = authConfigFromEnv({ SUPABASE_URL: `http://127.0.0.1:${server.addr.port}` });
    const verifier = createBearerVerifier(config);
    assert.equal(paths.length, 0, "the JWKS is fetched lazily");
    const first = await verifier(bearer(await key.sign({ sub: "first" })));
    const second = await verifier(bearer(await key.sign({ sub: "second" })));
    assert.deepEqual([first.sub, second.sub], ["first", "second"]);
    assert.deepEqual(paths, ["/auth/v1/.well-known/jwks.json"]);
    await assertUnauthorized(
      verifier(bearer(await userToken())),
      /Legacy HS256 tokens are not accepted/,
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("an unreachable remote JWKS is a 401, not a crash", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(),
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  await server.shutdown(); // its port is now closed
  const key = await makeSigningKey("ES256");
  await assertUnauthorized(
    verify(authConfigFromEnv({ SUPABASE_URL: url }), await key.sign({ sub: "x" })),
    /^Could not fetch the JWKS to verify the token$/,
  );
});

// --- The verified-token cache ----------------------------------------------------------------

Deno.test("a verified token is served from the cache (same claims object) until it expires", async () => {
  const verifier = createBearerVerifier({ jwtSecret: LOCAL_JWT_SECRET });
  const token = await signHs256({ sub: "cached", role: "authenticated" }, LOCAL_JWT_SECRET, 2);
  const { exp } = jose.decodeJwt(token) as { exp: number };
  const first = await verifier(bearer(token));
  assert.equal(
    await verifier(bearer(token)),
    first,
    "verified again instead of served from the cache",
  );
  assert.notEqual(
    await verifier(bearer(await signHs256({ sub: "cached", role: "authenticated" }))),
    first,
    "another token shares the entry",
  );

  await until(exp * 1000 + 50);
  // Past exp the entry is dropped and the token verified again (still inside the 5 s tolerance).
  const again = await verifier(bearer(token));
  assert.notEqual(again, first, "served from the cache after its exp");
  assert.deepEqual(again, first);
});

Deno.test("a token accepted within the clock tolerance is refused once it has passed, not kept by the cache", async () => {
  const verifier = createBearerVerifier({ jwtSecret: LOCAL_JWT_SECRET });
  // Expired, but inside the 5 s tolerance for about 2 s more.
  const token = await signHs256({ sub: "late", role: "authenticated" }, LOCAL_JWT_SECRET, -3);
  const { exp } = jose.decodeJwt(token) as { exp: number };
  assert.equal((await verifier(bearer(token))).sub, "late");
  await until((exp + 5) * 1000 + 50);
  await assertUnauthorized(verifier(bearer(token)), /^Token has expired$/);
});

Deno.test("a refused token is not cached: it stays refused", async () => {
  const verifier = createBearerVerifier({ jwtSecret: LOCAL_JWT_SECRET });
  const token = await userToken(undefined, OTHER_SECRET);
  for (let i = 0; i < 2; i++) {
    await assertUnauthorized(verifier(bearer(token)), /signature is invalid/);
  }
});
