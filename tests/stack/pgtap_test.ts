import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { PGTAP_DIR, pgTapFiles, runPgTap } from "./pgtap.ts";
import { startMigratedPostgres } from "./stack_template.ts";
import { freePort } from "./testing.ts";

Deno.test("the pgTAP suite passes on a freshly migrated database, and fails when a policy is missing", async (t) => {
  const pg = await startMigratedPostgres({ port: freePort() });
  const sql = postgres(pg.url, { onnotice: () => {} });
  try {
    const files = await pgTapFiles();
    assert.ok(files.length >= 5, `pgTAP files in ${PGTAP_DIR}`);

    await t.step("every file passes (pg_prove)", async () => {
      const result = await runPgTap(pg.url, files);
      assert.ok(result.ok, result.output);
      assert.match(result.output, /All tests successful/);
      assert.match(result.output, /Result: PASS/);
    });

    await t.step("the suite leaves nothing behind (every file rolls back)", async () => {
      const [left] = await sql`select (select count(*)::int from storage.objects) as objects,
                                      (select count(*)::int from captioning.jobs) as jobs,
                                      exists (select from pg_extension where extname = 'pgtap') as pgtap`;
      assert.deepEqual({ ...left }, { objects: 0, jobs: 0, pgtap: false });
    });

    await t.step("it catches a broken policy: without the owner's read policy the RLS file fails", async () => {
      await sql`drop policy "Owners read the captions of their images" on public.image_caption`;
      const result = await runPgTap(pg.url, files.filter((f) => f.endsWith("/image_caption_rls.test.sql")));
      assert.equal(result.ok, false, result.output);
      assert.match(result.output, /the owner reads the caption of their image and no other/);
    });
  } finally {
    await sql.end();
    await pg.stop();
  }
});
