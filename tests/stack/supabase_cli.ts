/**
 * The Supabase CLI this project pins (`tools/supabase-cli/package.json`), installed through npm into
 * `tools/supabase-cli/node_modules` on first use, so nobody needs a global install.
 *
 * `deno task supabase <args>` runs it from the repo root, e.g. `deno task supabase db push --remote=<url>`.
 * @module
 */

const CLI_DIR = new URL("../../tools/supabase-cli/", import.meta.url).pathname;
const BIN = `${CLI_DIR}node_modules/.bin/supabase`;
const INSTALLED_PACKAGE = `${CLI_DIR}node_modules/supabase/package.json`;
const CLI_TMP = `${CLI_DIR}.tmp`;

/** The repo root: the directory holding `supabase/`. */
export const REPO_ROOT: string = new URL("../../", import.meta.url).pathname;

/** The CLI version pinned in `tools/supabase-cli/package.json`; throws when the file cannot be read. */
export async function pinnedCliVersion(): Promise<string> {
  const pkg = JSON.parse(await Deno.readTextFile(`${CLI_DIR}package.json`));
  return pkg.devDependencies.supabase;
}

/** Installs the pinned CLI with npm unless it is there already; returns its path; throws when npm fails. */
export async function ensureSupabaseCli(): Promise<string> {
  const wanted = await pinnedCliVersion();
  if (await installedVersion() === wanted) return BIN;
  // Test processes start in parallel: one installs while the others wait on the lock.
  const lock = await Deno.open(`${CLI_DIR}.install.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    if (await installedVersion() === wanted) return BIN;
    // Not `npm ci`: it insists that the lock lists every platform's optional binary package, and
    // npm records only the ones the registry in use serves. `npm install` keeps to the lock's versions.
    const out = await new Deno.Command("npm", {
      args: ["install", "--no-audit", "--no-fund", "--loglevel=error"],
      cwd: CLI_DIR,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`supabase cli: npm install in ${CLI_DIR} failed:\n${decode(out.stdout)}${decode(out.stderr)}`);
    }
    return BIN;
  } finally {
    lock.close();
  }
}

/** What one CLI run printed. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@linkcode runSupabase}. */
export interface RunOptions {
  /** Directory holding `supabase/` (the CLI's `--workdir`); default: the repo root. */
  workdir?: string;
  /** Extra environment for the CLI. */
  env?: Record<string, string>;
  /** Throw when the CLI exits non-zero (default true). */
  check?: boolean;
}

/** Runs the pinned CLI with args (no prompts, no telemetry); throws with its output when it fails and `check` is on. */
export async function runSupabase(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  const bin = await ensureSupabaseCli();
  const workdir = opts.workdir ?? REPO_ROOT;
  // The binary unpacks a native module into TMPDIR and leaves it there: give it a directory of its own.
  await Deno.mkdir(CLI_TMP, { recursive: true });
  const out = await new Deno.Command(bin, {
    args: [...args, "--workdir", workdir],
    cwd: workdir,
    env: { ...QUIET_ENV, TMPDIR: CLI_TMP, ...opts.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const result = { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  if (!out.success && opts.check !== false) {
    throw new Error(
      `supabase ${args[0]} ${args[1] ?? ""} failed (exit ${out.code}):\n${result.stdout}${result.stderr}`,
    );
  }
  return result;
}

/**
 * The environment for runs against a local database: no telemetry or update check, and plain TCP
 * (the CLI otherwise tries TLS first and warns that the local server has none).
 */
const QUIET_ENV: Record<string, string> = {
  SUPABASE_TELEMETRY_DISABLED: "1",
  SUPABASE_NO_UPDATE_NOTIFIER: "1",
  DO_NOT_TRACK: "1",
  PGSSLMODE: "disable",
};

async function installedVersion(): Promise<string | undefined> {
  try {
    await Deno.stat(BIN);
    return JSON.parse(await Deno.readTextFile(INSTALLED_PACKAGE)).version;
  } catch {
    return undefined;
  }
}

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

if (import.meta.main) {
  // `deno task supabase …`: the pinned CLI with the caller's arguments and terminal.
  const bin = await ensureSupabaseCli();
  await Deno.mkdir(CLI_TMP, { recursive: true });
  const env = { TMPDIR: CLI_TMP };
  const status = await new Deno.Command(bin, { args: Deno.args, cwd: REPO_ROOT, env }).spawn().status;
  Deno.exit(status.code);
}
