/**
 * Stand-in for the part of Supabase Auth's HTTP API that supabase-js uses: anonymous sign-up,
 * email + password sign-up and sign-in (no e-mail confirmation, as the CLI's default), refresh with
 * rotation, `GET /user`, logout, and the JWKS. Users, sessions and refresh tokens live in `auth.*`
 * tables, so `auth.uid()` and `storage.objects.owner_id` work as on the platform. Access tokens are
 * signed ES256 with a `kid` published at `/.well-known/jwks.json`, as new projects' are.
 *
 * @module
 */
import type postgres from "npm:postgres@3.4.9";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "npm:jose@6.2.17";
import { transaction, withConnection } from "./db_session.ts";
import type { SigningKey } from "./signing_key.ts";

/** Options for {@linkcode createAuthApi}. */
export interface AuthApiOptions {
  /** A superuser URL; each request opens its own connection. */
  dbUrl: string;
  /** The project URL; tokens carry `iss: <apiUrl>/auth/v1`. */
  apiUrl: string;
  signingKey: SigningKey;
  /** Access token lifetime in seconds (the platform's default is 3600). */
  jwtExpiry?: number;
}

/** Auth's error: HTTP status, error code and message. */
class AuthError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly extra: object = {}) {
    super(message);
  }
}

interface UserRow {
  id: string;
  email: string | null;
  encrypted_password: string | null;
  email_confirmed_at: Date | null;
  last_sign_in_at: Date | null;
  raw_app_meta_data: Record<string, unknown>;
  raw_user_meta_data: Record<string, unknown>;
  is_anonymous: boolean;
  created_at: Date;
  updated_at: Date;
}

type Sql = postgres.Sql;

const PREFIX = "/auth/v1";
const API_VERSION_HEADER = "x-supabase-api-version";
// GoTrue's defaults: at least 6 characters, and a plausible address.
const MIN_PASSWORD_LENGTH = 6;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Builds the `/auth/v1/*` handler; it answers every failure in Auth's error shape and never throws. */
export function createAuthApi(opts: AuthApiOptions): (req: Request) => Promise<Response> {
  const jwtExpiry = opts.jwtExpiry ?? 3600;
  const keySet = createLocalJWKSet(opts.signingKey.jwks);
  const ctx = { ...opts, jwtExpiry, keySet };
  return async (req) => {
    const versioned = req.headers.has(API_VERSION_HEADER);
    try {
      return await route(ctx, req);
    } catch (e) {
      return errorResponse(e, versioned);
    }
  };
}

type Ctx = AuthApiOptions & { jwtExpiry: number; keySet: ReturnType<typeof createLocalJWKSet> };

/** Dispatches by method and path; throws AuthError or database errors. */
async function route(ctx: Ctx, req: Request): Promise<Response> {
  const url = new URL(req.url);
  const path = url.pathname.slice(PREFIX.length);
  // Public, like the platform's: the functions fetch it with no API key.
  if (path === "/.well-known/jwks.json" && req.method === "GET") return Response.json(ctx.signingKey.jwks);
  if (!req.headers.get("apikey")) {
    throw new AuthError(401, "no_api_key", "No API key found in request");
  }
  if (path === "/signup" && req.method === "POST") return await signUp(ctx, await readBody(req));
  if (path === "/token" && req.method === "POST") {
    const grant = url.searchParams.get("grant_type");
    if (grant === "password") return await passwordGrant(ctx, await readBody(req));
    if (grant === "refresh_token") return await refreshGrant(ctx, await readBody(req));
    throw new AuthError(400, "validation_failed", `unsupported_grant_type: ${grant}`);
  }
  if (path === "/user" && req.method === "GET") {
    const { user } = await authenticate(ctx, req);
    return Response.json(userJson(user));
  }
  if (path === "/logout" && req.method === "POST") {
    const scope = url.searchParams.get("scope") ?? "global";
    if (!["global", "local", "others"].includes(scope)) {
      throw new AuthError(400, "validation_failed", "Unsupported logout scope");
    }
    const { user, sessionId } = await authenticate(ctx, req);
    await db(
      ctx,
      (sql) =>
        scope === "local"
          ? sql`delete from auth.sessions where id = ${sessionId}`
          : scope === "others"
          ? sql`delete from auth.sessions where user_id = ${user.id} and id <> ${sessionId}`
          : sql`delete from auth.sessions where user_id = ${user.id}`,
    );
    return new Response(null, { status: 204 });
  }
  if (path === "/settings" && req.method === "GET") {
    return Response.json({
      external: { anonymous_users: true, email: true },
      disable_signup: false,
      mailer_autoconfirm: true,
    });
  }
  throw new AuthError(404, "not_found", "Not found");
}

/** `POST /signup`: anonymous without email/phone, else an email+password user; answers a session. */
async function signUp(ctx: Ctx, body: Record<string, unknown>): Promise<Response> {
  const data = isObject(body.data) ? body.data : {};
  if (body.email === undefined && body.phone === undefined && body.password === undefined) {
    return await db(ctx, async (sql) => {
      const [user] = await sql<UserRow[]>`
        insert into auth.users (aud, role, is_anonymous, raw_app_meta_data, raw_user_meta_data)
        values ('authenticated', 'authenticated', true, '{}', ${sql.json(data as postgres.JSONValue)})
        returning *`;
      return Response.json(await startSession(ctx, sql, user, "anonymous"));
    });
  }
  if (body.phone !== undefined) throw new AuthError(400, "phone_provider_disabled", "Phone signups are disabled");
  const email = typeof body.email === "string" ? body.email.trim().toLowerCase() : "";
  if (!EMAIL.test(email)) {
    throw new AuthError(400, "validation_failed", "Unable to validate email address: invalid format");
  }
  const password = typeof body.password === "string" ? body.password : "";
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new AuthError(422, "weak_password", `Password should be at least ${MIN_PASSWORD_LENGTH} characters.`, {
      weak_password: { reasons: ["length"] },
    });
  }
  return await db(ctx, async (sql) => {
    const [user] = await sql<UserRow[]>`
      insert into auth.users (aud, role, email, encrypted_password, email_confirmed_at, is_anonymous,
                              raw_app_meta_data, raw_user_meta_data)
      values ('authenticated', 'authenticated', ${email}, extensions.crypt(${password}, extensions.gen_salt('bf', 10)),
              now(), false, '{"provider": "email", "providers": ["email"]}', ${sql.json(data as postgres.JSONValue)})
      on conflict do nothing
      returning *`;
    if (!user) throw new AuthError(422, "user_already_exists", "User already registered");
    return Response.json(await startSession(ctx, sql, user, "password"));
  });
}

/** `POST /token?grant_type=password`; throws 400 invalid_credentials for a wrong email or password. */
async function passwordGrant(ctx: Ctx, body: Record<string, unknown>): Promise<Response> {
  const email = typeof body.email === "string" ? body.email.trim().toLowerCase() : "";
  const password = typeof body.password === "string" ? body.password : "";
  return await db(ctx, async (sql) => {
    const [user] = await sql<UserRow[]>`
      select * from auth.users
       where email = ${email} and encrypted_password is not null
         and encrypted_password = extensions.crypt(${password}, encrypted_password)`;
    if (!user || !email || !password) throw new AuthError(400, "invalid_credentials", "Invalid login credentials");
    return Response.json(await startSession(ctx, sql, user, "password"));
  });
}

/** `POST /token?grant_type=refresh_token`: rotates the token; throws 400 for an unknown or used one. */
async function refreshGrant(ctx: Ctx, body: Record<string, unknown>): Promise<Response> {
  const token = typeof body.refresh_token === "string" ? body.refresh_token : "";
  return await db(ctx, async (sql) => {
    const [old] = await sql`
      select r.id, r.revoked, r.session_id, s.aal from auth.refresh_tokens r
        join auth.sessions s on s.id = r.session_id
       where r.token = ${token} for update of r`;
    if (!old) throw new AuthError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found");
    if (old.revoked) {
      throw new AuthError(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used");
    }
    await sql`update auth.refresh_tokens set revoked = true, updated_at = now() where id = ${old.id}`;
    const [user] = await sql<UserRow[]>`
      select u.* from auth.users u join auth.sessions s on s.user_id = u.id where s.id = ${old.session_id}`;
    await sql`update auth.sessions set updated_at = now(), refreshed_at = now() where id = ${old.session_id}`;
    const refreshToken = await issueRefreshToken(sql, user.id, old.session_id, token);
    return Response.json(
      await sessionJson(ctx, user, old.session_id, refreshToken, user.is_anonymous ? "anonymous" : "password"),
    );
  });
}

/** Reads the bearer token of a signed-in user whose session still exists; throws 401/403 like Auth. */
async function authenticate(ctx: Ctx, req: Request): Promise<{ user: UserRow; sessionId: string }> {
  const token = (req.headers.get("authorization") ?? "").replace(/^bearer\s+/i, "");
  if (!token) throw new AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token");
  let claims: Record<string, unknown>;
  try {
    if (decodeProtectedHeader(token).alg !== "ES256") throw new Error("signed with an API key, not by Auth");
    ({ payload: claims } = await jwtVerify(token, ctx.keySet, { algorithms: ["ES256"] }));
  } catch (e) {
    throw new AuthError(403, "bad_jwt", `invalid JWT: unable to parse or verify signature, ${(e as Error).message}`);
  }
  if (typeof claims.sub !== "string" || typeof claims.session_id !== "string") {
    throw new AuthError(403, "bad_jwt", "invalid claim: missing sub claim");
  }
  return await db(ctx, async (sql) => {
    const [session] = await sql`select 1 from auth.sessions where id = ${claims.session_id as string}`;
    if (!session) {
      throw new AuthError(403, "session_not_found", "Session from session_id claim in JWT does not exist");
    }
    const [user] = await sql<UserRow[]>`select * from auth.users where id = ${claims.sub as string}`;
    if (!user) throw new AuthError(403, "user_not_found", "User from sub claim in JWT does not exist");
    return { user, sessionId: claims.session_id as string };
  });
}

/** Creates a session and its first refresh token and answers Auth's session JSON. */
async function startSession(ctx: Ctx, sql: Sql, user: UserRow, method: string) {
  const [session] = await sql`
    insert into auth.sessions (user_id, aal) values (${user.id}, 'aal1') returning id`;
  const [signedIn] = await sql<UserRow[]>`
    update auth.users set last_sign_in_at = now(), updated_at = now() where id = ${user.id} returning *`;
  const refreshToken = await issueRefreshToken(sql, user.id, session.id, null);
  return await sessionJson(ctx, signedIn, session.id, refreshToken, method);
}

/** Stores a new random refresh token for the session; throws on database errors. */
async function issueRefreshToken(sql: Sql, userId: string, sessionId: string, parent: string | null) {
  const token = randomToken();
  await sql`insert into auth.refresh_tokens (token, user_id, session_id, parent)
            values (${token}, ${userId}, ${sessionId}, ${parent})`;
  return token;
}

/** The session answer: access token, refresh token, expiry and the user. */
async function sessionJson(ctx: Ctx, user: UserRow, sessionId: string, refreshToken: string, method: string) {
  const now = Math.floor(Date.now() / 1000);
  const exp = now + ctx.jwtExpiry;
  const accessToken = await ctx.signingKey.sign({
    iss: `${ctx.apiUrl}${PREFIX}`,
    sub: user.id,
    aud: "authenticated",
    exp,
    iat: now,
    email: user.email ?? "",
    phone: "",
    app_metadata: user.raw_app_meta_data ?? {},
    user_metadata: user.raw_user_meta_data ?? {},
    role: "authenticated",
    aal: "aal1",
    amr: [{ method, timestamp: now }],
    session_id: sessionId,
    is_anonymous: user.is_anonymous,
  });
  return {
    access_token: accessToken,
    token_type: "bearer",
    expires_in: ctx.jwtExpiry,
    expires_at: exp,
    refresh_token: refreshToken,
    user: userJson(user),
  };
}

/** The user as Auth answers it. */
function userJson(user: UserRow) {
  return {
    id: user.id,
    aud: "authenticated",
    role: "authenticated",
    email: user.email ?? "",
    email_confirmed_at: user.email_confirmed_at ?? undefined,
    phone: "",
    confirmed_at: user.email_confirmed_at ?? undefined,
    last_sign_in_at: user.last_sign_in_at ?? undefined,
    app_metadata: user.raw_app_meta_data ?? {},
    user_metadata: user.raw_user_meta_data ?? {},
    identities: [],
    created_at: user.created_at,
    updated_at: user.updated_at,
    is_anonymous: user.is_anonymous,
  };
}

/** Runs fn in a transaction on a request's own connection. */
function db<T>(ctx: Ctx, fn: (sql: Sql) => Promise<T>): Promise<T> {
  return withConnection(ctx.dbUrl, (sql) => transaction(sql, fn));
}

/** Reads a JSON object body; throws 400 bad_json otherwise. */
async function readBody(req: Request): Promise<Record<string, unknown>> {
  try {
    const body = await req.json();
    if (isObject(body)) return body;
  } catch { /* answered below */ }
  throw new AuthError(400, "bad_json", "Could not parse request body as JSON");
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A refresh token like Auth's: short, random, URL-safe. */
function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

/** Auth's error body: `{code, message}` for clients sending the 2024-01-01 API version, else the legacy shape. */
function errorResponse(e: unknown, versioned: boolean): Response {
  const err = e instanceof AuthError
    ? e
    : new AuthError(500, "unexpected_failure", "Unexpected failure, please check server logs for more information");
  if (!(e instanceof AuthError)) console.error("auth stand-in:", (e as Error)?.message ?? e);
  const body = versioned
    ? { code: err.code, message: err.message, ...err.extra }
    : { code: err.status, error_code: err.code, msg: err.message, ...err.extra };
  const headers = versioned ? { "x-supabase-api-version": "2024-01-01" } : undefined;
  return Response.json(body, { status: err.status, headers });
}
