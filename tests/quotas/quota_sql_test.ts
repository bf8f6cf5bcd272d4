/**
 * The quota functions of `20261201000100_inference_quotas.sql` themselves, on a real PostgreSQL
 * with the real migrations: reserve and settle, windows, the ceiling, exactness under concurrency.
 */
import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { prepareDatabase } from "../stack/database.ts";
import { startPostgres } from "../stack/postgres.ts";
import { freePort } from "../stack/testing.ts";
import { awayFromMinuteEdge } from "./windows.ts";

type Sql = postgres.Sql;

async function withDatabase(fn: (sql: Sql) => Promise<void>) {
  const pg = await startPostgres({ port: freePort() });
  const sql = postgres(pg.url, { max: 40, onnotice: () => {} });
  try {
    await prepareDatabase(pg.url);
    await fn(sql);
  } finally {
    await sql.end();
    await pg.stop();
  }
}

// deno-lint-ignore no-explicit-any
type Reservation = Record<string, any>;

async function reserve(sql: Sql, key: string | null, task = "text-to-image", tier = "authenticated", user?: string) {
  const [row] = await sql`select public.inference_reserve(${key}, ${user ?? null}, ${tier}, ${task}) as r`;
  return row.r as Reservation;
}

async function settle(sql: Sql, key: string | null, r: Reservation, charge: boolean, status = 200) {
  await sql`select public.inference_settle(${key}, ${r.day}, ${r.units}, ${charge}, ${key ?? "system:test"}, null,
    'text-to-image', 'm', ${status}, 5, 10, 20, null)`;
}

async function units(sql: Sql, key: string) {
  const [row] = await sql`select units from inference.counters where key = ${key}`;
  return row?.units ?? 0;
}

Deno.test("reserve: exactly N of 40 parallel calls pass a per-minute limit of N, one transaction each", async () => {
  await withDatabase(async (sql) => {
    await sql`insert into inference.tiers values ('ten', 10, null)`;
    const user = crypto.randomUUID();
    await sql`insert into inference.user_tiers values (${user}, 'ten')`;
    await awayFromMinuteEdge();
    const results = await Promise.all(
      Array.from({ length: 40 }, () => reserve(sql, `user:${user}`, "text-to-image", "authenticated", user)),
    );
    assert.equal(results.filter((r) => r.granted).length, 10);
    const refused = results.filter((r) => !r.granted);
    assert.equal(refused.length, 30);
    assert.ok(refused.every((r) => r.refused === "requests_per_minute" && r.requests_remaining === 0));
    assert.ok(refused.every((r) => r.minute_reset >= 1 && r.minute_reset <= 60));
    // Refusals take nothing: 10 calls' units, and 10 requests on the counter.
    const [row] = await sql`select requests, units from inference.counters where key = ${`user:${user}`}`;
    assert.deepEqual({ ...row }, { requests: 10, units: 100 });
    assert.equal(await units(sql, "project"), 100);
  });
});

Deno.test("reserve: the daily units limit, exact under 30 parallel calls; settle refunds a failure", async () => {
  await withDatabase(async (sql) => {
    await sql`insert into inference.tiers values ('day50', null, 50)`;
    const user = crypto.randomUUID();
    await sql`insert into inference.user_tiers values (${user}, 'day50')`;
    const key = `user:${user}`;
    const results = await Promise.all(
      Array.from({ length: 30 }, () => reserve(sql, key, "text-to-image", "authenticated", user)),
    );
    const granted = results.filter((r) => r.granted);
    assert.equal(granted.length, 5);
    assert.ok(results.filter((r) => !r.granted).every((r) => r.refused === "units_per_day" && r.day_reset > 0));
    assert.equal(await units(sql, key), 50);
    // One failed upstream: refunded, so exactly one more call fits.
    await settle(sql, key, granted[0], false, 503);
    assert.equal(await units(sql, key), 40);
    assert.equal((await reserve(sql, key, "text-to-image", "authenticated", user)).units_remaining, 0);
    assert.equal((await reserve(sql, key, "text-to-image", "authenticated", user)).granted, false);
    // A success is charged as reserved: nothing moves.
    await settle(sql, key, granted[1], true);
    assert.equal(await units(sql, key), 50);
    const rows = await sql`select status, units, caller from public.inference_usage order by id`;
    assert.deepEqual(rows.map((r) => [r.status, r.units]), [[503, 0], [200, 10]]);
  });
});

Deno.test("reserve: tiers by default and per user, unknown tasks cost 1, a missing tier is an error", async () => {
  await withDatabase(async (sql) => {
    const anon = await reserve(sql, "user:a", "text-to-image", "anonymous");
    assert.equal(anon.tier, "anonymous");
    assert.equal(anon.requests_per_minute, 5);
    assert.equal(anon.requests_remaining, 4);
    assert.equal(anon.units_remaining, 90);
    const user = crypto.randomUUID();
    await sql`insert into inference.tiers values ('unlimited', null, null)`;
    await sql`insert into inference.user_tiers values (${user}, 'unlimited')`;
    const free = await reserve(sql, `user:${user}`, "no-such-task", "authenticated", user);
    assert.equal(free.tier, "unlimited");
    assert.equal(free.units, 1);
    assert.equal(free.requests_remaining, null);
    await assert.rejects(reserve(sql, "user:b", "text-to-image", "no-such-tier"), /does not exist/);
  });
});

Deno.test("reserve: the project ceiling refuses everyone and the system caller, and gives back the user's slot", async () => {
  await withDatabase(async (sql) => {
    await sql`update inference.settings set value = '25' where key = 'project_units_per_day'`;
    assert.equal((await reserve(sql, "user:a")).granted, true);
    assert.equal((await reserve(sql, null, "image-caption")).granted, true); // 15
    assert.equal((await reserve(sql, null, "image-caption")).granted, true); // 20
    const refused = await reserve(sql, "user:b");
    assert.equal(refused.refused, "project_units_per_day");
    assert.equal((await reserve(sql, null, "image-caption")).granted, true); // 25
    assert.equal((await reserve(sql, null, "image-caption")).refused, "project_units_per_day");
    // The refused user kept their slot and units.
    const [b] = await sql`select requests, units from inference.counters where key = 'user:b'`;
    assert.deepEqual({ ...b }, { requests: 0, units: 0 });
    assert.equal(await units(sql, "project"), 25);
    // A service_role call (nothing reserved) still counts towards the ceiling.
    await sql`select public.inference_settle(null, null, 0, true, 'service_role', null,
      'text-to-image', 'm', 200, 1, 1, 1, null)`;
    assert.equal(await units(sql, "project"), 35);
  });
});

Deno.test("windows are fixed and UTC-aligned: yesterday's counters do not count, a late refund misses today", async () => {
  await withDatabase(async (sql) => {
    await sql`insert into inference.counters values
      ('user:old', now() - interval '2 minutes', 20, (now() at time zone 'UTC')::date - 1, 1000)`;
    const r = await reserve(sql, "user:old");
    assert.equal(r.granted, true);
    assert.equal(r.requests_remaining, 19);
    assert.equal(r.units_remaining, 990);
    // A refund for yesterday's reservation leaves today's counter alone.
    await sql`select public.inference_settle('user:old', (now() at time zone 'UTC')::date - 1, 10, false, 'user:old',
      null, 'text-to-image', null, 503, 1, 1, 1, null)`;
    assert.equal(await units(sql, "user:old"), 10);
  });
});

Deno.test("the RPCs and the inference schema are for service_role only; users read only their own usage", async () => {
  await withDatabase(async (sql) => {
    const alice = crypto.randomUUID();
    const bob = crypto.randomUUID();
    await sql`insert into public.inference_usage (user_id, caller, task, status) values
      (${alice}, ${`user:${alice}`}, 'text-to-image', 200), (${bob}, ${`user:${bob}`}, 'text-to-image', 200)`;
    const as = <T>(role: string, sub: string | null, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
      sql.begin(async (tx) => {
        await tx`select set_config('role', ${role}, true),
          set_config('request.jwt.claims', ${JSON.stringify({ role, sub })}, true)`;
        return await fn(tx);
      });
    const seen = await as("authenticated", alice, (tx) => tx`select user_id from public.inference_usage`);
    assert.deepEqual(seen.map((r) => r.user_id), [alice]);
    for (const role of ["anon", "authenticated"]) {
      await assert.rejects(
        as(role, alice, (tx) =>
          tx`insert into public.inference_usage (user_id, caller, task, status)
          values (${alice}, 'x', 't', 200)`),
        /permission denied/,
      );
      await assert.rejects(
        as(role, alice, (tx) => tx`select public.inference_reserve('user:x', null, 'authenticated', 't')`),
        /permission denied/,
      );
      await assert.rejects(as(role, alice, (tx) => tx`select * from inference.tiers`), /permission denied/);
    }
    await assert.rejects(as("anon", null, (tx) => tx`select * from public.inference_usage`), /permission denied/);
    const daily = await sql`select user_id, calls::int, succeeded::int from inference.usage_per_user_per_day
      where user_id = ${alice}`;
    assert.deepEqual(daily.map((r) => ({ ...r })), [{ user_id: alice, calls: 1, succeeded: 1 }]);
  });
});

Deno.test("settle_many settles a batch in one call, nulls included", async () => {
  await withDatabase(async (sql) => {
    const r = await reserve(sql, "user:m");
    const batch = [
      {
        key: "user:m",
        day: r.day,
        reserved: r.units,
        charge: false,
        caller: "user:m",
        user_id: null,
        task: "text-to-image",
        model: null,
        status: 504,
        latency_ms: 9,
        input_bytes: null,
        output_bytes: null,
        cache: null,
      },
      {
        key: null,
        day: null,
        reserved: 0,
        charge: false,
        caller: "service_role",
        user_id: null,
        task: "text-to-image",
        model: "m",
        status: 200,
        latency_ms: 3,
        input_bytes: 5,
        output_bytes: 6,
        cache: "hit",
      },
    ];
    await sql`select public.inference_settle_many(${JSON.stringify(batch)}::text::jsonb)`;
    assert.equal(await units(sql, "user:m"), 0);
    const rows = await sql`select caller, status, units, cache from public.inference_usage order by id`;
    assert.deepEqual(rows.map((x) => [x.caller, x.status, x.units, x.cache]), [
      ["user:m", 504, 0, null],
      ["service_role", 200, 0, "hit"],
    ]);
  });
});

Deno.test("settle batches and reserves running side by side lock in one order: no deadlock", async () => {
  await withDatabase(async (sql) => {
    const keys = Array.from({ length: 12 }, (_, i) => `user:k${String(i).padStart(2, "0")}`);
    const first = await Promise.all(keys.map((key) => reserve(sql, key)));
    // Refund batches that name the callers in opposite orders, beside fresh reserves of the same callers.
    const batch = (order: string[]) =>
      JSON.stringify(order.map((key) => ({
        key,
        day: first[0].day,
        reserved: 10,
        charge: false,
        caller: key,
        user_id: null,
        task: "text-to-image",
        model: null,
        status: 502,
        latency_ms: 1,
        input_bytes: null,
        output_bytes: null,
        cache: null,
      })));
    const work: Promise<unknown>[] = [];
    for (let round = 0; round < 5; round++) {
      work.push(sql`select public.inference_settle_many(${batch(keys)}::text::jsonb)`);
      work.push(sql`select public.inference_settle_many(${batch([...keys].reverse())}::text::jsonb)`);
      for (const key of keys) work.push(reserve(sql, key));
    }
    await Promise.all(work);
    const [usage] = await sql`select count(*)::int as n from public.inference_usage`;
    assert.equal(usage.n, 10 * keys.length);
  });
});
