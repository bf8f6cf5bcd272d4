import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { prepareDatabase } from "./database.ts";
import { startPostgres } from "./postgres.ts";
import { freePort, supabaseDirWith } from "./testing.ts";

Deno.test("supabase db push runs migrations once in filename order, seed once; a failing file is named and not recorded", async () => {
  const pg = await startPostgres({ port: freePort() });
  const sql = postgres(pg.url, { onnotice: () => {} });
  const dir = await supabaseDirWith({
    // Not idempotent on purpose: re-running any of them would fail.
    "20240102000000_second.sql": "alter table public.things add column note text;",
    "20240101000000_first.sql": "create table public.things (id int primary key);",
  }, "insert into public.things (id) values (1);");
  try {
    await prepareDatabase(pg.url, { supabaseDir: dir });
    await prepareDatabase(pg.url, { supabaseDir: dir });
    const versions = await sql`select version, name from supabase_migrations.schema_migrations order by version`;
    assert.deepEqual(versions.map((r) => `${r.version}_${r.name}`), [
      "20240101000000_first",
      "20240102000000_second",
    ]);
    assert.equal((await sql`select count(*)::int n from public.things`)[0].n, 1, "seed ran twice");

    await Deno.writeTextFile(
      `${dir}/migrations/20240103000000_broken.sql`,
      "create table public.oops (id int);\nselect nope;",
    );
    await assert.rejects(prepareDatabase(pg.url, { supabaseDir: dir }), (e: Error) => {
      assert.match(e.message, /migrations\/20240103000000_broken\.sql failed[\s\S]*column "nope" does not exist/);
      return true;
    });
    const [{ oops }] = await sql`select to_regclass('public.oops') is not null as oops`;
    assert.equal(oops, false, "a failed migration must roll back as a whole");
    assert.equal(
      (await sql`select count(*)::int n from supabase_migrations.schema_migrations`)[0].n,
      2,
    );
  } finally {
    await sql.end();
    await pg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bootstrap provides the platform's roles, auth, storage, vault and net", async () => {
  const pg = await startPostgres({ port: freePort() });
  const sql = postgres(pg.url, { onnotice: () => {} });
  const dir = await supabaseDirWith({});
  const user = "6a1d3f0e-5b7c-4e2a-9d8f-0c1b2a3e4f5d";
  const as = <T>(role: string, claims: object, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
    sql.begin(async (tx) => {
      await tx`select set_config('role', ${role}, true), set_config('request.jwt.claims', ${
        JSON.stringify(claims)
      }, true)`;
      return await fn(tx);
    });
  try {
    await prepareDatabase(pg.url, { supabaseDir: dir });
    await prepareDatabase(pg.url, { supabaseDir: dir }); // bootstrap is safe to run again

    const roles = await sql`select rolname, rolcanlogin, rolbypassrls from pg_roles
                             where rolname in ('anon', 'authenticated', 'service_role', 'authenticator') order by rolname`;
    assert.deepEqual(roles.map((r) => [r.rolname, r.rolcanlogin, r.rolbypassrls]), [
      ["anon", false, false],
      ["authenticated", false, false],
      ["authenticator", true, false],
      ["service_role", false, true],
    ]);

    const [who] = await as(
      "authenticated",
      { sub: user, role: "authenticated" },
      (tx) => tx`select auth.uid() as uid, auth.role() as role, auth.jwt() ->> 'sub' as sub`,
    );
    assert.deepEqual({ ...who }, { uid: user, role: "authenticated", sub: user });
    const [nobody] = await as("anon", { role: "anon" }, (tx) => tx`select auth.uid() as uid`);
    assert.equal(nobody.uid, null);

    await sql`insert into storage.buckets (id, name) values ('b', 'b')`;
    const [obj] = await sql`insert into storage.objects (bucket_id, name) values ('b', 'x/y/z.png') returning *`;
    assert.deepEqual(obj.path_tokens, ["x", "y", "z.png"]);
    assert.deepEqual(Object.keys(obj).sort(), [
      "bucket_id",
      "created_at",
      "id",
      "last_accessed_at",
      "metadata",
      "name",
      "owner",
      "owner_id",
      "path_tokens",
      "updated_at",
      "user_metadata",
      "version",
    ]);
    const [f] =
      await sql`select storage.foldername(${obj.name}) d, storage.filename(${obj.name}) f, storage.extension(${obj.name}) e`;
    assert.deepEqual({ ...f }, { d: ["x", "y"], f: "z.png", e: "png" });

    await assert.rejects(sql`delete from storage.objects`, {
      code: "42501",
      message: /Direct deletion from storage tables/,
    });
    await assert.rejects(sql`delete from storage.buckets`, { code: "42501" });
    const deleted = await sql.begin(async (tx) => {
      await tx`select set_config('storage.allow_delete_query', 'true', true)`;
      return await tx`delete from storage.objects returning id`;
    });
    assert.equal(deleted.length, 1);

    const [{ create_secret: id }] = await sql`select vault.create_secret('s3cret', 'api_key', 'for tests')`;
    await sql`select vault.update_secret(${id}, 'n3w')`;
    const [secret] =
      await sql`select name, description, decrypted_secret from vault.decrypted_secrets where id = ${id}`;
    assert.deepEqual({ ...secret }, {
      name: "api_key",
      description: "for tests",
      decrypted_secret: "n3w",
    });
    for (const role of ["service_role", "authenticated", "anon"]) {
      await assert.rejects(as(role, { role }, (tx) => tx`select * from vault.decrypted_secrets`), {
        code: "42501",
      });
    }

    // Tables a migration creates later in public are reachable by the API roles (RLS then decides).
    await sql`create table public.later (x int)`;
    await as("anon", { role: "anon" }, (tx) => tx`insert into public.later values (1)`);

    // Service role may enqueue webhooks but not read the queue.
    const [{ rid }] = await as(
      "service_role",
      { role: "service_role" },
      (tx) =>
        tx`select net.http_post('http://127.0.0.1:9/hook', '{"a":1}', '{"q":"a b"}', timeout_milliseconds => 1000) as rid`,
    );
    const [queued] = await sql`select method, url, headers, convert_from(body, 'UTF8') as body, timeout_milliseconds
                                 from net.http_request_queue where id = ${rid}`;
    assert.deepEqual({ ...queued }, {
      method: "POST",
      url: "http://127.0.0.1:9/hook?q=a%20b",
      headers: { "Content-Type": "application/json" },
      body: '{"a": 1}',
      timeout_milliseconds: 1000,
    });
    await assert.rejects(
      as(
        "service_role",
        { role: "service_role" },
        (tx) => tx`select * from net.http_request_queue`,
      ),
      {
        code: "42501",
      },
    );
  } finally {
    await sql.end();
    await pg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bootstrap keeps the platform objects a database already has and creates only what is missing", async () => {
  const pg = await startPostgres({ port: freePort() });
  const sql = postgres(pg.url, { onnotice: () => {} });
  const dir = await supabaseDirWith({});
  try {
    // As on a real Supabase Postgres: the platform's own definitions are already there.
    await sql.unsafe(`
      create schema storage;
      create function storage.foldername(name text) returns text[] language sql immutable
        as $$ select array['the platform''s own'] $$;
      create table storage.objects (id uuid primary key, bucket_id text, name text, owner uuid, owner_id text,
        created_at timestamptz, updated_at timestamptz, last_accessed_at timestamptz, metadata jsonb,
        path_tokens text[], version text, user_metadata jsonb);
      create function storage.platform_touch() returns trigger language plpgsql as $$ begin return new; end $$;
      create trigger update_objects_updated_at before update on storage.objects
        for each row execute function storage.platform_touch();
      create schema auth;
      create function auth.uid() returns uuid language sql stable as $$ select '00000000-0000-0000-0000-00000000beef'::uuid $$;
    `).simple();
    await prepareDatabase(pg.url, { supabaseDir: dir });
    const [kept] = await sql`select storage.foldername('a/b') as folder, auth.uid() as uid,
      (select p.proname from pg_trigger t join pg_proc p on p.oid = t.tgfoid
        where t.tgname = 'update_objects_updated_at') as trigger_function`;
    assert.deepEqual(kept, {
      folder: ["the platform's own"],
      uid: "00000000-0000-0000-0000-00000000beef",
      trigger_function: "platform_touch",
    });
    // What was missing is there.
    const [created] = await sql`select storage.filename('a/b.png') as file, auth.role() is null as no_role,
      to_regclass('vault.decrypted_secrets') is not null as vault_view`;
    assert.deepEqual(created, { file: "b.png", no_role: true, vault_view: true });
  } finally {
    await sql.end();
    await pg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
