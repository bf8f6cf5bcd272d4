import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { startPostgres } from "./postgres.ts";
import { exists, freePort, processRunning } from "./testing.ts";

Deno.test("two clusters run side by side, and stop() leaves no process and no temp dir", async () => {
  const [a, b] = await Promise.all([
    startPostgres({ port: freePort() }),
    startPostgres({ port: freePort() }),
  ]);
  const sqlA = postgres(a.url, { onnotice: () => {} });
  const sqlB = postgres(b.url, { onnotice: () => {} });
  try {
    assert.notEqual(a.url, b.url);
    await sqlA`create table only_in_a (x int)`;
    const [{ found }] = await sqlB`select to_regclass('only_in_a') is not null as found`;
    assert.equal(found, false);
    const [s] = await sqlA`select current_setting('fsync') f, current_setting('listen_addresses') l,
                                  current_setting('unix_socket_directories') u, current_user`;
    assert.deepEqual([s.f, s.l, s.u, s.current_user], ["off", "127.0.0.1", a.tempDir, "postgres"]);
    assert.ok(await processRunning(a.dataDir));
  } finally {
    await sqlA.end();
    await sqlB.end();
    await a.stop();
    await b.stop();
  }
  await a.stop(); // idempotent
  for (const pg of [a, b]) {
    assert.equal(await processRunning(pg.dataDir), false, "postmaster still running");
    assert.equal(await exists(pg.tempDir), false, "temp dir left behind");
  }
});

Deno.test("a taken port fails fast with a clear error", async () => {
  const port = freePort();
  const blocker = Deno.listen({ hostname: "127.0.0.1", port });
  try {
    await assert.rejects(startPostgres({ port }), /port \d+ on 127\.0\.0\.1 is already in use/);
  } finally {
    blocker.close();
  }
});

Deno.test("restart keeps committed data; an immediate (crash) restart empties unlogged tables", async () => {
  const pg = await startPostgres({ port: freePort() });
  const sql = postgres(pg.url, { onnotice: () => {} });
  try {
    await sql`create table kept (x int)`;
    await sql`create unlogged table volatile (x int)`;
    await sql`insert into kept values (1)`;
    await sql`insert into volatile values (1)`;
    await pg.restart("fast");
    assert.equal((await sql`select count(*)::int n from volatile`)[0].n, 1);
    await pg.restart("immediate");
    assert.equal((await sql`select count(*)::int n from kept`)[0].n, 1);
    assert.equal((await sql`select count(*)::int n from volatile`)[0].n, 0);
  } finally {
    await sql.end();
    await pg.stop();
  }
});
