/**
 * Prepares a database like `supabase db reset` does: platform bootstrap, then the project's
 * migrations in filename order, then seed.sql, each applied once.
 *
 * @module
 */
import postgres from "npm:postgres@3.4.9";

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
// The CLI's rule: `<digits>_<name>.sql`; other files are skipped with a warning.
const MIGRATION_FILE = /^(\d+)_(.*)\.sql$/;

/** Runs bootstrap, pending migrations and a changed seed.sql against url; throws naming the file that failed. */
export async function prepareDatabase(url: string, opts: PrepareOptions = {}): Promise<void> {
  const dir = opts.supabaseDir ?? DEFAULT_SUPABASE_DIR;
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const bootstrap = await Deno.readTextFile(BOOTSTRAP);
    const bootstrapHash = await sha256Hex(bootstrap);
    await applyFile(sql, "bootstrap.sql", bootstrap, async (tx) => {
      await tx`create schema if not exists supabase_migrations`;
      await tx`create table if not exists supabase_migrations.schema_migrations
                 (version text primary key, statements text[], name text)`;
      await tx`create table if not exists supabase_migrations.seed_files (path text primary key, hash text not null)`;
      // Re-run only when bootstrap.sql changed, so it never undoes what migrations did on a prepared database.
      await tx`create table if not exists supabase_migrations.stack_bootstrap (hash text primary key)`;
      const [done] = await tx`select 1 from supabase_migrations.stack_bootstrap where hash = ${bootstrapHash}`;
      if (done) return "skip";
      await tx`delete from supabase_migrations.stack_bootstrap`;
      await tx`insert into supabase_migrations.stack_bootstrap (hash) values (${bootstrapHash})`;
    });
    for (const m of await listMigrations(`${dir}/migrations`)) {
      await applyFile(sql, `migrations/${m.file}`, await Deno.readTextFile(m.path), async (tx) => {
        const [done] = await tx`select 1 from supabase_migrations.schema_migrations where version = ${m.version}`;
        if (done) return "skip";
        await tx`insert into supabase_migrations.schema_migrations (version, name) values (${m.version}, ${m.name})`;
      });
    }
    await applySeed(sql, dir);
  } finally {
    await sql.end();
  }
}

/** A migration file found by {@linkcode listMigrations}. */
export interface Migration {
  file: string;
  path: string;
  version: string;
  name: string;
}

/** Lists `<version>_<name>.sql` files in filename order; an absent directory means none. */
export async function listMigrations(dir: string): Promise<Migration[]> {
  const found: Migration[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || !e.name.endsWith(".sql")) continue;
      const m = MIGRATION_FILE.exec(e.name);
      if (!m) {
        console.warn(
          `prepareDatabase: skipping ${e.name} (file name must match <timestamp>_name.sql)`,
        );
        continue;
      }
      found.push({ file: e.name, path: `${dir}/${e.name}`, version: m[1], name: m[2] });
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return found.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/** Runs seed.sql when it exists and its content hash was not applied yet; throws naming seed.sql. */
async function applySeed(sql: postgres.Sql, dir: string): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/seed.sql`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  const hash = await sha256Hex(text);
  await applyFile(sql, "seed.sql", text, async (tx) => {
    const [done] = await tx`select 1 from supabase_migrations.seed_files where path = 'seed.sql' and hash = ${hash}`;
    if (done) return "skip";
    await tx`insert into supabase_migrations.seed_files (path, hash) values ('seed.sql', ${hash})
             on conflict (path) do update set hash = excluded.hash`;
  });
}

type Before = (tx: postgres.TransactionSql) => Promise<"skip" | void>;

/** Runs one SQL file in its own transaction under the advisory lock; throws an Error naming the file. */
async function applyFile(
  sql: postgres.Sql,
  label: string,
  text: string,
  before: Before,
): Promise<void> {
  try {
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${LOCK_KEY})`;
      if ((await before(tx)) === "skip") return;
      await tx.unsafe(text).simple();
    });
  } catch (e) {
    const pg = e as {
      message?: string;
      detail?: string;
      hint?: string;
      where?: string;
      position?: string;
    };
    const extra = [
      pg.detail && `detail: ${pg.detail}`,
      pg.hint && `hint: ${pg.hint}`,
      pg.where && `where: ${pg.where}`,
    ]
      .filter(Boolean).join("; ");
    throw new Error(
      `prepareDatabase: ${label} failed: ${pg.message}${extra ? ` (${extra})` : ""}`,
      { cause: e },
    );
  }
}

/** Hex SHA-256 of a string; throws nothing. */
async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
