/**
 * Quotas end to end on the local Supabase (real PostgreSQL and migrations, supabase-js, the
 * PostgREST stand-in), tried as users would: the anon key, signed-in users, the limits under
 * parallel load, refunds, the project ceiling, the service role, the usage log and its RLS, a
 * database outage, and captioning at the ceiling.
 */
import assert from "node:assert/strict";
import { createClient, FunctionsHttpError } from "npm:@supabase/supabase-js@2.119.0";
import { hfError } from "../support/fake_hf.ts";
import { type Local, withLocal } from "../support/local.ts";
import { signUserToken } from "../stack/keys.ts";
import { makeRandomPng } from "../captioning/helpers.ts";
import { signHs256 } from "../support/tokens.ts";
import { awayFromMinuteEdge } from "./windows.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function fnUrl(local: Local) {
  return `${local.dev.apiUrl}/functions/v1/text-to-image`;
}

async function post(local: Local, token: string, body: unknown = { prompt: "a cat" }) {
  return await fetch(fnUrl(local), {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", apikey: local.dev.stack.anonKey },
    body: JSON.stringify(body),
  });
}

/** A signed-in user with their own tier (so steps do not share limits). */
async function userOnTier(local: Local, rpm: number | null, unitsPerDay: number | null) {
  const id = crypto.randomUUID();
  const tier = `t-${id}`;
  await local.dev.stack.sql`insert into inference.tiers values (${tier}, ${rpm}, ${unitsPerDay})`;
  await local.dev.stack.sql`insert into inference.user_tiers values (${id}, ${tier})`;
  return { id, token: await signUserToken({ sub: id }, local.dev.stack.jwtSecret) };
}

async function usageOf(local: Local, id: string, expected: number) {
  return await local.waitFor(`${expected} usage rows`, async () => {
    const rows = await local.dev.stack.sql`select * from public.inference_usage where user_id = ${id} order by id`;
    return rows.length >= expected ? rows : undefined;
  });
}

async function unitsOf(local: Local, id: string) {
  const [row] = await local.dev.stack.sql`select units from inference.counters where key = ${`user:${id}`}`;
  return row?.units ?? 0;
}

let outage = false;

Deno.test("quotas end to end on the local stack", opts, () =>
  withLocal(async (local) => {
    await local.dev.stack.sql`update inference.tiers set requests_per_minute = 3 where tier = 'authenticated'`;

    // 1. Tried as a new user would: supabase-js with the anon key gets 401.
    const anon = createClient(local.dev.apiUrl, local.dev.stack.anonKey, {
      auth: { persistSession: false, autoRefreshToken: false },
    });
    const { error } = await anon.functions.invoke("text-to-image", { body: { prompt: "a llama" } });
    assert.ok(error instanceof FunctionsHttpError);
    assert.equal(error.context.status, 401);
    assert.deepEqual(await error.context.json(), { error: "Sign in to use this function" });
    assert.equal(local.fake.seen.length, 0);

    // 2. A signed-in user gets images until the limit, then 429 with the headers.
    await awayFromMinuteEdge();
    const alice = crypto.randomUUID();
    const aliceToken = await signUserToken({ sub: alice }, local.dev.stack.jwtSecret);
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await post(local, aliceToken);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "image/png");
      seen.push(res.headers.get("ratelimit")!);
      await res.arrayBuffer();
    }
    assert.match(seen[0], /^"requests_per_minute";r=2;t=\d+, "units_per_day";r=990;t=\d+$/);
    assert.match(seen[2], /^"requests_per_minute";r=0;t=\d+, "units_per_day";r=970;t=\d+$/);
    const refused = await post(local, aliceToken);
    assert.equal(refused.status, 429);
    const retryAfter = Number(refused.headers.get("retry-after"));
    assert.ok(retryAfter >= 1 && retryAfter <= 60);
    assert.equal(
      refused.headers.get("ratelimit-policy"),
      '"requests_per_minute";q=3;w=60, "units_per_day";q=1000;w=86400',
    );
    assert.equal(refused.headers.get("access-control-allow-origin"), "*");
    const body = await refused.json();
    assert.equal(body.limit, "requests_per_minute");
    assert.equal(body.retry_after_seconds, retryAfter);
    // Rows are written in the background, each when its answer ends: compare them as a set, not in order.
    const rows = await usageOf(local, alice, 4);
    const byOutcome = (r: Record<string, unknown>) => `${r.status} ${r.units} ${r.task}`;
    assert.deepEqual(rows.map(byOutcome).sort(), [
      "200 10 text-to-image",
      "200 10 text-to-image",
      "200 10 text-to-image",
      "429 0 text-to-image",
    ]);
    const paid = rows.find((r) => r.status === 200)!;
    assert.equal(paid.model, "black-forest-labs/FLUX.1-schnell");
    assert.ok(paid.output_bytes > 0 && paid.input_bytes > 0 && paid.latency_ms >= 0);
    assert.equal(paid.cache, null);

    // 3. An anonymous sign-in is on the anonymous tier.
    const guest = await signHs256(
      { sub: crypto.randomUUID(), role: "authenticated", aud: "authenticated", is_anonymous: true },
      local.dev.stack.jwtSecret,
    );
    const guestRes = await post(local, guest);
    assert.equal(guestRes.status, 200);
    assert.match(guestRes.headers.get("ratelimit-policy")!, /"requests_per_minute";q=5;w=60, "units_per_day";q=100;/);
    await guestRes.arrayBuffer();
  }));

Deno.test(
  "exactly N: 30 parallel requests with requests_per_minute = 10 give 10 images and 20 refusals",
  opts,
  () =>
    withLocal(async (local) => {
      const user = await userOnTier(local, 10, null);
      await awayFromMinuteEdge();
      const results = await Promise.all(Array.from({ length: 30 }, () => post(local, user.token)));
      const statuses = await Promise.all(results.map(async (r) => (await r.arrayBuffer(), r.status)));
      assert.equal(statuses.filter((s) => s === 200).length, 10);
      assert.equal(statuses.filter((s) => s === 429).length, 20);
      assert.equal(local.fake.seen.length, 10, "a refused call reached Hugging Face");
      const rows = await usageOf(local, user.id, 30);
      assert.equal(rows.filter((r) => r.status === 200 && r.units === 10).length, 10);

      // The daily units limit, exact too: 25 parallel, 50 units a day, text-to-image costs 10.
      const daily = await userOnTier(local, null, 50);
      const dailyResults = await Promise.all(Array.from({ length: 25 }, () => post(local, daily.token)));
      const dailyStatuses = await Promise.all(dailyResults.map(async (r) => (await r.arrayBuffer(), r.status)));
      assert.equal(dailyStatuses.filter((s) => s === 200).length, 5);
      assert.equal(await unitsOf(local, daily.id), 50);
    }),
);

Deno.test(
  "refunds: an upstream 5xx and a timeout are given back, a 400 costs nothing",
  opts,
  () =>
    withLocal(async (local) => {
      const user = await userOnTier(local, null, 1000);
      local.fake.enqueue(hfError(500, "upstream broke"));
      const failed = await post(local, user.token);
      assert.equal(failed.status, 502);
      assert.ok(failed.headers.get("ratelimit"));
      await failed.arrayBuffer();
      local.fake.enqueue("hang");
      const timedOut = await post(local, user.token);
      assert.equal(timedOut.status, 504);
      await timedOut.arrayBuffer();
      const bad = await post(local, user.token, { prompt: "a cat", width: 7 });
      assert.equal(bad.status, 400);
      await bad.arrayBuffer();
      assert.equal(bad.headers.get("ratelimit"), null, "a bad request reached the quota");
      const rows = await usageOf(local, user.id, 2);
      assert.deepEqual(rows.map((r) => [r.status, r.units]).sort(), [[502, 0], [504, 0]]);
      assert.equal(await unitsOf(local, user.id), 0);
      const ok = await post(local, user.token);
      assert.equal(ok.status, 200);
      await ok.arrayBuffer();
      const after = await usageOf(local, user.id, 3);
      assert.deepEqual(after.map((r) => r.status).sort(), [200, 502, 504], "the 400 wrote a usage row");
      assert.equal(await unitsOf(local, user.id), 10);
    }, { env: { HF_MAX_ATTEMPTS: "1", HF_TIMEOUT_MS: "300", HF_DEADLINE_MS: "2000" } }),
);

Deno.test(
  "the project ceiling answers 503 to users but not to the service role; usage RLS holds",
  opts,
  () =>
    withLocal(async (local) => {
      const alice = await userOnTier(local, null, null);
      const bob = await userOnTier(local, null, null);
      const first = await post(local, alice.token);
      assert.equal(first.status, 200);
      await first.arrayBuffer();
      await usageOf(local, alice.id, 1);
      await local.dev.stack.sql`update inference.settings set value = '15' where key = 'project_units_per_day'`;
      const ceiling = await post(local, bob.token);
      assert.equal(ceiling.status, 503);
      assert.ok(Number(ceiling.headers.get("retry-after")) > 0);
      assert.equal((await ceiling.json()).limit, "project_units_per_day");
      // The service role is never limited, and its calls still count and are logged.
      for (let i = 0; i < 2; i++) {
        const res = await post(local, local.dev.stack.serviceRoleKey);
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      await local.waitFor("service usage", async () => {
        const [r] = await local.dev.stack
          .sql`select count(*)::int n from public.inference_usage where caller = 'service_role'`;
        return r.n === 2;
      });
      const [project] = await local.dev.stack.sql`select units from inference.counters where key = 'project'`;
      assert.equal(project.units, 30);

      // Each user reads their own usage through the REST API, and writes none.
      const asAlice = await local.userClient(alice.id);
      const asBob = await local.userClient(bob.id);
      const mine = await asAlice.from("inference_usage").select("user_id, status, units");
      assert.equal(mine.error, null);
      assert.deepEqual(mine.data, [{ user_id: alice.id, status: 200, units: 10 }]);
      const bobs = await asBob.from("inference_usage").select().eq("user_id", alice.id);
      assert.deepEqual(bobs.data, []);
      const forged = await asAlice.from("inference_usage").insert({
        user_id: alice.id,
        caller: "x",
        task: "text-to-image",
        status: 200,
        units: -1000,
      });
      assert.ok(forged.error, "a user wrote a usage row");
      const rpc = await asAlice.rpc("inference_reserve", {
        key: `user:${alice.id}`,
        user_id: alice.id,
        default_tier: "authenticated",
        task: "x",
      });
      assert.ok(rpc.error, "a user called the reserve RPC");
    }),
);

Deno.test("a database outage gives 503, never free service", opts, () =>
  withLocal(async (local) => {
    const user = await userOnTier(local, null, null);
    outage = true;
    try {
      const res = await post(local, user.token);
      assert.equal(res.status, 503);
      assert.ok(res.headers.get("retry-after"));
      assert.match((await res.json()).error, /quotas cannot be checked/);
      assert.equal(local.fake.seen.length, 0);
    } finally {
      outage = false;
    }
    const res = await post(local, user.token);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  }, {
    // PostgREST's answer while it cannot reach PostgreSQL.
    intercept: (req) =>
      outage && new URL(req.url).pathname.startsWith("/rest/v1/")
        ? Response.json({ code: "PGRST001", message: "Database client error. Retrying the connection." }, {
          status: 503,
        })
        : undefined,
  }));

Deno.test(
  "captioning counts against the ceiling with usage rows; at the ceiling a job waits for the reset",
  opts,
  () =>
    withLocal(async (local) => {
      const { admin, dev, waitFor } = local;
      const first = await admin.storage.from("images").upload("a/one.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      await waitFor("first caption", async () => {
        const [r] = await dev.stack.sql`select 1 from public.image_caption where id = ${first.data!.id}`;
        return r;
      });
      const usage = await waitFor("caption usage", async () => {
        const [r] = await dev.stack.sql`select * from public.inference_usage where caller = 'system:captioning'`;
        return r;
      });
      assert.deepEqual([usage.user_id, usage.task, usage.status, usage.units], [null, "image-caption", 200, 5]);
      assert.equal(usage.model, "Qwen/Qwen2.5-VL-7B-Instruct");

      await dev.stack.sql`update inference.settings set value = '5' where key = 'project_units_per_day'`;
      const second = await admin.storage.from("images").upload("a/two.png", await makeRandomPng(), {
        contentType: "image/png",
      });
      const job = await waitFor("deferred job", async () => {
        const [j] = await dev.stack.sql`select status, attempts, next_attempt_at, last_error,
          (date_trunc('day', now() at time zone 'UTC') + interval '1 day') at time zone 'UTC' as reset
        from captioning.jobs where object_id = ${second.data!.id}`;
        return j?.last_error ? j : undefined;
      });
      assert.equal(job.status, "pending");
      assert.equal(job.attempts, 0);
      assert.match(job.last_error, /project_units_per_day/);
      assert.ok(Math.abs(job.next_attempt_at.getTime() - job.reset.getTime()) < 5_000, "not deferred to the reset");
      assert.equal(local.fake.seen.length, 1, "a caption past the ceiling reached Hugging Face");

      // After the reset (simulated: the ceiling raised and the job due now) it is captioned.
      await dev.stack.sql`update inference.settings set value = '100000' where key = 'project_units_per_day'`;
      await dev.stack.sql`update captioning.jobs set next_attempt_at = now() where object_id = ${second.data!.id}`;
      await waitFor("second caption", async () => {
        const [r] = await dev.stack.sql`select 1 from public.image_caption where id = ${second.data!.id}`;
        return r;
      }, 15_000);
    }, { settings: { redispatch_seconds: "0.5" } }),
);
