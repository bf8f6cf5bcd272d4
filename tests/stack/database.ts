/**
 * Prepares a database the way a Supabase project gets one: the platform's bootstrap (what exists
 * before any migration), then `supabase db push --include-seed` of the real CLI, which applies the
 * project's migrations in order and seed.sql, and records them in `supabase_migrations`.
 *
 * @module
 */
import postgres from "npm:postgres@3.4.9";
import { runSupabase } from "./supabase_cli.ts";

/** Options for {@linkcode prepareDatabase}. */
export interface PrepareOptions {
  /** The project's `supabase/` directory; defaults to the one at the repo root. */
  supabaseDir?: string;
}

/** Repo-root `supabase/` directory, found from this module's location. */
export const DEFAULT_SUPABASE_DIR: string = new URL("../../supabase/", import.meta.url).pathname;

const BOOTSTRAP = new URL("./bootstrap.sql", import.meta.url);
// One lock for every step, so two test processes preparing the same database take turns.
const LOCK_KEY = 7_105_201_823;

/** Runs bootstrap, then `supabase db push --include-seed`; throws naming what failed (with the CLI's output). */
export async function prepareDatabase(url: string, opts: PrepareOptions = {}): Promise<void> {
  const dir = (opts.supabaseDir ?? DEFAULT_SUPABASE_DIR).replace(/\/+$/, "");
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const lock = await sql.reserve();
    try {
      await lock`select pg_advisory_lock(${LOCK_KEY})`;
      await applyBootstrap(lock);
      await pushMigrations(url, dir);
    } finally {
      await lock`select pg_advisory_unlock(${LOCK_KEY})`.catch(() => {});
      lock.release();
    }
  } finally {
    await sql.end();
  }
}

/** Runs `supabase db push --include-seed` for dir (a `supabase/` directory); throws with the CLI's output. */
async function pushMigrations(url: string, dir: string): Promise<void> {
  // The CLI reads `<workdir>/supabase`; a directory with another name is linked in under that name.
  const named = dir.split("/").pop() === "supabase";
  const workdir = named ? dir.slice(0, dir.lastIndexOf("/")) || "/" : await Deno.makeTempDir({ prefix: "supa-push-" });
  try {
    if (!named) await Deno.symlink(dir, `${workdir}/supabase`);
    const push = await runSupabase(["db", "push", `--remote=${url}`, "--include-seed", "--yes"], {
      workdir,
      check: false,
    });
    if (push.code !== 0) {
      const where = await firstUnapplied(url, dir);
      throw new Error(
        `prepareDatabase: ${where} failed (supabase db push, exit ${push.code}):\n${push.stdout}${push.stderr}`,
      );
    }
  } finally {
    if (!named) await Deno.remove(workdir, { recursive: true });
  }
}

/** Names the file a failed push stopped at: the first migration not recorded as applied, else seed.sql. */
async function firstUnapplied(url: string, dir: string): Promise<string> {
  const files: string[] = [];
  for await (const e of Deno.readDir(`${dir}/migrations`)) if (/^\d+_.*\.sql$/.test(e.name)) files.push(e.name);
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`select version from supabase_migrations.schema_migrations`.catch(() => []);
    const applied = new Set(rows.map((r) => r.version));
    const pending = files.sort().find((f) => !applied.has(f.split("_")[0]));
    return pending ? `migrations/${pending}` : "seed.sql";
  } finally {
    await sql.end();
  }
}

/** Runs bootstrap.sql in one transaction unless this exact version already ran; throws naming bootstrap.sql. */
async function applyBootstrap(conn: postgres.ReservedSql): Promise<void> {
  const text = await Deno.readTextFile(BOOTSTRAP);
  const hash = await sha256Hex(text);
  try {
    await conn`begin`;
    await conn`create schema if not exists supabase_migrations`;
    // Re-run only when bootstrap.sql changed, so it never undoes what migrations did on a prepared database.
    await conn`create table if not exists supabase_migrations.stack_bootstrap (hash text primary key)`;
    const [done] = await conn`select 1 from supabase_migrations.stack_bootstrap where hash = ${hash}`;
    if (!done) {
      await conn.unsafe(text).simple();
      await conn`delete from supabase_migrations.stack_bootstrap`;
      await conn`insert into supabase_migrations.stack_bootstrap (hash) values (${hash})`;
    }
    await conn`commit`;
  } catch (e) {
    await conn`rollback`.catch(() => {});
    const pg = e as { message?: string; detail?: string; hint?: string; where?: string };
    const extra = [pg.detail && `detail: ${pg.detail}`, pg.hint && `hint: ${pg.hint}`, pg.where && `where: ${pg.where}`]
      .filter(Boolean).join("; ");
    throw new Error(`prepareDatabase: bootstrap.sql failed: ${pg.message}${extra ? ` (${extra})` : ""}`, { cause: e });
  }
}

/** Hex SHA-256 of a string; throws nothing. */
async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
