import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { prepareDatabase } from "./database.ts";
import { startPgNetWorker } from "./pg_net_worker.ts";
import { startPostgres } from "./postgres.ts";
import { freePort, supabaseDirWith, waitFor } from "./testing.ts";

interface Seen {
  path: string;
  headers: Headers;
  body: string;
  at: number;
}

Deno.test("pg_net worker: delivery after commit, nothing on rollback, outcomes recorded like pg_net", async (t) => {
  const pg = await startPostgres({ port: freePort() });
  const dir = await supabaseDirWith({});
  const sql = postgres(pg.url, { onnotice: () => {} });
  const seen: Seen[] = [];
  const target = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const body = await req.text();
    seen.push({
      path: url.pathname + url.search,
      headers: req.headers,
      body,
      at: performance.now(),
    });
    if (url.pathname === "/slow") {
      await new Promise((r) => setTimeout(r, Number(url.searchParams.get("ms"))));
    }
    if (url.pathname === "/fail") return Response.json({ boom: true }, { status: 500 });
    if (url.pathname === "/redirect") {
      return new Response(null, { status: 302, headers: { location: "/landing", "x-first": "302" } });
    }
    if (url.pathname === "/landing") return Response.json({ method: req.method, body }, { status: 201 });
    return Response.json({ ok: true, echo: body }, { headers: { "x-target": "yes" } });
  });
  const base = `http://127.0.0.1:${target.addr.port}`;
  const logs: string[] = [];
  let worker: ReturnType<typeof startPgNetWorker> | null = null;
  const response = (id: string) =>
    waitFor(
      `response ${id}`,
      async () => (await sql`select * from net._http_response where id = ${id}`)[0],
    );
  const post = (path: string, timeout = 2000) =>
    sql`select net.http_post(${base + path}, '{"n":1}', headers => '{"Content-Type":"application/json","X-Custom":"c"}',
                             timeout_milliseconds => ${timeout}) as id`.then((r) => r[0].id as string);
  try {
    await prepareDatabase(pg.url, { supabaseDir: dir });
    // Queued before the worker starts: picked up by polling.
    const early = await post("/early");
    worker = startPgNetWorker(pg.url, { log: (m) => logs.push(m) });

    await t.step(
      "a committed request is sent once, with pg_net's headers, and its 200 recorded",
      async () => {
        const r = await response(early);
        assert.equal(r.status_code, 200);
        assert.equal(r.timed_out, false);
        assert.equal(r.error_msg, null);
        assert.match(r.content_type, /application\/json/);
        assert.equal(r.headers["x-target"], "yes");
        assert.deepEqual(JSON.parse(r.content), { ok: true, echo: '{"n": 1}' });
        const hit = seen.find((s) => s.path === "/early")!;
        assert.equal(hit.headers.get("user-agent"), "pg_net/0.20.4");
        assert.equal(hit.headers.get("content-type"), "application/json");
        assert.equal(hit.headers.get("x-custom"), "c");
        assert.equal(seen.filter((s) => s.path === "/early").length, 1);
      },
    );

    await t.step("a rolled-back request is never sent", async () => {
      await sql.begin(async (tx) => {
        await tx`select net.http_post(${base + "/rolled-back"})`;
        await tx`select net.http_post(${base + "/rolled-back"})`;
        throw new Error("rollback");
      }).catch(() => {});
      const marker = await post("/after-rollback");
      await response(marker);
      assert.equal(seen.filter((s) => s.path === "/rolled-back").length, 0);
    });

    await t.step("delivery waits for COMMIT", async () => {
      const tx = await sql.reserve();
      try {
        await tx`begin`;
        const [{ id }] = await tx`select net.http_post(${base + "/late"}) as id`;
        await new Promise((r) => setTimeout(r, 400));
        assert.equal(seen.filter((s) => s.path === "/late").length, 0, "sent before commit");
        await tx`commit`;
        await response(id);
      } finally {
        tx.release();
      }
    });

    await t.step("a 500 is recorded as is and not retried", async () => {
      const r = await response(await post("/fail"));
      assert.equal(r.status_code, 500);
      assert.deepEqual(JSON.parse(r.content), { boom: true });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(seen.filter((s) => s.path === "/fail").length, 1);
    });

    await t.step(
      "a timeout is recorded with NULL status, though the server got the request",
      async () => {
        const r = await response(await post("/slow?ms=1500", 300));
        assert.equal(r.status_code, null);
        assert.equal(r.timed_out, true);
        assert.match(
          r.error_msg,
          /^Timeout of 300 ms reached\. Total time: [\d.]+ ms \(DNS time: [\d.]+ ms, TCP\/SSL handshake time: [\d.]+ ms, HTTP Request\/Response time: [\d.]+ ms\)$/,
        );
        assert.ok(seen.some((s) => s.path === "/slow?ms=1500"));
      },
    );

    await t.step("a refused port is recorded as Couldn't connect to server", async () => {
      const closed = freePort();
      const [{ id }] = await sql`select net.http_post(${`http://127.0.0.1:${closed}/x`}) as id`;
      const r = await response(id);
      assert.equal(r.status_code, null);
      assert.equal(r.timed_out, false);
      assert.equal(r.error_msg, "Couldn't connect to server");
    });

    await t.step(
      "a batch goes out in parallel, a slow request holds up the next batch; params become the query string",
      async () => {
        const [ids] = await sql`select net.http_post(${base + "/slow"}, params => '{"ms":"600"}') as slow,
                                     net.http_get(${base + "/beside"}, params => '{"q":"a&b"}') as beside`;
        await waitFor("the slow request", () => seen.find((s) => s.path === "/slow?ms=600"));
        const next = await post("/next-batch");
        await response(next);
        await response(ids.beside);
        const slow = seen.find((s) => s.path === "/slow?ms=600")!;
        const beside = seen.find((s) => s.path === "/beside?q=a%26b")!;
        const behind = seen.find((s) => s.path === "/next-batch")!;
        assert.ok(Math.abs(beside.at - slow.at) < 300, `same batch, ${beside.at - slow.at} ms apart`);
        assert.ok(behind.at - slow.at >= 550, `the next batch came ${behind.at - slow.at} ms after the slow one`);
      },
    );

    await t.step(
      "a 302 is followed as a GET without a body; the final answer is recorded with the first headers",
      async () => {
        const r = await response(await post("/redirect"));
        assert.equal(r.status_code, 201);
        assert.deepEqual(JSON.parse(r.content), { method: "GET", body: "" });
        assert.equal(r.headers["x-first"], "302");
        assert.equal(seen.filter((s) => s.path === "/landing").length, 1);
      },
    );

    await t.step("it survives a PostgreSQL crash-restart and keeps delivering", async () => {
      await pg.restart("immediate");
      const r = await response(await post("/after-restart"));
      assert.equal(r.status_code, 200);
    });

    await t.step("stop() is clean and idempotent", async () => {
      await worker!.stop();
      await worker!.stop();
      const [{ id }] = await sql`select net.http_post(${base + "/after-stop"}) as id`;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(seen.filter((s) => s.path === "/after-stop").length, 0);
      assert.equal(
        (await sql`select count(*)::int n from net.http_request_queue where id = ${id}`)[0].n,
        1,
      );
    });
  } finally {
    await worker?.stop();
    await sql.end();
    await target.shutdown();
    await pg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
