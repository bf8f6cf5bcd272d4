/**
 * The project-wide limits in SQL (migration 20261201000200): max_in_flight in the claim, the
 * recorded pause, the sweeper's budget, pulling the next due job, and notes on a job.
 */
import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { prepareDatabase } from "../stack/database.ts";
import { startPostgres } from "../stack/postgres.ts";
import { freePort } from "../stack/testing.ts";

Deno.test("max_in_flight, the pause, the sweeper's budget and claim_next, in SQL", async (t) => {
  const pg = await startPostgres({ port: freePort() });
  const sql = postgres(pg.url, { onnotice: () => {} });
  try {
    await prepareDatabase(pg.url);
    await sql`update captioning.settings set value = '2' where key = 'max_in_flight'`;
    await sql`update captioning.settings set value = '0' where key = 'redispatch_seconds'`;
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const [{ id }] = await sql`insert into storage.objects (bucket_id, name, version, metadata)
        values ('images', ${`limits/${i}.png`}, 'v1', '{"mimetype": "image/png", "size": 10}') returning id`;
      ids.push(id);
    }
    const claim = async (id: string, take = true) =>
      (await sql`select * from public.caption_job_claim(${id}, ${take})`)[0];
    const queued = async () => (await sql`select count(*)::int as n from net.http_request_queue`)[0].n;

    await t.step("a claim beyond max_in_flight is throttled and stays due for the next sweep", async () => {
      assert.equal((await claim(ids[0])).outcome, "claimed");
      assert.equal((await claim(ids[1])).outcome, "claimed");
      assert.equal((await claim(ids[2], false)).outcome, "due");
      assert.equal((await claim(ids[2])).outcome, "throttled");
      const [job] = await sql`select status, attempts, last_dispatched_at from captioning.jobs where object_id = ${
        ids[2]
      }`;
      assert.deepEqual({ ...job }, { status: "pending", attempts: 0, last_dispatched_at: null });
      const [rate] = await sql`select in_flight, max_in_flight, paused_until from captioning.rate`;
      assert.deepEqual({ ...rate }, { in_flight: 2, max_in_flight: 2, paused_until: null });
    });

    await t.step("the sweeper sends no more jobs than there are free slots", async () => {
      const before = await queued();
      assert.equal((await sql`select captioning.sweep() as n`)[0].n, 0);
      await sql`update captioning.settings set value = '3' where key = 'max_in_flight'`;
      assert.equal((await sql`select captioning.sweep() as n`)[0].n, 1);
      assert.equal(await queued(), before + 1);
      await sql`update captioning.settings set value = '2' where key = 'max_in_flight'`;
    });

    await t.step("a recorded pause stops claims and the sweeper, and moves the job past it", async () => {
      const [{ until }] = await sql`select public.caption_rate_pause(30, 429) as until`;
      // A shorter pause asked for later does not shorten it.
      await sql`select public.caption_rate_pause(1, 503)`;
      const [pause] = await sql`select paused_until, upstream_status from captioning.hf_pause`;
      assert.equal(pause.paused_until.getTime(), until.getTime());
      assert.equal(pause.upstream_status, 429);
      assert.ok((await sql`select public.caption_rate_wait() as s`)[0].s > 29);

      assert.equal((await claim(ids[3], false)).outcome, "paused");
      // Its next attempt now waits for the end of the pause.
      assert.equal((await claim(ids[3])).outcome, "scheduled");
      const [job] = await sql`select status, next_attempt_at from captioning.jobs where object_id = ${ids[3]}`;
      assert.equal(job.status, "pending");
      assert.ok(job.next_attempt_at.getTime() >= until.getTime());
      assert.equal((await sql`select captioning.sweep() as n`)[0].n, 0);
      const [rate] = await sql`select paused_for > interval '29 seconds' as long from captioning.rate`;
      assert.equal(rate.long, true);
    });

    await t.step("after the pause, a finished job's slot is filled by the oldest due job", async () => {
      await sql`update captioning.hf_pause set paused_until = now()`;
      assert.equal((await sql`select public.caption_rate_wait() as s`)[0].s, 0);
      const [first] = await sql`select lease_token from captioning.jobs where object_id = ${ids[0]}`;
      assert.equal(
        (await sql`select public.caption_job_complete(${ids[0]}, ${first.lease_token}, 'a caption', 'm') as r`)[0].r,
        "done",
      );
      const [next] = await sql`select * from public.caption_job_claim_next()`;
      assert.equal(next.object_id, ids[2]);
      assert.equal(next.outcome, "claimed");
      // The last job's attempt was moved to the end of the 30 s pause: it is not due yet.
      assert.equal((await sql`select * from public.caption_job_claim_next()`).length, 0);
    });

    await t.step("a note sets last_error on a live job and leaves its state alone", async () => {
      assert.equal((await sql`select public.caption_job_note(${ids[3]}, 'function not started: x') as ok`)[0].ok, true);
      const [job] = await sql`select status, last_error from captioning.jobs where object_id = ${ids[3]}`;
      assert.deepEqual({ ...job }, { status: "pending", last_error: "function not started: x" });
      assert.equal((await sql`select public.caption_job_note(${ids[0]}, 'late') as ok`)[0].ok, false);
    });
  } finally {
    await sql.end();
    await pg.stop();
  }
});
