/**
 * Stand-in for the part of PostgREST that supabase-js uses: table reads and writes with simple
 * filters, and RPC, each request in one transaction as the JWT's role so RLS applies.
 *
 * @module
 */
import type postgres from "npm:postgres@3.4.9";
import type { JSONWebKeySet } from "npm:jose@6.2.17";
import { actAs } from "./db_role.ts";
import { transaction, withConnection } from "./db_session.ts";
import { type ApiClaims, verifyApiJwt } from "./keys.ts";

/** Options for {@linkcode createRestApi}. */
export interface RestApiOptions {
  /** A superuser URL; each request takes a pooled connection and switches role inside one transaction. */
  dbUrl: string;
  jwtSecret: string;
  /** Public keys of the Auth stand-in: user tokens signed ES256 verify against them. */
  jwks?: JSONWebKeySet;
  /** Schemas reachable through Accept-Profile/Content-Profile; the first is the default. */
  schemas?: string[];
  /** Database connections shared by all requests, like PostgREST's db-pool; more wait their turn (default 10). */
  poolSize?: number;
}

type Sql = postgres.Sql;
type Fragment = postgres.Fragment;

/** PostgREST's error body. */
interface ApiError {
  code: string;
  message: string;
  details: string | null;
  hint: string | null;
}

/** An error that is already an HTTP answer. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError | { message: string; hint: string },
  ) {
    super(body.message);
  }
}

// Query parameters that are not column filters.
const RESERVED = new Set(["select", "order", "limit", "offset", "on_conflict", "columns"]);
const PREFIX = "/rest/v1/";

/** Builds the `/rest/v1/*` handler; the handler answers every failure as a PostgREST error and never throws. */
export function createRestApi(opts: RestApiOptions): (req: Request) => Promise<Response> {
  const schemas = opts.schemas ?? ["public", "storage", "graphql_public"];
  return async (req) => {
    const url = new URL(req.url);
    let role = "anon";
    try {
      if (!url.pathname.startsWith(PREFIX)) throw notFound(url.pathname);
      const auth = await authenticate(req, opts.jwtSecret, opts.jwks);
      role = auth.role;
      const schema = pickSchema(req, schemas);
      const resource = decodeURIComponent(url.pathname.slice(PREFIX.length));
      const body = ["POST", "PATCH", "PUT"].includes(req.method) ? await readJson(req) : undefined;
      return await withConnection(opts.dbUrl, (sql) =>
        transaction(sql, async (tx) => {
          if (!(await actAs(tx, auth.role, auth.claims))) {
            throw new HttpError(
              auth.role === "anon" ? 401 : 403,
              apiError("42501", `permission denied to set role "${auth.role}"`),
            );
          }
          if (resource.startsWith("rpc/")) {
            return await callRpc(tx, schema, resource.slice(4), req, url, body);
          }
          return await tableRequest(tx, schema, resource, req, url, body);
        }), { name: "rest", size: opts.poolSize ?? 10 });
    } catch (e) {
      return errorResponse(e, role);
    }
  };
}

/** Reads role and claims from the bearer token (else the apikey); throws HttpError 401 for a missing apikey or a bad token. */
async function authenticate(
  req: Request,
  secret: string,
  jwks?: JSONWebKeySet,
): Promise<{ role: string; claims: ApiClaims }> {
  const apikey = req.headers.get("apikey") ?? new URL(req.url).searchParams.get("apikey");
  if (!apikey) {
    // The API gateway's answer: /rest/v1 is not reachable without an API key, even with a bearer token.
    throw new HttpError(401, {
      message: "No API key found in request",
      hint: "No `apikey` request header or url param was found.",
    });
  }
  const token = req.headers.get("authorization")?.replace(/^bearer\s+/i, "") || apikey;
  try {
    const claims = await verifyApiJwt(token, secret, jwks);
    return { role: claims.role ?? "anon", claims };
  } catch (e) {
    const expired = (e as { code?: string }).code === "ERR_JWT_EXPIRED";
    throw new HttpError(
      401,
      apiError(expired ? "PGRST303" : "PGRST301", expired ? "JWT expired" : (e as Error).message),
    );
  }
}

/** Picks the schema from Accept-Profile (reads) or Content-Profile (writes); throws PGRST106 for one not exposed. */
function pickSchema(req: Request, schemas: string[]): string {
  const header = ["GET", "HEAD"].includes(req.method) ? "accept-profile" : "content-profile";
  const schema = req.headers.get(header) ?? schemas[0];
  if (!schemas.includes(schema)) {
    throw new HttpError(
      406,
      apiError(
        "PGRST106",
        `Invalid schema: ${schema}`,
        `Only the following schemas are exposed: ${schemas.join(", ")}`,
      ),
    );
  }
  return schema;
}

/** Serves GET/HEAD/POST/PATCH/DELETE on one table or view; throws HttpError or a PostgreSQL error. */
async function tableRequest(
  tx: Sql,
  schema: string,
  table: string,
  req: Request,
  url: URL,
  body: unknown,
) {
  if (!table || table.includes(".")) {
    throw new HttpError(
      404,
      apiError("PGRST205", `Could not find the table '${schema}.${table}' in the schema cache`),
    );
  }
  const target = qualified(tx, schema, table);
  const prefer = parsePrefer(req.headers);
  const where = whereClause(tx, url.searchParams);
  const columns = selectList(tx, url.searchParams.get("select"));
  const single = (req.headers.get("accept") ?? "").includes("vnd.pgrst.object+json");

  if (req.method === "GET" || req.method === "HEAD") {
    const rows = tx`select ${columns} from ${target} ${where} ${orderBy(tx, url.searchParams)} ${
      limits(tx, url.searchParams)
    }`;
    const [r] = await tx`select coalesce(json_agg(_r), '[]')::text as body, count(*)::int as n from (${rows}) _r`;
    let total: number | null = null;
    if (prefer.count) [{ total }] = await tx`select count(*)::int as total from ${target} ${where}`;
    return reply(req.method === "HEAD" ? null : r.body, r.n, { single, status: 200, total });
  }

  let write: Fragment;
  if (req.method === "POST") {
    write = insertStatement(
      tx,
      schema,
      table,
      target,
      body,
      url.searchParams,
      prefer.resolution,
      prefer.resolution ? await primaryKey(tx, schema, table) : [],
    );
  } else if (req.method === "PATCH") {
    write = updateStatement(tx, target, body, where);
  } else if (req.method === "DELETE") {
    write = tx`delete from ${target} ${where} returning *`;
  } else {
    throw new HttpError(405, apiError("PGRST117", `Unsupported HTTP method: ${req.method}`));
  }
  const [r] = await tx`with _w as (${write})
    select coalesce(json_agg(_r), '[]')::text as body, count(*)::int as n from (select ${columns} from _w) _r`;
  const created = req.method === "POST";
  if (single && r.n !== 1) throw singularError(r.n);
  if (prefer.return !== "representation") {
    return reply(null, r.n, { single: false, status: created ? 201 : 204, total: null });
  }
  return reply(r.body, r.n, { single, status: created ? 201 : 200, total: null });
}

/** Builds INSERT (or upsert with on_conflict / the primary key) from a JSON object or array; throws HttpError on a bad body. */
function insertStatement(
  tx: Sql,
  schema: string,
  table: string,
  target: Fragment,
  body: unknown,
  params: URLSearchParams,
  resolution: string | undefined,
  pk: string[],
): Fragment {
  const rows = Array.isArray(body) ? body : [body];
  if (!rows.every((r) => r && typeof r === "object" && !Array.isArray(r))) {
    throw new HttpError(400, apiError("PGRST102", "Empty or invalid json"));
  }
  const names = params.get("columns")?.split(",").map((c) => c.trim().replace(/^"|"$/g, "")) ??
    [...new Set(rows.flatMap((r) => Object.keys(r as object)))];
  if (names.length === 0) return tx`insert into ${target} default values returning *`;
  const cols = list(tx, names.map((n) => ident(tx, n)));
  const source = tx`select ${cols} from json_populate_recordset(null::${qualified(tx, schema, table)}, ${
    tx.json(rows as postgres.JSONValue)
  }::json)`;
  if (!resolution) return tx`insert into ${target} (${cols}) ${source} returning *`;
  const keys = params.get("on_conflict")?.split(",").map((c) => c.trim()) ?? pk;
  if (keys.length === 0) {
    throw new HttpError(400, apiError("PGRST100", "on_conflict needs columns or a primary key"));
  }
  const conflict = list(tx, keys.map((k) => ident(tx, k)));
  if (resolution === "ignore") {
    return tx`insert into ${target} (${cols}) ${source} on conflict (${conflict}) do nothing returning *`;
  }
  const sets = list(tx, names.map((n) => tx`${ident(tx, n)} = excluded.${ident(tx, n)}`));
  return tx`insert into ${target} (${cols}) ${source} on conflict (${conflict}) do update set ${sets} returning *`;
}

/** Builds UPDATE from a JSON object; throws HttpError on a bad body. */
function updateStatement(tx: Sql, target: Fragment, body: unknown, where: Fragment): Fragment {
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(400, apiError("PGRST102", "Empty or invalid json"));
  }
  const names = Object.keys(body);
  if (names.length === 0) throw new HttpError(400, apiError("PGRST102", "Empty or invalid json"));
  const cols = list(tx, names.map((n) => ident(tx, n)));
  return tx`update ${target} set (${cols}) = (select ${cols} from json_populate_record(null::${target}, ${
    tx.json(body as postgres.JSONValue)
  }::json))
    ${where} returning *`;
}

/** Calls schema.fn with named arguments (JSON body for POST, query string for GET); throws PGRST202 when no overload fits. */
async function callRpc(tx: Sql, schema: string, fn: string, req: Request, url: URL, body: unknown) {
  const args: Record<string, unknown> = req.method === "GET"
    ? Object.fromEntries([...url.searchParams].filter(([k]) => !RESERVED.has(k)))
    : (body ?? {}) as Record<string, unknown>;
  if (typeof args !== "object" || Array.isArray(args)) {
    throw new HttpError(400, apiError("PGRST102", "Empty or invalid json"));
  }
  const names = Object.keys(args);
  const candidates = await tx`
    select p.proretset as set, t.typtype as kind, p.prorettype = 'void'::regtype as void,
           p.pronargs - p.pronargdefaults as required,
           to_json(array(select a.n from unnest(coalesce(p.proargnames, '{}')) with ordinality as a(n, i)
                  where p.proargmodes is null or p.proargmodes[a.i] in ('i', 'b', 'v'))) as inputs
      from pg_proc p
      join pg_namespace ns on ns.oid = p.pronamespace
      join pg_type t on t.oid = p.prorettype
     where ns.nspname = ${schema} and p.proname = ${fn} and p.prokind = 'f'`;
  const match = candidates.find((c) =>
    names.every((n) => c.inputs.includes(n)) &&
    c.inputs.slice(0, c.required).every((n: string) => names.includes(n))
  );
  if (!match || fn.includes(".")) {
    throw new HttpError(
      404,
      apiError(
        "PGRST202",
        `Could not find the function ${schema}.${fn}(${names.join(", ")}) in the schema cache`,
      ),
    );
  }
  const call = tx`${qualified(tx, schema, fn)}(${
    list(tx, names.map((n) => tx`${ident(tx, n)} => ${rpcValue(tx, args[n])}`))
  })`;
  if (match.void) {
    await tx`select ${call}`;
    return new Response(null, { status: 204 });
  }
  const single = (req.headers.get("accept") ?? "").includes("vnd.pgrst.object+json");
  if (match.set || match.kind === "c" || match.kind === "p") {
    const rows = tx`select * from ${call} _r ${whereClause(tx, url.searchParams, true)} ${
      orderBy(tx, url.searchParams)
    } ${limits(tx, url.searchParams)}`;
    const [r] = await tx`select coalesce(json_agg(_r), '[]')::text as body, count(*)::int as n from (${rows}) _r`;
    if (match.set) return reply(r.body, r.n, { single, status: 200, total: null });
    // A function returning one composite answers an object, not an array.
    return reply(JSON.stringify(JSON.parse(r.body)[0] ?? null), 1, {
      single: false,
      status: 200,
      total: null,
    });
  }
  const [r] = await tx`select to_json(${call})::text as body`;
  return reply(r.body, 1, { single: false, status: 200, total: null });
}

/**
 * Passes a JSON value as a parameter PostgreSQL can coerce to the argument's type; an object or
 * array goes as jsonb, as PostgREST hands a json/jsonb argument the body's value. Throws nothing.
 */
function rpcValue(tx: Sql, v: unknown): string | boolean | null | Fragment {
  if (v === null || v === undefined) return null;
  if (typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  return tx`${JSON.stringify(v)}::text::jsonb`;
}

/** Builds `where …` from column filters (`col=op.value`); throws PGRST100 on an operator it does not support. */
function whereClause(tx: Sql, params: URLSearchParams, rpcArgsInQuery = false): Fragment {
  const conds: Fragment[] = [];
  for (const [col, expr] of params) {
    if (RESERVED.has(col)) continue;
    const m = /^(not\.)?(eq|neq|gt|gte|lt|lte|like|ilike|is|in)\.(.*)$/s.exec(expr);
    if (!m) {
      if (rpcArgsInQuery) continue;
      throw new HttpError(
        400,
        apiError(
          "PGRST100",
          `failed to parse filter (${expr})`,
          null,
          `unsupported filter on "${col}"`,
        ),
      );
    }
    const [, not, op, value] = m;
    const c = ident(tx, col);
    let cond: Fragment;
    switch (op) {
      case "eq":
        cond = tx`${c} = ${value}`;
        break;
      case "neq":
        cond = tx`${c} <> ${value}`;
        break;
      case "gt":
        cond = tx`${c} > ${value}`;
        break;
      case "gte":
        cond = tx`${c} >= ${value}`;
        break;
      case "lt":
        cond = tx`${c} < ${value}`;
        break;
      case "lte":
        cond = tx`${c} <= ${value}`;
        break;
      case "like":
        cond = tx`${c} like ${value.replaceAll("*", "%")}`;
        break;
      case "ilike":
        cond = tx`${c} ilike ${value.replaceAll("*", "%")}`;
        break;
      case "in":
        cond = inList(tx, c, parseList(value));
        break;
      default:
        cond = isCondition(tx, c, value);
    }
    conds.push(not ? tx`not (${cond})` : cond);
  }
  return conds.length ? tx`where ${join(tx, conds, " and ")}` : tx``;
}

/** `col in ($1, $2, …)`, each value typed by the column (an empty list matches nothing); throws nothing. */
function inList(tx: Sql, c: Fragment, values: string[]): Fragment {
  return values.length ? tx`${c} in (${list(tx, values.map((v) => tx`${v}`))})` : tx`false`;
}

/** `col is null|not_null|true|false|unknown`; throws PGRST100 otherwise. */
function isCondition(tx: Sql, c: Fragment, value: string): Fragment {
  switch (value.toLowerCase()) {
    case "null":
      return tx`${c} is null`;
    case "not_null":
      return tx`${c} is not null`;
    case "true":
      return tx`${c} is true`;
    case "false":
      return tx`${c} is false`;
    case "unknown":
      return tx`${c} is unknown`;
  }
  throw new HttpError(400, apiError("PGRST100", `failed to parse filter (is.${value})`));
}

/** Parses `(a,b,"c,d")` into its values; throws PGRST100 without the parentheses. */
function parseList(text: string): string[] {
  const m = /^\((.*)\)$/s.exec(text);
  if (!m) throw new HttpError(400, apiError("PGRST100", `failed to parse filter (in.${text})`));
  const out: string[] = [];
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|([^,]*))\s*(?:,|$)/gy;
  let match: RegExpExecArray | null;
  while (re.lastIndex < m[1].length && (match = re.exec(m[1]))) {
    out.push(match[1] !== undefined ? match[1].replace(/\\(.)/g, "$1") : match[2].trim());
    if (match[0] === "") break;
  }
  return out;
}

/** Builds the select list from `select=` (`*`, `col`, `alias:col`); throws PGRST100 on embeds, casts and JSON paths. */
function selectList(tx: Sql, select: string | null): Fragment {
  if (!select || select.trim() === "*") return tx`*`;
  const items = select.split(",").map((s) => s.trim()).filter(Boolean);
  return list(
    tx,
    items.map((item) => {
      if (item === "*") return tx`*`;
      const m = /^(?:([^:()]+):)?([^:()]+)$/.exec(item);
      if (!m || m[2].includes("->")) {
        throw new HttpError(
          400,
          apiError(
            "PGRST100",
            `unsupported select item "${item}"`,
            null,
            "this stand-in supports only columns and aliases",
          ),
        );
      }
      return m[1] ? tx`${ident(tx, m[2])} as ${ident(tx, m[1])}` : ident(tx, m[2]);
    }),
  );
}

/** Builds `order by` from `order=a.desc.nullslast,b`; throws PGRST100 on an unknown modifier. */
function orderBy(tx: Sql, params: URLSearchParams): Fragment {
  const order = params.get("order");
  if (!order) return tx``;
  const terms = order.split(",").map((term) => {
    const [col, ...mods] = term.split(".");
    let t = ident(tx, col);
    for (const mod of mods) {
      if (mod === "asc") t = tx`${t} asc`;
      else if (mod === "desc") t = tx`${t} desc`;
      else if (mod === "nullsfirst") t = tx`${t} nulls first`;
      else if (mod === "nullslast") t = tx`${t} nulls last`;
      else throw new HttpError(400, apiError("PGRST100", `failed to parse order (${order})`));
    }
    return t;
  });
  return tx`order by ${list(tx, terms)}`;
}

/** Builds `limit … offset …`; throws PGRST100 on a non-numeric value. */
function limits(tx: Sql, params: URLSearchParams): Fragment {
  const num = (name: string) => {
    const v = params.get(name);
    if (v === null) return null;
    if (!/^\d+$/.test(v)) {
      throw new HttpError(400, apiError("PGRST100", `failed to parse ${name} (${v})`));
    }
    return Number(v);
  };
  const limit = num("limit");
  const offset = num("offset");
  return tx`${limit === null ? tx`` : tx`limit ${limit}`} ${offset === null ? tx`` : tx`offset ${offset}`}`;
}

/** Primary-key column names of schema.table (empty when none or unknown); throws on database errors. */
async function primaryKey(tx: Sql, schema: string, table: string): Promise<string[]> {
  const rows = await tx`
    select a.attname from pg_index i
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
     where i.indisprimary and i.indrelid = to_regclass(quote_ident(${schema}) || '.' || quote_ident(${table}))`;
  return rows.map((r) => r.attname as string);
}

/** Parses the Prefer header(s) into the options PostgREST honours here; throws nothing. */
function parsePrefer(
  headers: Headers,
): { return?: string; resolution?: string; count?: string } {
  const out: { return?: string; resolution?: string; count?: string } = {};
  for (const part of (headers.get("prefer") ?? "").split(",")) {
    const [k, v] = part.trim().split("=");
    if (k === "return") out.return = v;
    if (k === "count") out.count = v;
    if (k === "resolution") out.resolution = v?.replace(/-duplicates$/, "");
  }
  return out;
}

/** A quoted identifier; throws PGRST100 for names with dots, which postgres.js would split. */
function ident(tx: Sql, name: string): Fragment {
  if (!name || name.includes(".") || name.includes("\0")) {
    throw new HttpError(400, apiError("PGRST100", `invalid identifier "${name}"`));
  }
  return tx(name) as unknown as Fragment;
}

/** `"schema"."name"`; throws PGRST100 for invalid names. */
function qualified(tx: Sql, schema: string, name: string): Fragment {
  return tx`${ident(tx, schema)}.${ident(tx, name)}`;
}

/** Joins fragments with commas; throws nothing. */
function list(tx: Sql, parts: Fragment[]): Fragment {
  return join(tx, parts, ", ");
}

/** Joins fragments with a fixed separator (empty list → empty fragment); throws nothing. */
function join(tx: Sql, parts: Fragment[], sep: string): Fragment {
  if (parts.length === 0) return tx``;
  return parts.reduce((acc, p) => tx`${acc}${tx.unsafe(sep)}${p}`);
}

/** Reads a JSON request body (empty means undefined); throws PGRST102 on invalid JSON. */
async function readJson(req: Request): Promise<unknown> {
  const text = await req.text();
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, apiError("PGRST102", "Empty or invalid json"));
  }
}

/** Answers a JSON array (or one object for `Accept: application/vnd.pgrst.object+json`); throws PGRST116 when not exactly one row. */
function reply(
  body: string | null,
  n: number,
  o: { single: boolean; status: number; total: number | null },
): Response {
  const range = n === 0 ? "*" : `0-${n - 1}`;
  const headers = new Headers({ "content-range": `${range}/${o.total ?? "*"}` });
  if (body === null || o.status === 204) return new Response(null, { status: o.status, headers });
  if (o.single) {
    if (n !== 1) throw singularError(n);
    headers.set("content-type", "application/vnd.pgrst.object+json; charset=utf-8");
    return new Response(JSON.stringify(JSON.parse(body)[0]), { status: o.status, headers });
  }
  headers.set("content-type", "application/json; charset=utf-8");
  return new Response(body, { status: o.status, headers });
}

/** PGRST116, as PostgREST answers `.single()` on zero or several rows. */
function singularError(n: number): HttpError {
  return new HttpError(
    406,
    apiError(
      "PGRST116",
      "Cannot coerce the result to a single JSON object",
      `The result contains ${n} rows`,
    ),
  );
}

/** A 404 for paths outside the API. */
function notFound(path: string): HttpError {
  return new HttpError(404, apiError("PGRST125", `Invalid path specified in request URL: ${path}`));
}

/** Builds PostgREST's error body. */
function apiError(
  code: string,
  message: string,
  details: string | null = null,
  hint: string | null = null,
): ApiError {
  return { code, message, details, hint };
}

/** Maps any failure to PostgREST's status and body; throws nothing. */
function errorResponse(e: unknown, role: string): Response {
  let status = 500;
  let body: HttpError["body"];
  if (e instanceof HttpError) {
    status = e.status;
    body = e.body;
  } else if (
    e && typeof e === "object" && "code" in e &&
    typeof (e as { code: unknown }).code === "string" &&
    (e as { name?: string }).name === "PostgresError"
  ) {
    const pg = e as { code: string; message: string; detail?: string; hint?: string };
    status = pgStatus(pg.code, role);
    body = apiError(pg.code, pg.message, pg.detail ?? null, pg.hint ?? null);
  } else if (/^(CONNECTION_|CONNECT_TIMEOUT|ECONN)/.test(String((e as { code?: unknown })?.code))) {
    // PostgREST's answer while it cannot reach the database.
    status = 503;
    body = apiError(
      "PGRST001",
      "Database client error. Retrying the connection.",
      (e as Error).message,
    );
  } else {
    body = apiError("PGRSTX00", (e as Error)?.message ?? String(e));
  }
  return Response.json(body, { status });
}

/** PostgREST's SQLSTATE → HTTP status table (42501 is 401 for anon, 403 otherwise). */
function pgStatus(code: string, role: string): number {
  if (code === "42501") return role === "anon" ? 401 : 403;
  if (code === "23503" || code === "23505") return 409;
  if (code === "42P01" || code === "42883") return 404;
  if (code === "25006") return 405;
  if (code === "42P17") return 500;
  if (code === "P0001") return 400;
  const cls = code.slice(0, 2);
  if (cls === "08" || cls === "53") return 503;
  if (["0L", "0P", "28"].includes(cls)) return 403;
  if (
    ["09", "25", "2D", "38", "39", "3B", "40", "54", "55", "57", "58", "F0", "HV", "P0", "XX"]
      .includes(cls)
  ) return 500;
  return 400;
}
