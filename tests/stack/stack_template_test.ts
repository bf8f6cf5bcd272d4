import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { startMigratedPostgres } from "./stack_template.ts";
import { freePort, supabaseDirWith } from "./testing.ts";

Deno.test("clusters copied from a template hold the migrations; a new migration makes a new template", async () => {
  const dir = await supabaseDirWith(
    { "20240101000000_things.sql": "create table public.template_things (id int primary key);" },
    "insert into public.template_things values (1);",
  );
  const query = async (url: string) => {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const [row] =
        await sql`select (select array_agg(version order by version) from supabase_migrations.schema_migrations) as versions,
                                     (select count(*)::int from public.template_things) as things,
                                     to_regclass('public.template_more') is not null as more,
                                     inet_server_port() as port`;
      return { ...row };
    } finally {
      await sql.end();
    }
  };
  try {
    // The first start makes the template; the second is a copy of it.
    const a = await startMigratedPostgres({ port: freePort(), supabaseDir: dir });
    const b = await startMigratedPostgres({ port: freePort(), supabaseDir: dir }).catch(async (e) => {
      await a.stop();
      throw e;
    });
    try {
      for (const pg of [a, b]) {
        const seen = await query(pg.url);
        assert.deepEqual(seen.versions, ["20240101000000"], "migrations recorded by supabase db push");
        assert.equal(seen.things, 1, "seed applied once");
        assert.equal(seen.more, false);
        assert.equal(seen.port, Number(new URL(pg.url).port), "each copy listens on its own port");
      }
    } finally {
      await a.stop();
      await b.stop();
    }

    await Deno.writeTextFile(`${dir}/migrations/20240102000000_more.sql`, "create table public.template_more (x int);");
    const c = await startMigratedPostgres({ port: freePort(), supabaseDir: dir });
    try {
      const seen = await query(c.url);
      assert.deepEqual(seen.versions, ["20240101000000", "20240102000000"]);
      assert.equal(seen.more, true, "a changed set of migrations is migrated again, not served from the old template");
    } finally {
      await c.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
