/**
 * `deno task bench quotas`: text-to-image with quotas on (a reserve round trip through supabase-js
 * and the PostgREST stand-in to PostgreSQL before each call, the settle after it) next to the same
 * function with quotas off, at 50 ms upstream latency and concurrency 32, in one run.
 * Target: at most +2 ms p50.
 * @module
 */
import { type LoadResult, runLoad } from "./load.ts";
import { createClient } from "npm:@supabase/supabase-js@2.119.0";
import { createRpcMeterStore, type MeterStore } from "../../supabase/functions/_shared/metering/meter.ts";
import { createPostgresMeterStore } from "../../supabase/functions/_shared/metering/store_postgres.ts";
import { signKey, signUserToken } from "../stack/keys.ts";
import { freePort } from "../stack/testing.ts";
import { cpuSeconds, medianBy, type Spawned, spawnServer } from "./harness.ts";

const CONCURRENCY = 32;
const LATENCY_MS = 50;
const DURATION_MS = Number(Deno.env.get("BENCH_DURATION_MS") ?? 3000);
const WARMUP_MS = 1000;
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 3);
const ROUND_TRIPS = 500;

/** The users the load is spread over, one per concurrent client (each on an unlimited tier). */
export const BENCH_USERS: string[] = Array.from(
  { length: CONCURRENCY },
  (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
);

/** Starts `script` (beside this file) with `args`, whose second is the port it listens on. */
function spawn(script: string, args: string[]): Promise<Spawned> {
  return spawnServer(new URL(script, import.meta.url), Number(args[1]), ...args);
}

/** Runs the scenario and prints its table. */
export async function quotasScenario(): Promise<void> {
  const tokens = await Promise.all(BENCH_USERS.map((sub) => signUserToken({ sub })));
  const upstream = await spawn("./serve.ts", ["fake-hf", String(freePort()), String(LATENCY_MS)]);
  const stack = await spawn("./quotas_serve.ts", ["stack", String(freePort())]);
  const off = await spawn("./quotas_serve.ts", ["text-to-image", String(freePort()), upstream.url, stack.url, "off"]);
  const on = await spawn("./quotas_serve.ts", ["text-to-image", String(freePort()), upstream.url, stack.url, "on"]);
  const dbUrl = /db (\S+)/.exec(stack.output)![1];
  const direct = await spawn("./quotas_serve.ts", [
    "text-to-image",
    String(freePort()),
    upstream.url,
    stack.url,
    "direct",
    dbUrl,
  ]);
  try {
    const measure = async (server: { url: string; pid: number }): Promise<Measured> => {
      let next = 0;
      const cpuBefore = cpuSeconds(server.pid);
      const result = await runLoad(
        () =>
          fetch(`${server.url}/functions/v1/text-to-image`, {
            method: "POST",
            headers: { authorization: `Bearer ${tokens[next++ % tokens.length]}`, "content-type": "application/json" },
            body: '{"prompt":"Llama wearing sunglasses"}',
          }),
        { concurrency: CONCURRENCY, durationMs: DURATION_MS, warmupMs: WARMUP_MS },
      );
      return { ...result, cpuUs: ((cpuSeconds(server.pid) - cpuBefore) * 1e6) / result.total };
    };
    const offs: Measured[] = [];
    const ons: Measured[] = [];
    const directs: Measured[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      offs.push(await measure(off));
      directs.push(await measure(direct));
      ons.push(await measure(on));
    }
    const a = medianBy(offs, (r) => r.rps);
    const vsOff = (r: Measured) => {
      const dp50 = r.p50Ms - a.p50Ms;
      return `${dp50 >= 0 ? "+" : ""}${dp50.toFixed(2)} ms ${dp50 <= 2 ? "ok" : "MISS"}`;
    };
    console.log(
      `\ntext-to-image quotas, ${LATENCY_MS} ms upstream, concurrency ${CONCURRENCY} over ${CONCURRENCY} users, ` +
        `median of ${ROUNDS} alternating ${DURATION_MS} ms runs`,
    );
    const rows = [
      ["quotas off", a, ""],
      ["quotas on, INFERENCE_DB_URL (direct)", medianBy(directs, (r) => r.rps), vsOff(medianBy(directs, (r) => r.rps))],
      [
        "quotas on, supabase-js RPC (stand-in PostgREST)",
        medianBy(ons, (r) => r.rps),
        vsOff(medianBy(ons, (r) => r.rps)),
      ],
    ] as const;
    const header = [
      "server",
      "req/s",
      "p50 ms",
      "p99 ms",
      "errors",
      "function CPU µs/req",
      "vs off p50 (target ≤ +2 ms)",
    ];
    const cells = rows.map(([name, r, vs]) => [
      name,
      r.rps.toFixed(0),
      r.p50Ms.toFixed(2),
      r.p99Ms.toFixed(2),
      String(r.errors),
      r.cpuUs.toFixed(0),
      vs,
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
    const line = (c: string[]) => c.map((x, i) => x.padEnd(widths[i])).join("  ");
    console.log(line(header));
    console.log(widths.map((w) => "-".repeat(w)).join("  "));
    for (const c of cells) console.log(line(c));
    await roundTrips(stack.url, dbUrl);
  } finally {
    await Promise.all([on.stop(), off.stop(), direct.stop()]);
    await Promise.all([stack.stop(), upstream.stop()]);
  }
}

type Measured = LoadResult & { cpuUs: number };

/** The quota check alone, one at a time: the time each store adds to a request's critical path. */
async function roundTrips(apiUrl: string, dbUrl: string) {
  const stores: [string, MeterStore][] = [
    ["direct (INFERENCE_DB_URL)", createPostgresMeterStore(dbUrl)],
    [
      "supabase-js RPC (stand-in PostgREST)",
      createRpcMeterStore(createClient(apiUrl, await signKey("service_role"), { auth: { persistSession: false } })),
    ],
  ];
  console.log(`\nquota check round trip alone, ${ROUND_TRIPS} sequential reserves (after ${ROUND_TRIPS / 10} warm-up)`);
  for (const [name, store] of stores) {
    const times: number[] = [];
    for (let i = 0; i < ROUND_TRIPS * 1.1; i++) {
      const user = BENCH_USERS[i % BENCH_USERS.length];
      const t0 = performance.now();
      await store.reserve({ key: `user:${user}`, userId: user, tier: "authenticated", task: "text-to-image" });
      if (i >= ROUND_TRIPS / 10) times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const pct = (p: number) => times[Math.floor(p * times.length)].toFixed(2);
    console.log(`${name.padEnd(38)}  p50 ${pct(0.5)} ms  p99 ${pct(0.99)} ms`);
  }
}
