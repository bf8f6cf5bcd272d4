/**
 * The local Supabase stand-in in one call: PostgreSQL (or a given database), the platform
 * bootstrap and the project's migrations, the pg_net worker, and the REST and Storage handlers.
 * It serves no HTTP itself: mount `handleApi` next to `/functions/v1/*`.
 *
 * @module
 */
import postgres from "npm:postgres@3.4.9";
import { prepareDatabase } from "./database.ts";
import { LOCAL_JWT_SECRET, signKey } from "./keys.ts";
import { type PgNetWorker, startPgNetWorker } from "./pg_net_worker.ts";
import type { PostgresInstance } from "./postgres.ts";
import { closeIdleConnections } from "./db_session.ts";
import { guardPostgresJsNullSocket } from "./postgres_js_guard.ts";
import { createRestApi } from "./rest_api.ts";
import { startMigratedPostgres } from "./stack_template.ts";
import { createStorageApi } from "./storage_api.ts";
import { createAuthApi } from "./auth_api.ts";
import { withGatewayCors } from "./gateway_cors.ts";
import { createSigningKey, type SigningKey } from "./signing_key.ts";
import { createStorageList, isListRoute } from "./storage_list.ts";

/** Options for {@linkcode startStack}. */
export interface StackOptions {
  /** Port the caller will serve `handleApi` on (used for `apiUrl`). */
  apiPort: number;
  /** Port for the throwaway PostgreSQL (ignored with `databaseUrl`). */
  dbPort: number;
  /** Use this database instead of starting one; it is prepared, never dropped. */
  databaseUrl?: string;
  /** The project's `supabase/` directory (default: the repo's). */
  supabaseDir?: string;
  /** Parent of the stack's temp dirs (default: the system temp dir). */
  tempRoot?: string;
  /** The project's JWT secret: REST and Storage verify with it and the keys are signed with it (default: the CLI's). */
  jwtSecret?: string;
}

/** A running stack. */
export interface Stack {
  /** `http://127.0.0.1:<apiPort>`, i.e. SUPABASE_URL once the caller serves handleApi there. */
  apiUrl: string;
  dbUrl: string;
  /**
   * Superuser connection pool for tests and tools. The API handlers do not use it: they take a
   * pooled connection per request (never reused once lost), so a transaction cut by a PostgreSQL restart cannot wedge them.
   */
  sql: postgres.Sql;
  jwtSecret: string;
  anonKey: string;
  serviceRoleKey: string;
  /** The Auth stand-in's ES256 key: its access tokens, published at /auth/v1/.well-known/jwks.json. */
  signingKey: SigningKey;
  /** The PostgreSQL this stack started (null with `databaseUrl`), e.g. for restart tests. */
  postgres: PostgresInstance | null;
  /** Directory holding stored object bytes (removed by stop). */
  storageDir: string;
  /** Answers `/auth/v1/*`, `/storage/v1/*` and `/rest/v1/*` (with the gateway's CORS); null for any other path. */
  handleApi(req: Request): Promise<Response | null>;
  /** Stops everything this stack started and removes its temp dirs; safe to call twice. */
  stop(): Promise<void>;
}

/** Starts the stack; on any failure it cleans up what it started and rethrows. */
export async function startStack(opts: StackOptions): Promise<Stack> {
  guardPostgresJsNullSocket();
  const cleanups: (() => Promise<void>)[] = [];
  const stop = once(async () => {
    const errors: unknown[] = [];
    for (const fn of cleanups.reverse()) await fn().catch((e) => errors.push(e));
    if (errors.length) throw new AggregateError(errors, "stack: stop failed");
  });
  try {
    let pg: PostgresInstance | null = null;
    if (!opts.databaseUrl) {
      // Migrated with `supabase db push` once per set of migrations, then copied (see stack_template.ts).
      pg = await startMigratedPostgres({ port: opts.dbPort, tempRoot: opts.tempRoot, supabaseDir: opts.supabaseDir });
      cleanups.push(() => pg!.stop());
    }
    const dbUrl = opts.databaseUrl ?? pg!.url;
    if (opts.databaseUrl) await prepareDatabase(dbUrl, { supabaseDir: opts.supabaseDir });

    const storageDir = await Deno.makeTempDir({
      prefix: "supa-stack-storage-",
      dir: opts.tempRoot,
    });
    // Also on a process exit that skips stop() (unload handlers must be synchronous).
    const removeStorageDir = () => {
      try {
        Deno.removeSync(storageDir, { recursive: true });
      } catch { /* best effort */ }
    };
    globalThis.addEventListener("unload", removeStorageDir);
    cleanups.push(async () => {
      globalThis.removeEventListener("unload", removeStorageDir);
      await Deno.remove(storageDir, { recursive: true });
    });
    const sql = postgres(dbUrl, { max: 10, onnotice: () => {} });
    cleanups.push(() => sql.end({ timeout: 5 }));

    // Only drive our own stand-in queue: with the real pg_net installed, its worker owns the queue.
    const [standIn] = await sql`
      select obj_description('net'::regnamespace, 'pg_namespace') like 'pg_net stand-in%' as yes
        from pg_namespace where nspname = 'net'`;
    if (standIn?.yes) {
      const worker: PgNetWorker = startPgNetWorker(dbUrl);
      cleanups.push(() => worker.stop());
    }

    const jwtSecret = opts.jwtSecret ?? LOCAL_JWT_SECRET;
    const apiUrl = `http://127.0.0.1:${opts.apiPort}`;
    const signingKey = await createSigningKey();
    const jwks = signingKey.jwks;
    const rest = createRestApi({ dbUrl, jwtSecret, jwks });
    const storage = createStorageApi({ dbUrl, jwtSecret, jwks, dataDir: storageDir });
    const auth = createAuthApi({ dbUrl, apiUrl, signingKey });
    const list = createStorageList({ dbUrl, jwtSecret, jwks });
    cleanups.push(() => closeIdleConnections(dbUrl));
    return {
      apiUrl,
      dbUrl,
      sql,
      jwtSecret,
      anonKey: await signKey("anon", jwtSecret),
      serviceRoleKey: await signKey("service_role", jwtSecret),
      signingKey,
      postgres: pg,
      storageDir,
      handleApi(req) {
        const path = new URL(req.url).pathname;
        if (isListRoute(path)) return withGatewayCors(req, list);
        if (path.startsWith("/storage/v1/")) return withGatewayCors(req, storage);
        if (path.startsWith("/rest/v1/")) return withGatewayCors(req, rest);
        if (path.startsWith("/auth/v1/")) return withGatewayCors(req, auth);
        return Promise.resolve(null);
      },
      stop,
    };
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
}

/** Wraps fn so every call shares the first call's promise. */
function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | null = null;
  return () => (p ??= fn());
}
