import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { prepareDatabase } from "./database.ts";
import { checkDatabase, formatFindings, parseFindings } from "./db_check.ts";
import { startPostgres } from "./postgres.ts";
import { exists, freePort, supabaseDirWith } from "./testing.ts";

const MIGRATIONS = new URL("../../supabase/migrations/", import.meta.url);
const MOVE = "20261201000050_extension_schemas.sql";
const hasCron = await exists("/usr/share/postgresql/15/extension/pg_cron.control");

Deno.test({
  name: "a project whose pg_cron landed in public gets it moved with its jobs kept, and the advisor then passes",
  ignore: !hasCron,
  async fn() {
    const pg = await startPostgres({ port: freePort() });
    const sql = postgres(pg.url, { onnotice: () => {} });
    const files = [...Deno.readDirSync(MIGRATIONS)].map((e) => e.name).filter((n) => n.endsWith(".sql")).sort();
    const read = (name: string) => Deno.readTextFileSync(new URL(name, MIGRATIONS));
    // The project as it was before the move: the migrations up to it, then a job of the user's own.
    const dir = await supabaseDirWith(Object.fromEntries(files.filter((n) => n < MOVE).map((n) => [n, read(n)])));
    try {
      await prepareDatabase(pg.url, { supabaseDir: dir });
      const namespace = async () =>
        (await sql`select extnamespace::regnamespace::text as ns from pg_extension where extname = 'pg_cron'`)[0].ns;
      assert.equal(await namespace(), "public", "what the advisor reports as extension_in_public");
      await sql`select cron.schedule('nightly-report', '0 3 * * *', 'select 1')`;
      const jobs = async () =>
        (await sql`select jobid, jobname, schedule, command from cron.job order by jobid`)
          .map((r) => ({ ...r }));
      const before = await jobs();
      assert.deepEqual(before.map((j) => j.jobname), ["captioning-sweep", "nightly-report"]);

      for (const name of files.filter((n) => n >= MOVE)) {
        Deno.writeTextFileSync(`${dir}/migrations/${name}`, read(name));
      }
      await prepareDatabase(pg.url, { supabaseDir: dir });

      assert.equal(await namespace(), "pg_catalog");
      // Later migrations may add jobs of their own or reschedule the sweeper; what existed keeps its id.
      const after = await jobs();
      assert.deepEqual(
        before.map((j) => after.find((a) => a.jobid === j.jobid)?.jobname),
        before.map((j) => j.jobname),
        "every job kept, with its id",
      );
      const own = (list: typeof before) => list.find((j) => j.jobname === "nightly-report");
      assert.deepEqual(own(after), own(before), "the user's own job is kept as it was");
      const [{ jobid }] = await sql`select cron.schedule('later', '0 4 * * *', 'select 2') as jobid`;
      assert.ok(
        Number(jobid) > Math.max(...after.map((j) => Number(j.jobid))),
        "new job ids continue after kept ones",
      );

      const checked = await checkDatabase(pg.url);
      assert.deepEqual(checked.findings.filter((f) => f.level !== "INFO"), [], formatFindings(checked.findings));
      assert.equal(checked.lintErrors, "");
      assert.equal(checked.ok, true);
    } finally {
      await sql.end();
      await pg.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("advisor output is read from the JSON the CLI prints, and failing levels are listed first", () => {
  const stdout = 'Target: custom Postgres\n[{"name":"a","level":"INFO","detail":"d1"},{"name":"b","level":"WARN",' +
    '"detail":"d2","remediation":"https://r"}]\n';
  const findings = parseFindings(stdout);
  assert.deepEqual(findings.map((f) => f.name), ["a", "b"]);
  assert.equal(formatFindings(findings), "  WARN  b: d2\n        https://r\n  INFO  a: d1");
  assert.deepEqual(parseFindings("No issues found\n"), []);
});
