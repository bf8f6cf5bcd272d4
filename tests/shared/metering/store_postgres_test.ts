/**
 * The direct-connection meter store against a real PostgreSQL with the migrations: the same
 * answers as the RPCs, exact under parallel calls, and an unreachable database is an error
 * (which the middleware answers with 503).
 */
import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { createPostgresMeterStore } from "../../../supabase/functions/_shared/metering/store_postgres.ts";
import { prepareDatabase } from "../../stack/database.ts";
import { startPostgres } from "../../stack/postgres.ts";
import { freePort } from "../../stack/testing.ts";
import { awayFromMinuteEdge } from "../../quotas/windows.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("the direct store reserves exactly N of 25 parallel calls and settles with a usage row", opts, async () => {
  const pg = await startPostgres({ port: freePort() });
  const sql = postgres(pg.url, { onnotice: () => {} });
  try {
    await prepareDatabase(pg.url);
    await sql`insert into inference.tiers values ('seven', 7, null)`;
    const user = crypto.randomUUID();
    await sql`insert into inference.user_tiers values (${user}, 'seven')`;
    const store = createPostgresMeterStore(pg.url);
    const request = { key: `user:${user}`, userId: user, tier: "authenticated", task: "text-to-image" };
    await awayFromMinuteEdge();
    const results = await Promise.all(Array.from({ length: 25 }, () => store.reserve(request)));
    assert.equal(results.filter((r) => r.granted).length, 7);
    assert.ok(results.filter((r) => !r.granted).every((r) => r.refused === "requests_per_minute"));
    const granted = results.find((r) => r.granted)!;
    assert.equal(granted.tier, "seven");
    await store.settle([{
      key: request.key,
      day: granted.day,
      reserved: granted.units,
      charge: false,
      caller: request.key,
      userId: user,
      task: "text-to-image",
      model: "m",
      status: 502,
      latencyMs: 12,
      inputBytes: 30,
      outputBytes: null,
      cache: null,
    }]);
    const [counter] = await sql`select units from inference.counters where key = ${request.key}`;
    assert.equal(counter.units, 60);
    const [row] = await sql`select user_id, status, units, latency_ms from public.inference_usage`;
    assert.deepEqual({ ...row }, { user_id: user, status: 502, units: 0, latency_ms: 12 });
  } finally {
    await sql.end();
    await pg.stop();
  }
});

Deno.test("the direct store throws when the database cannot be reached", opts, async () => {
  const store = createPostgresMeterStore(`postgres://postgres:postgres@127.0.0.1:${freePort()}/postgres`);
  await assert.rejects(store.reserve({ key: "user:x", userId: null, tier: "authenticated", task: "text-to-image" }));
});
