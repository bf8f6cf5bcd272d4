/**
 * Stand-in for the Storage API routes supabase-js uses (upload, remove, signed URLs, downloads),
 * with the real server's database behaviour: a rolled-back permission probe in the caller's role,
 * then a committed `INSERT … ON CONFLICT` as service_role; deletes in the caller's role.
 * Bytes live in `dataDir`, one file per object version.
 *
 * @module
 */
import type postgres from "npm:postgres@3.4.9";
import { type JSONWebKeySet, jwtVerify, SignJWT } from "npm:jose@6.2.17";
import { createHash } from "node:crypto";
import { actAs } from "./db_role.ts";
import { transaction, withConnection } from "./db_session.ts";
import { parseMultipart } from "./multipart.ts";
import { verifyApiJwt } from "./keys.ts";

/** Options for {@linkcode createStorageApi}. */
export interface StorageApiOptions {
  /** A superuser URL; each request takes a connection from the Storage pool (see db_session.ts). */
  dbUrl: string;
  jwtSecret: string;
  /** Public keys of the Auth stand-in: user tokens signed ES256 verify against them. */
  jwks?: JSONWebKeySet;
  /** Directory for object bytes (created when missing). */
  dataDir: string;
  /** Upload limit in bytes before bucket limits (the CLI default is 50 MiB). */
  fileSizeLimit?: number;
  /** Database connections shared by all requests; more requests wait their turn (default 10). */
  poolSize?: number;
}

/** The Storage API's error: the real code goes in the body, the HTTP status is 400 (500 for internal errors). */
class StorageError extends Error {
  constructor(readonly httpStatusCode: number, readonly code: string, message: string) {
    super(message);
  }
}

interface Caller {
  role: string;
  claims: Record<string, unknown>;
  owner: string | null;
}

interface ObjectRow {
  id: string;
  version: string;
  metadata: Record<string, unknown> | null;
}

const PREFIX = "/storage/v1";
const ROLLBACK = Symbol("rollback");
const SERVICE: Caller = { role: "service_role", claims: { role: "service_role" }, owner: null };
// The Storage API accepts only S3-safe key characters (ASCII letters, digits and these symbols).
const VALID_KEY = /^[A-Za-z0-9_\/!\-.*'() &$@=;:+,?]+$/;
const VALID_BUCKET = /^[A-Za-z0-9_!\-.*'() &$@=;:+,?]{1,63}$/;
// First path segments of real Storage API routes this stand-in does not implement.
const UNSUPPORTED = new Set(["list", "list-v2", "move", "copy", "info", "upload", "upload-sign"]);

/** Builds the `/storage/v1/*` handler; it answers every failure in the Storage API's error shape and never throws. */
export function createStorageApi(opts: StorageApiOptions): (req: Request) => Promise<Response> {
  const fileSizeLimit = opts.fileSizeLimit ?? 50 * 1024 * 1024;
  return async (req) => {
    try {
      return await withConnection(opts.dbUrl, (sql) => route({ ...opts, fileSizeLimit, sql }, req), {
        name: "storage",
        size: opts.poolSize ?? 10,
      });
    } catch (e) {
      return errorResponse(e);
    }
  };
}

/** Per-request context: options plus this request's connection. */
type Ctx = Required<Omit<StorageApiOptions, "jwks" | "poolSize">> & Pick<StorageApiOptions, "jwks"> & {
  sql: postgres.Sql;
};

/** Dispatches one request by method and path; throws StorageError or database errors. */
async function route(ctx: Ctx, req: Request): Promise<Response> {
  const url = new URL(req.url);
  if (url.pathname.startsWith(`${PREFIX}/render/image/sign/`) && req.method === "GET") {
    // Image transformations: the signed URL is checked like any other, but this stand-in cannot
    // resize, so it serves the original image.
    const path = url.pathname.slice(`${PREFIX}/render/image/sign/`.length).split("/").map(decodeSegment);
    return await signedDownload(ctx, url, ...splitPath(path));
  }
  if (!url.pathname.startsWith(`${PREFIX}/object/`)) return routeNotFound(req, url);
  const segments = url.pathname.slice(`${PREFIX}/object/`.length).split("/").map(decodeSegment);
  const [first] = segments;
  const m = req.method;
  // Routes the real server has and this stand-in does not: answer clearly, never mistake them for uploads.
  if (UNSUPPORTED.has(first)) return routeNotFound(req, url);

  if (first === "sign" && m === "POST") {
    return await signUrl(ctx, req, await caller(ctx, req), ...splitPath(segments.slice(1)));
  }
  if (first === "sign" && m === "GET") {
    return await signedDownload(ctx, url, ...splitPath(segments.slice(1)));
  }
  if (first === "public" && m === "GET") {
    return await publicDownload(ctx, url, ...splitPath(segments.slice(1)));
  }
  if (first === "authenticated" && m === "GET") {
    return await download(ctx, url, await caller(ctx, req), ...splitPath(segments.slice(1)));
  }
  if (m === "DELETE" && segments.length === 1) {
    return await removeMany(ctx, req, await caller(ctx, req), first);
  }
  if (m === "DELETE") return await removeOne(ctx, await caller(ctx, req), ...splitPath(segments));
  if (m === "GET") return await download(ctx, url, await caller(ctx, req), ...splitPath(segments));
  if (m === "POST" || m === "PUT") {
    // PUT is supabase-js `update()`: it replaces an existing object.
    const upsert = m === "PUT" || req.headers.get("x-upsert") === "true";
    return await upload(ctx, req, await caller(ctx, req), upsert, ...splitPath(segments));
  }
  return routeNotFound(req, url);
}

/** Verifies the bearer token like the Storage API (no `apikey` fallback); throws AccessDenied with jsonwebtoken's wording. */
async function caller(ctx: Ctx, req: Request): Promise<Caller> {
  const header = req.headers.get("authorization");
  if (header === null) {
    // Refused by the route's schema before any JWT check.
    throw new StorageError(400, "InvalidRequest", "headers must have required property 'authorization'");
  }
  const token = header.replace(/^bearer\s+/i, "");
  if (!token) throw new StorageError(403, "AccessDenied", "jwt must be provided");
  try {
    const payload = await verifyApiJwt(token, ctx.jwtSecret, ctx.jwks);
    return { role: String(payload.role ?? "anon"), claims: payload, owner: payload.sub ?? null };
  } catch (e) {
    throw new StorageError(403, "AccessDenied", jwtMessage(e));
  }
}

/** Uploads the request body to bucket/name; throws the Storage API's errors (404 bucket, 409 duplicate, 403 RLS, 413, 415, 400 key). */
async function upload(
  ctx: Ctx,
  req: Request,
  who: Caller,
  upsert: boolean,
  bucket: string,
  name: string,
) {
  if (!VALID_KEY.test(name)) throw new StorageError(400, "InvalidKey", `Invalid key: ${name}`);
  const [b] = await ctx.sql`
    select id, file_size_limit, to_json(allowed_mime_types) as allowed_mime_types
      from storage.buckets where id = ${bucket}`;
  if (!b) throw new StorageError(404, "NoSuchBucket", "Bucket not found");
  const file = await readUpload(req);
  const limit = b.file_size_limit ? Math.min(Number(b.file_size_limit), ctx.fileSizeLimit) : ctx.fileSizeLimit;
  if (file.bytes.byteLength > limit) {
    throw new StorageError(413, "EntityTooLarge", "The object exceeded the maximum allowed size");
  }
  if (b.allowed_mime_types?.length && !mimeAllowed(file.mimetype, b.allowed_mime_types)) {
    throw new StorageError(415, "InvalidMimeType", `mime type ${file.mimetype} is not supported`);
  }
  const owner = who.owner;
  const ownerUuid = owner && isUuid(owner) ? owner : null;

  // 1. Permission probe in the caller's role, rolled back on purpose (row triggers do fire in it).
  await withRollback(ctx.sql, who, async (tx) => {
    const meta = tx.json({ mimetype: file.mimetype, contentLength: file.bytes.byteLength });
    const insert = tx`insert into storage.objects (bucket_id, name, owner, owner_id, version, metadata)
                      values (${bucket}, ${name}, ${ownerUuid}, ${owner}, '1', ${meta})`;
    // A service-key upsert over a user's file keeps its owner.
    await (upsert
      ? tx`${insert} on conflict (name, bucket_id) do update
             set version = excluded.version, metadata = excluded.metadata,
                 owner = coalesce(excluded.owner, objects.owner), owner_id = coalesce(excluded.owner_id, objects.owner_id)`
      : insert);
  });

  // 2. The bytes, under a fresh version, so a failed commit never clobbers the current file.
  const version = crypto.randomUUID();
  const path = `${ctx.dataDir}/${version}`;
  await Deno.mkdir(ctx.dataDir, { recursive: true });
  await Deno.writeFile(path, file.bytes);

  // 3. The committed row, written as service_role.
  const metadata = {
    eTag: `"${createHash("md5").update(file.bytes).digest("hex")}"`,
    size: file.bytes.byteLength,
    mimetype: file.mimetype,
    cacheControl: file.cacheControl,
    lastModified: new Date().toISOString(),
    contentLength: file.bytes.byteLength,
    httpStatusCode: 200,
  };
  let row: { id: string; previous: string | null };
  try {
    row = await inTransaction(ctx.sql, SERVICE, async (tx) => {
      const [prev] =
        await tx`select version from storage.objects where bucket_id = ${bucket} and name = ${name} for update`;
      const insert = tx`insert into storage.objects (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
        values (${bucket}, ${name}, ${ownerUuid}, ${owner}, ${version}, ${tx.json(metadata)},
                ${tx.json(file.userMetadata ?? {})})`;
      const [r] = await (upsert
        ? tx`${insert} on conflict (name, bucket_id) do update
               set owner = coalesce(excluded.owner, objects.owner), owner_id = coalesce(excluded.owner_id, objects.owner_id),
                   version = excluded.version,
                   metadata = excluded.metadata, user_metadata = excluded.user_metadata
             returning *`
        : tx`${insert} returning *`);
      return { id: r.id as string, previous: (prev?.version as string | undefined) ?? null };
    });
  } catch (e) {
    await Deno.remove(path).catch(() => {});
    throw e;
  }
  if (row.previous && row.previous !== version) {
    await Deno.remove(`${ctx.dataDir}/${row.previous}`).catch(() => {});
  }
  return Response.json({ Id: row.id, Key: `${bucket}/${name}` });
}

/** Reads bytes, mimetype, cacheControl and user metadata from a raw or multipart upload; throws StorageError on a bad body. */
async function readUpload(req: Request) {
  const type = req.headers.get("content-type") ?? "";
  const body = new Uint8Array(await req.arrayBuffer());
  if (type.toLowerCase().startsWith("multipart/form-data")) {
    let parts;
    try {
      parts = parseMultipart(body, type);
    } catch (e) {
      throw new StorageError(400, "InvalidRequest", (e as Error).message);
    }
    const file = parts.find((p) => p.filename !== null);
    if (!file) throw new StorageError(400, "InvalidRequest", "No content provided");
    const field = (n: string) => {
      const p = parts.find((x) => x.name === n && x.filename === null);
      return p ? new TextDecoder().decode(p.data) : null;
    };
    const cache = field("cacheControl");
    return {
      bytes: file.data,
      mimetype: file.contentType ?? "application/octet-stream",
      cacheControl: cache ? `max-age=${cache}` : "no-cache",
      userMetadata: parseUserMetadata(field("metadata")),
    };
  }
  const encoded = req.headers.get("x-metadata");
  return {
    bytes: body,
    mimetype: type || "application/octet-stream",
    cacheControl: req.headers.get("cache-control") ?? "no-cache",
    userMetadata: parseUserMetadata(
      encoded ? new TextDecoder().decode(Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0))) : null,
    ),
  };
}

/** Returns user metadata as an object (or null); throws InvalidParameter when it is not a JSON object. */
function parseUserMetadata(text: string | null): postgres.JSONValue | null {
  if (text === null) return null;
  try {
    const v = JSON.parse(text);
    if (v && typeof v === "object" && !Array.isArray(v)) return v;
  } catch { /* fall through */ }
  throw new StorageError(400, "InvalidParameter", "Invalid Parameter metadata");
}

/** True when mimetype matches one of the bucket's types (`image/*` style wildcards allowed). */
function mimeAllowed(mimetype: string, allowed: string[]): boolean {
  const [type, sub] = mimetype.split(";")[0].trim().toLowerCase().split("/");
  return allowed.some((a) => {
    const [t, s] = a.trim().toLowerCase().split("/");
    return t === type && (s === "*" || s === sub);
  });
}

/** Deletes the listed names in the caller's role (RLS applies) and answers the deleted rows; throws on FK or RLS errors. */
async function removeMany(ctx: Ctx, req: Request, who: Caller, bucket: string) {
  let prefixes: unknown;
  try {
    prefixes = (await req.json()).prefixes;
  } catch {
    prefixes = undefined;
  }
  if (
    !Array.isArray(prefixes) || prefixes.length < 1 || prefixes.length > 1000 ||
    !prefixes.every((p) => typeof p === "string")
  ) {
    throw new StorageError(
      400,
      "InvalidRequest",
      "body/prefixes must be an array of 1 to 1000 strings",
    );
  }
  const rows = await deleteObjects(ctx, who, bucket, prefixes as string[]);
  return Response.json(rows);
}

/** Deletes one object; throws NoSuchKey when the caller cannot see it. */
async function removeOne(ctx: Ctx, who: Caller, bucket: string, name: string) {
  const rows = await deleteObjects(ctx, who, bucket, [name]);
  if (rows.length === 0) throw new StorageError(404, "NoSuchKey", "Object not found");
  return Response.json({ message: "Successfully deleted" });
}

/** The Storage API's delete: allowed by its GUC, in the caller's role, then the files go; throws database errors. */
async function deleteObjects(ctx: Ctx, who: Caller, bucket: string, names: string[]) {
  const rows = await inTransaction(ctx.sql, who, async (tx) => {
    await tx`select set_config('storage.allow_delete_query', 'true', true)`;
    // Rows come back as JSON: this client does not load array types (see db_session.ts).
    const deleted = await tx`delete from storage.objects
      where bucket_id = ${bucket} and name = any(array(select jsonb_array_elements_text(${tx.json(names)})))
      returning to_jsonb(objects) as row`;
    return deleted.map((d) => d.row as Record<string, unknown> & { version?: string });
  });
  for (const r of rows) {
    if (r.version) await Deno.remove(`${ctx.dataDir}/${r.version}`).catch(() => {});
  }
  return rows;
}

/** Signs a download URL for an object the caller can read; throws NoSuchKey otherwise. */
async function signUrl(ctx: Ctx, req: Request, who: Caller, bucket: string, name: string) {
  const body = await req.json().catch(() => ({}));
  const expiresIn = Number(body?.expiresIn);
  if (!Number.isFinite(expiresIn) || expiresIn < 1) {
    throw new StorageError(400, "InvalidParameter", "expiresIn must be a number of seconds >= 1");
  }
  await findObject(ctx, who, bucket, name);
  const transform = body?.transform && typeof body.transform === "object" && Object.keys(body.transform).length
    ? Object.entries(body.transform as Record<string, unknown>).map(([k, v]) => `${k}:${v}`).join(",")
    : undefined;
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ url: `${bucket}/${name}`, ...(transform ? { transformations: transform } : {}) })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setExpirationTime(now + Math.floor(expiresIn))
    .sign(secretKey(ctx.jwtSecret));
  // Raw (unencoded) path: supabase-js runs encodeURI over the whole URL.
  const route = transform ? "/render/image/sign" : "/object/sign";
  return Response.json({ signedURL: `${route}/${bucket}/${name}?token=${token}` });
}

/** Serves an object through a signed URL; throws InvalidJWT/InvalidSignature for a bad token. */
async function signedDownload(ctx: Ctx, url: URL, bucket: string, name: string) {
  const token = url.searchParams.get("token");
  if (!token) throw new StorageError(400, "InvalidSignature", "Missing token");
  let payload;
  try {
    ({ payload } = await jwtVerify(token, secretKey(ctx.jwtSecret), { algorithms: ["HS256"] }));
  } catch (e) {
    throw new StorageError(400, "InvalidJWT", jwtMessage(e));
  }
  if (payload.url !== `${bucket}/${name}`) {
    throw new StorageError(400, "InvalidSignature", "Invalid signature");
  }
  return await serve(ctx, url, await findObject(ctx, SERVICE, bucket, name));
}

/** Serves an object of a public bucket without a token; throws NoSuchBucket for a private one. */
async function publicDownload(ctx: Ctx, url: URL, bucket: string, name: string) {
  const [b] = await ctx.sql`select 1 from storage.buckets where id = ${bucket} and public`;
  if (!b) throw new StorageError(404, "NoSuchBucket", "Bucket not found");
  return await serve(ctx, url, await findObject(ctx, SERVICE, bucket, name));
}

/** Serves an object the caller can SELECT under RLS; throws NoSuchKey otherwise. */
async function download(ctx: Ctx, url: URL, who: Caller, bucket: string, name: string) {
  return await serve(ctx, url, await findObject(ctx, who, bucket, name));
}

/** Looks the object up in the given role; throws NoSuchKey when it is absent or hidden by RLS. */
async function findObject(ctx: Ctx, who: Caller, bucket: string, name: string): Promise<ObjectRow> {
  const rows = await inTransaction(
    ctx.sql,
    who,
    (tx) => tx`select id, version, metadata from storage.objects where bucket_id = ${bucket} and name = ${name}`,
  );
  if (!rows[0]) throw new StorageError(404, "NoSuchKey", "Object not found");
  return rows[0] as unknown as ObjectRow;
}

/** Streams the stored bytes with the stored content type; throws InternalError (500) when the row has no file. */
async function serve(ctx: Ctx, url: URL, row: ObjectRow): Promise<Response> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(`${ctx.dataDir}/${row.version}`);
  } catch {
    // The row is there but the backend has no file for it: the real server answers 500.
    throw new StorageError(500, "InternalError", "The object's file is missing from the storage backend");
  }
  const meta = row.metadata ?? {};
  const headers = new Headers({
    "content-type": String(meta.mimetype ?? "application/octet-stream"),
  });
  if (meta.cacheControl) headers.set("cache-control", String(meta.cacheControl));
  if (meta.eTag) headers.set("etag", String(meta.eTag));
  if (meta.size !== undefined) headers.set("content-length", String(meta.size));
  if (meta.lastModified) {
    headers.set("last-modified", new Date(String(meta.lastModified)).toUTCString());
  }
  const dl = url.searchParams.get("download");
  if (dl !== null) {
    const filename = dl || decodeURIComponent(url.pathname.split("/").pop() ?? "");
    headers.set("content-disposition", `attachment; filename=${encodeURIComponent(filename)};`);
  }
  return new Response(file.readable, { headers });
}

/** Runs fn in a transaction as the caller and commits; throws what fn or the database throws. */
async function inTransaction<T>(
  sql: postgres.Sql,
  who: Caller,
  fn: (tx: postgres.Sql) => Promise<T>,
): Promise<T> {
  return await transaction(sql, async (tx) => {
    if (!(await actAs(tx, who.role, who.claims))) {
      throw new StorageError(403, "AccessDenied", `role "${who.role}" is not allowed`);
    }
    return await fn(tx);
  });
}

/** Runs fn as the caller and always rolls back; throws what fn or the database throws. */
async function withRollback(
  sql: postgres.Sql,
  who: Caller,
  fn: (tx: postgres.Sql) => Promise<unknown>,
) {
  try {
    await inTransaction(sql, who, async (tx) => {
      await fn(tx);
      throw ROLLBACK;
    });
  } catch (e) {
    if (e !== ROLLBACK) throw e;
  }
}

/** Splits `[bucket, ...path]`; throws InvalidKey when the object path is empty. */
function splitPath(segments: string[]): [string, string] {
  const [bucket, ...rest] = segments;
  const name = rest.join("/");
  if (!bucket || !VALID_BUCKET.test(bucket)) {
    throw new StorageError(400, "InvalidBucketName", "Bucket name invalid");
  }
  if (!name) throw new StorageError(400, "InvalidKey", `Invalid key: ${name}`);
  return [bucket, name];
}

/** Percent-decodes one path segment; throws InvalidKey on malformed escapes. */
function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new StorageError(400, "InvalidKey", `Invalid key: ${s}`);
  }
}

/** Maps jose failures to the jsonwebtoken messages the Storage API returns; throws nothing. */
function jwtMessage(e: unknown): string {
  switch ((e as { code?: string }).code) {
    case "ERR_JWT_EXPIRED":
      return "jwt expired";
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return "invalid signature";
    case "ERR_JWS_INVALID":
    case "ERR_JWT_INVALID":
      return "jwt malformed";
  }
  return (e as Error).message;
}

/** True for a uuid (owner is a uuid column; owner_id keeps any sub). */
function isUuid(v: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v);
}

/** Encodes the shared secret as an HMAC key. */
function secretKey(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

/** Fastify's answer for an unknown route. */
function routeNotFound(req: Request, url: URL): Response {
  return Response.json(
    {
      message: `Route ${req.method}:${url.pathname.slice(PREFIX.length)} not found`,
      error: "Not Found",
      statusCode: 404,
    },
    { status: 404 },
  );
}

/** Renders any failure as the Storage API does: HTTP 400 (500 for internal errors) with the real code in the body; throws nothing. */
function errorResponse(e: unknown): Response {
  const err = e instanceof StorageError ? e : fromDatabaseError(e);
  const status = err.httpStatusCode === 500 ? 500 : err.httpStatusCode === 544 ? 544 : 400;
  return Response.json(
    {
      statusCode: String(err.httpStatusCode),
      code: err.code,
      error: ERROR_TITLES[err.code] ?? err.code,
      message: err.message,
    },
    { status },
  );
}

// The short title the Storage API puts in `error`, per code.
const ERROR_TITLES: Record<string, string> = {
  NoSuchBucket: "Bucket not found",
  NoSuchKey: "not_found",
  KeyAlreadyExists: "Duplicate",
  AccessDenied: "Unauthorized",
  EntityTooLarge: "Payload too large",
  InvalidRequest: "Bad Request",
  InternalError: "Internal Server Error",
};

/** The Storage API's mapping of PostgreSQL errors; throws nothing. */
function fromDatabaseError(e: unknown): StorageError {
  const pg = e as { name?: string; code?: string; message?: string; detail?: string };
  if (pg?.name !== "PostgresError") {
    return new StorageError(500, "InternalError", pg?.message ?? "Internal server error");
  }
  switch (pg.code) {
    case "42501":
      return new StorageError(
        403,
        "AccessDenied",
        pg.message?.includes("row-level security") ? "new row violates row-level security policy" : pg.message ?? "",
      );
    case "23505":
      return new StorageError(409, "KeyAlreadyExists", "The resource already exists");
    case "23503":
      return pg.detail?.includes("is still referenced from table")
        ? new StorageError(409, "ResourceReferenced", pg.detail)
        : new StorageError(404, "InvalidRequest", "The related resource does not exist");
    case "55P03":
      return new StorageError(423, "ResourceLocked", "The resource is locked");
    case "57014":
      return new StorageError(544, "DatabaseTimeout", "The connection to the database timed out");
    case "22P02":
      return new StorageError(
        400,
        "InvalidParameter",
        pg.message ?? "Invalid value format or type conversion failed",
      );
    case "42703":
    case "42P01":
      return new StorageError(
        503,
        "DatabaseSchemaMismatch",
        "The database schema is out of sync. Please run migrations or contact support.",
      );
  }
  return new StorageError(500, "DatabaseError", `database error, code: ${pg.code}`);
}
