/**
 * Runs the project's pgTAP tests (`supabase/tests/database/*.test.sql`, where `supabase test db`
 * looks for them) with `pg_prove` against a database, as `supabase test db` does inside Docker.
 * Needs Debian's `postgresql-15-pgtap` and `libtap-parser-sourcehandler-pgtap-perl` (`.ci/run` installs them).
 *
 * @module
 */
import { REPO_ROOT } from "./supabase_cli.ts";

/** Where the pgTAP test files live. */
export const PGTAP_DIR: string = `${REPO_ROOT}supabase/tests/database`;

/** What pg_prove reported. */
export interface PgTapResult {
  ok: boolean;
  output: string;
}

/** Lists the `*.test.sql` files of dir, sorted; throws when dir cannot be read. */
export async function pgTapFiles(dir: string = PGTAP_DIR): Promise<string[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile && e.name.endsWith(".test.sql")) files.push(`${dir}/${e.name}`);
  return files.sort();
}

/** Runs pg_prove on files against url (a postgres:// URL); throws when pg_prove is not installed. */
export async function runPgTap(url: string, files: string[]): Promise<PgTapResult> {
  const u = new URL(url);
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("pg_prove", {
      args: [
        "--host",
        u.hostname,
        "--port",
        u.port,
        "--username",
        decodeURIComponent(u.username),
        "--dbname",
        u.pathname.slice(1),
        ...files,
      ],
      env: { PGPASSWORD: decodeURIComponent(u.password), PGSSLMODE: "disable" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        "pg_prove is missing: apt-get install postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl",
      );
    }
    throw e;
  }
  const text = new TextDecoder();
  return { ok: out.success, output: text.decode(out.stdout) + text.decode(out.stderr) };
}
