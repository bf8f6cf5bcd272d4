/**
 * The database half of `deno task check`: Supabase's advisor (`supabase db advisors`) and PL/pgSQL
 * lint (`supabase db lint`, plpgsql_check), run by the pinned CLI on a throwaway PostgreSQL freshly
 * migrated with the project's migrations. Prints every finding, one line each, and fails on an
 * advisor WARN or ERROR or a lint error.
 *
 * @module
 */
import { startMigratedPostgres } from "./stack_template.ts";
import { runSupabase } from "./supabase_cli.ts";
import { freePort } from "./testing.ts";

/** One advisor finding, as `supabase db advisors` prints it (JSON). */
export interface AdvisorFinding {
  name: string;
  level: "ERROR" | "WARN" | "INFO";
  detail: string;
  remediation?: string;
}

/** The outcome of {@linkcode checkDatabase}. */
export interface DbCheckResult {
  findings: AdvisorFinding[];
  /** Lint output when plpgsql_check found errors, else empty. */
  lintErrors: string;
  /** True when there is no advisor WARN/ERROR and no lint error. */
  ok: boolean;
}

/** Runs the advisor and the lint against url; throws when the CLI cannot run at all. */
export async function checkDatabase(url: string): Promise<DbCheckResult> {
  const advisors = await runSupabase(
    ["db", "advisors", `--remote=${url}`, "--type", "all", "--level", "info", "--fail-on", "warn"],
    { check: false },
  );
  const findings = parseFindings(advisors.stdout);
  if (advisors.code !== 0 && !findings.some(failsAdvisor)) {
    throw new Error(`supabase db advisors failed (exit ${advisors.code}):\n${advisors.stdout}${advisors.stderr}`);
  }
  const lint = await runSupabase(["db", "lint", `--remote=${url}`, "--level", "warning", "--fail-on", "error"], {
    check: false,
  });
  const lintOutput = `${lint.stdout}${lint.stderr}`;
  if (/plpgsql_check/.test(lintOutput) && /not available|could not open|does not exist/.test(lintOutput)) {
    throw new Error(`supabase db lint needs plpgsql_check (Debian: postgresql-15-plpgsql-check):\n${lintOutput}`);
  }
  const lintErrors = lint.code === 0 ? "" : lint.stdout.trim() || lintOutput.trim();
  return { findings, lintErrors, ok: advisors.code === 0 && lint.code === 0 };
}

/** Reads the JSON array the advisor prints on stdout; `[]` when it printed none. */
export function parseFindings(stdout: string): AdvisorFinding[] {
  const start = stdout.indexOf("[");
  if (start < 0) return [];
  return JSON.parse(stdout.slice(start, stdout.lastIndexOf("]") + 1));
}

/** Formats findings one per line, the failing levels first; throws nothing. */
export function formatFindings(findings: AdvisorFinding[]): string {
  const order = { ERROR: 0, WARN: 1, INFO: 2 };
  return [...findings]
    .sort((a, b) => order[a.level] - order[b.level])
    .map((f) => `  ${f.level.padEnd(5)} ${f.name}: ${f.detail}${f.remediation ? `\n        ${f.remediation}` : ""}`)
    .join("\n");
}

function failsAdvisor(f: AdvisorFinding): boolean {
  return f.level === "WARN" || f.level === "ERROR";
}

async function main(): Promise<number> {
  const pg = await startMigratedPostgres({ port: freePort() });
  try {
    const result = await checkDatabase(pg.url);
    const failing = result.findings.filter(failsAdvisor).length;
    console.log(`supabase db advisors --type all: ${result.findings.length} finding(s), ${failing} WARN/ERROR`);
    if (result.findings.length) console.log(formatFindings(result.findings));
    console.log(`supabase db lint (plpgsql_check): ${result.lintErrors ? "errors" : "no errors"}`);
    if (result.lintErrors) console.log(result.lintErrors);
    if (!result.ok) console.error("db check failed: fix the WARN/ERROR findings and lint errors above.");
    return result.ok ? 0 : 1;
  } finally {
    await pg.stop();
  }
}

if (import.meta.main) Deno.exit(await main());
