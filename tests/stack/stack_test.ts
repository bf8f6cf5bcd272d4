import assert from "node:assert/strict";
import { startPostgres } from "./postgres.ts";
import { type Stack, startStack } from "./stack.ts";
import { client, exists, freePort, processRunning, serveApi, supabaseDirWith, withDeadline } from "./testing.ts";

Deno.test("two stacks with the project's migrations run at once, isolated, and stop without leftovers", async () => {
  const ports = [freePort(), freePort()];
  const stacks: Stack[] = [];
  const servers: Deno.HttpServer[] = [];
  try {
    for (const port of ports) {
      const stack = await startStack({ apiPort: port, dbPort: freePort() });
      stacks.push(stack);
      servers.push(serveApi(stack, port));
    }
    const [a, b] = stacks;
    assert.notEqual(a.dbUrl, b.dbUrl);
    for (const s of stacks) {
      await s
        .sql`insert into storage.buckets (id, name) values ('stack-test', 'stack-test') on conflict do nothing`;
    }
    const adminA = client(a.apiUrl, a.serviceRoleKey);
    const adminB = client(b.apiUrl, b.serviceRoleKey);
    assert.equal((await adminA.storage.from("stack-test").upload("only-a.txt", "a")).error, null);
    assert.equal(
      await (await adminA.storage.from("stack-test").download("only-a.txt")).data?.text(),
      "a",
    );
    const inB = await adminB.storage.from("stack-test").download("only-a.txt");
    assert.equal(inB.error?.statusCode, "404");
    const listed = await adminB.schema("storage").from("buckets").select("id").eq(
      "id",
      "stack-test",
    );
    assert.deepEqual(listed.data, [{ id: "stack-test" }]);
    assert.equal(await a.handleApi(new Request(`${a.apiUrl}/functions/v1/x`)), null);
  } finally {
    for (const s of servers) await s.shutdown();
    for (const s of stacks) await s.stop();
  }
  for (const s of stacks) {
    await s.stop(); // idempotent
    assert.ok(s.postgres);
    assert.equal(await processRunning(s.postgres.dataDir), false, "postgres still running");
    assert.equal(await exists(s.postgres.tempDir), false, "postgres temp dir left behind");
    assert.equal(await exists(s.storageDir), false, "storage dir left behind");
  }
});

Deno.test("a failed start cleans up after itself and says why", async () => {
  // A private temp root shows exactly what startStack leaves behind (world-traversable, for the postgres user).
  const tmp = await Deno.makeTempDir({ prefix: "supa-stack-root-" });
  await Deno.chmod(tmp, 0o755);
  const dir = await supabaseDirWith({ "20240101000000_bad.sql": "create table broken (" });
  try {
    await assert.rejects(
      startStack({ apiPort: freePort(), dbPort: freePort(), supabaseDir: dir, tempRoot: tmp }),
      /migrations\/20240101000000_bad\.sql failed/,
    );
    const port = freePort();
    const blocker = Deno.listen({ hostname: "127.0.0.1", port });
    try {
      await assert.rejects(
        startStack({ apiPort: freePort(), dbPort: port, supabaseDir: dir, tempRoot: tmp }),
        /already in use/,
      );
    } finally {
      blocker.close();
    }
    assert.equal(await processRunning(tmp), false, "postgres left running");
    assert.deepEqual([...Deno.readDirSync(tmp)], [], "temp dirs left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("with databaseUrl the stack prepares that database again without touching the server", async () => {
  const pg = await startPostgres({ port: freePort() });
  const dir = await supabaseDirWith({
    "20240101000000_once.sql": "create table public.once (id int);",
  });
  try {
    for (let i = 0; i < 2; i++) {
      const stack = await startStack({
        apiPort: freePort(),
        dbPort: 0,
        databaseUrl: pg.url,
        supabaseDir: dir,
      });
      try {
        assert.equal(stack.postgres, null);
        const [{ n }] = await stack
          .sql`select count(*)::int n from supabase_migrations.schema_migrations`;
        assert.equal(n, 1);
      } finally {
        await stack.stop();
      }
    }
    assert.ok(await processRunning(pg.dataDir), "the given server must keep running");
  } finally {
    await pg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the API keeps answering after PostgreSQL crash-restarts in the middle of traffic", async () => {
  const dir = await supabaseDirWith({});
  const apiPort = freePort();
  const stack = await startStack({ apiPort, dbPort: freePort(), supabaseDir: dir });
  const server = serveApi(stack, apiPort);
  let running = true;
  try {
    await stack.sql`insert into storage.buckets (id, name) values ('b', 'b')`;
    const admin = client(stack.apiUrl, stack.serviceRoleKey);
    // Uploads (two transactions each) and reads keep transactions open while the server dies.
    const traffic = Array.from({ length: 6 }, async (_, i) => {
      for (let n = 0; running; n++) {
        await withDeadline(
          `upload t${i}/${n}`,
          admin.storage.from("b").upload(`t${i}/${n}.txt`, "x", { upsert: true }),
        );
        await withDeadline(
          `select after t${i}/${n}`,
          admin.schema("storage").from("objects").select("name").limit(1),
        );
      }
    });
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 300));
      await stack.postgres!.restart("immediate");
    }
    running = false;
    await Promise.all(traffic);
    const started = performance.now();
    for (let i = 0; i < 10; i++) {
      const up = await admin.storage.from("b").upload(`after/${i}.txt`, "y");
      assert.equal(up.error, null);
      const read = await admin.schema("storage").from("objects").select("name").eq(
        "name",
        `after/${i}.txt`,
      );
      assert.deepEqual(read.data, [{ name: `after/${i}.txt` }]);
    }
    assert.ok(
      performance.now() - started < 5000,
      "requests after the restarts were slow: a wedged connection?",
    );
  } finally {
    running = false;
    await server.shutdown();
    await stack.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
