/**
 * A migrated cluster, made once and copied: the first stack for a given set of inputs (bootstrap.sql,
 * the migrations, seed.sql, the pinned CLI, the installed PostgreSQL and its extensions) runs
 * `supabase db push` on a fresh cluster and snapshots its data directory into `.cache/stack-templates/`;
 * every later stack starts from a copy of it, skipping initdb and the migrations (and the CLI's
 * startup, about a second of CPU per run).
 *
 * @module
 */
import postgres from "npm:postgres@3.4.9";
import { DEFAULT_SUPABASE_DIR, prepareDatabase } from "./database.ts";
import { type PostgresInstance, startPostgres } from "./postgres.ts";
import { pinnedCliVersion, REPO_ROOT } from "./supabase_cli.ts";

const CACHE = `${REPO_ROOT}.cache/stack-templates`;
const BOOTSTRAP = new URL("./bootstrap.sql", import.meta.url);
const PG_BIN = "/usr/lib/postgresql/15/bin/postgres";
const EXTENSION_DIR = "/usr/share/postgresql/15/extension";
// Templates not used for this long are removed when a new one is made.
const UNUSED_MS = 24 * 3600 * 1000;

/** Options for {@linkcode startMigratedPostgres}. */
export interface MigratedOptions {
  port: number;
  tempRoot?: string;
  /** The project's `supabase/` directory (default: the repo's). */
  supabaseDir?: string;
}

/** Starts a PostgreSQL with bootstrap, migrations and seed applied; throws naming what failed (see prepareDatabase). */
export async function startMigratedPostgres(opts: MigratedOptions): Promise<PostgresInstance> {
  const supabaseDir = opts.supabaseDir ?? DEFAULT_SUPABASE_DIR;
  const template = `${CACHE}/${await templateKey(supabaseDir)}`;
  await Deno.mkdir(CACHE, { recursive: true });
  // Stacks start in parallel: one makes the template while the others wait for it.
  const lock = await Deno.open(`${template}.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    if (await exists(`${template}/PG_VERSION`)) {
      lock.close();
      const now = new Date();
      await Deno.utime(template, now, now);
      const pg = await startPostgres({ port: opts.port, tempRoot: opts.tempRoot, fromDataDir: template });
      await pointCronAtItself(pg).catch(async (e) => {
        await pg.stop();
        throw e;
      });
      return pg;
    }
    const pg = await startPostgres({ port: opts.port, tempRoot: opts.tempRoot });
    try {
      await prepareDatabase(pg.url, { supabaseDir });
      await Deno.remove(`${template}.partial`, { recursive: true }).catch(() => {}); // left by a crash
      await pg.snapshot(`${template}.partial`);
      await Deno.rename(`${template}.partial`, template);
    } catch (e) {
      await Deno.remove(`${template}.partial`, { recursive: true }).catch(() => {});
      await pg.stop();
      throw e;
    }
    await pruneUnused(template);
    return pg;
  } finally {
    try {
      lock.close();
    } catch { /* closed above */ }
  }
}

/** Hashes everything the migrated database depends on; throws when an input cannot be read. */
async function templateKey(supabaseDir: string): Promise<string> {
  const parts = [await Deno.readTextFile(BOOTSTRAP), await pinnedCliVersion()];
  const pg = await Deno.stat(PG_BIN).catch(() => null);
  parts.push(`${pg?.size}:${pg?.mtime?.toISOString()}`);
  parts.push((await list(EXTENSION_DIR)).filter((n) => n.endsWith(".control")).join(","));
  for (const name of (await list(`${supabaseDir}/migrations`)).filter((n) => n.endsWith(".sql"))) {
    parts.push(name, await Deno.readTextFile(`${supabaseDir}/migrations/${name}`));
  }
  parts.push(await Deno.readTextFile(`${supabaseDir}/seed.sql`).catch(() => ""));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(parts.join("\0")));
  return Array.from(new Uint8Array(digest).slice(0, 12), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** pg_cron jobs record the port they were scheduled on; a copy runs on another. Throws on SQL errors. */
async function pointCronAtItself(pg: PostgresInstance): Promise<void> {
  const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
  try {
    const [cron] = await sql`select to_regclass('cron.job') is not null as present`;
    if (cron.present) await sql`update cron.job set nodeport = inet_server_port()`;
  } finally {
    await sql.end();
  }
}

/** Removes other templates unused for a day; throws nothing. */
async function pruneUnused(keep: string): Promise<void> {
  for (const name of await list(CACHE)) {
    const path = `${CACHE}/${name}`;
    if (path === keep || path === `${keep}.lock`) continue;
    const info = await Deno.stat(path).catch(() => null);
    if (info?.mtime && Date.now() - info.mtime.getTime() > UNUSED_MS) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
}

async function list(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  } catch {
    return [];
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}
