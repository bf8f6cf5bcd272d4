/**
 * Stand-in for the Storage API's list route (`POST /storage/v1/object/list/{bucket}`, supabase-js
 * `storage.from(bucket).list(prefix)`): the files and folders directly under a prefix, read in the
 * caller's role so RLS decides what they see.
 *
 * @module
 */
import type { JSONWebKeySet } from "npm:jose@6.2.17";
import { actAs } from "./db_role.ts";
import { transaction, withConnection } from "./db_session.ts";
import { verifyApiJwt } from "./keys.ts";

/** Options for {@linkcode createStorageList}. */
export interface StorageListOptions {
  dbUrl: string;
  jwtSecret: string;
  jwks?: JSONWebKeySet;
}

/** One entry as the Storage API lists it (a folder has every field but `name` null). */
export interface ListEntry {
  name: string;
  id: string | null;
  updated_at: string | null;
  created_at: string | null;
  last_accessed_at: string | null;
  metadata: Record<string, unknown> | null;
}

const ROUTE = /^\/storage\/v1\/object\/list\/([^/]+)$/;

/** True for the list route's path. */
export function isListRoute(path: string): boolean {
  return ROUTE.test(path);
}

/** Builds the list handler; it answers failures in the Storage API's error shape (HTTP 400) and never throws. */
export function createStorageList(opts: StorageListOptions): (req: Request) => Promise<Response> {
  return async (req) => {
    const bucket = decodeURIComponent(ROUTE.exec(new URL(req.url).pathname)?.[1] ?? "");
    const token = (req.headers.get("authorization") ?? "").replace(/^bearer\s+/i, "");
    if (req.method !== "POST") return storageError("404", "not_found", "Route not found");
    if (!token) return storageError("403", "AccessDenied", "jwt must be provided");
    let claims;
    try {
      claims = await verifyApiJwt(token, opts.jwtSecret, opts.jwks);
    } catch (e) {
      return storageError("403", "AccessDenied", (e as Error).message);
    }
    const body = await req.json().catch(() => ({}));
    const prefix = typeof body.prefix === "string" && body.prefix ? body.prefix.replace(/\/*$/, "/") : "";
    const search = typeof body.search === "string" ? body.search : "";
    const limit = Number.isInteger(body.limit) ? body.limit : 100;
    const offset = Number.isInteger(body.offset) ? body.offset : 0;
    const desc = body.sortBy?.order === "desc";
    try {
      const rows = await withConnection(opts.dbUrl, (sql) =>
        transaction(sql, async (tx) => {
          if (!(await actAs(tx, String(claims.role ?? "anon"), claims))) return [];
          return await tx`
            select name, id, updated_at, created_at, last_accessed_at, metadata from storage.objects
             where bucket_id = ${bucket} and starts_with(name, ${prefix})`;
        }));
      return Response.json(
        entriesUnder(rows as unknown as ListEntry[], prefix, search, desc).slice(offset, offset + limit),
      );
    } catch (e) {
      return storageError("500", "InternalError", (e as Error).message);
    }
  };
}

/** Turns full object rows into the entries directly under `prefix`, folders first as the real API sorts them by name. */
export function entriesUnder(rows: ListEntry[], prefix: string, search: string, desc: boolean): ListEntry[] {
  const byName = new Map<string, ListEntry>();
  for (const row of rows) {
    const rest = row.name.slice(prefix.length);
    const slash = rest.indexOf("/");
    const name = slash === -1 ? rest : rest.slice(0, slash);
    if (!name.startsWith(search)) continue;
    if (slash === -1) byName.set(name, { ...row, name });
    else if (!byName.has(name)) {
      byName.set(name, { name, id: null, updated_at: null, created_at: null, last_accessed_at: null, metadata: null });
    }
  }
  const sorted = [...byName.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return desc ? sorted.reverse() : sorted;
}

function storageError(statusCode: string, code: string, message: string): Response {
  return Response.json({ statusCode, code, error: code, message }, { status: statusCode === "500" ? 500 : 400 });
}
