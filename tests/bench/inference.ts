/**
 * The `inference` scenario of `deno task bench`: `huggingface-inference` next to a bare pass-through
 * proxy to the same Hugging Face stand-in at 50 ms upstream latency,
 * - summarization (a JSON task): requests/s and p50/p99 (target: ≤ +2 ms p50 over the proxy);
 * - streaming chat (`text-generation`, `stream: true`, 5 ms between chunks): time to the first
 *   chunk and to the last, against the upstream itself and the proxy (target: TTFB ≤ +2 ms over the upstream's).
 * @module
 */
import { cpuSeconds, medianBy, printTable, spawnServer } from "./harness.ts";
import { runLoad } from "./load.ts";
import { userToken } from "../support/tokens.ts";
import { freePort } from "../stack/testing.ts";

const SERVE = new URL("./serve_inference.ts", import.meta.url);
const CONCURRENCY = 32;
const STREAM_CONCURRENCIES = [4, 16];
const LATENCY_MS = 50;
const DURATION_MS = Number(Deno.env.get("BENCH_DURATION_MS") ?? 3000);
const WARMUP_MS = 1000;
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 3);
const SUMMARY_MODEL = "facebook/bart-large-cnn";
const CHAT_MODEL = "meta-llama/Llama-3.1-8B-Instruct";

async function start(mode: string, arg: string, arg2 = "") {
  const port = freePort();
  return await spawnServer(SERVE, port, mode, String(port), arg, arg2);
}

/** Time to first body chunk and to the end of a streamed answer, closed loop, p50 of each. */
async function runStream(pid: number, concurrency: number, send: () => Promise<Response>) {
  const cpuBefore = cpuSeconds(pid);
  let all = 0;
  const ttfb: number[] = [];
  const total: number[] = [];
  let errors = 0;
  const measureFrom = performance.now() + WARMUP_MS;
  const end = measureFrom + DURATION_MS;
  const worker = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      let first = NaN;
      let ok = false;
      try {
        const res = await send();
        const reader = res.body!.getReader();
        for (let r = await reader.read(); !r.done; r = await reader.read()) {
          if (Number.isNaN(first)) first = performance.now();
        }
        ok = res.ok;
      } catch {
        ok = false;
      }
      const t1 = performance.now();
      all++;
      if (t0 >= measureFrom && t1 <= end) {
        if (ok) {
          ttfb.push(first - t0);
          total.push(t1 - t0);
        } else errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const cpuUs = ((cpuSeconds(pid) - cpuBefore) * 1e6) / all;
  return { ttfbMs: p50(ttfb), totalMs: p50(total), streams: ttfb.length, errors, cpuUs };
}

/** Runs the scenario and prints its two tables. */
export async function inferenceScenario() {
  const token = await userToken();
  const upstream = await start("fake-hf", String(LATENCY_MS), "5");
  const proxy = await start("proxy", upstream.url);
  const fn = await start("inference", upstream.url);
  const post = (url: string, body: unknown) => () =>
    fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  try {
    const text = "Supabase is an open source Firebase alternative. It gives you a Postgres database, auth and storage.";
    const summaries = { proxy: [] as Measured[], fn: [] as Measured[] };
    for (let round = 0; round < ROUNDS; round++) {
      summaries.proxy.push(
        await measure(proxy.pid, post(`${proxy.url}/hf-inference/models/${SUMMARY_MODEL}`, { inputs: text })),
      );
      summaries.fn.push(
        await measure(fn.pid, post(`${fn.url}/functions/v1/huggingface-inference/summarization`, { inputs: text })),
      );
    }
    const base = medianBy(summaries.proxy, (r) => r.rps);
    const func = medianBy(summaries.fn, (r) => r.rps);
    const dp50 = func.p50Ms - base.p50Ms;
    console.log(
      `\nhuggingface-inference summarization, upstream ${LATENCY_MS} ms, concurrency ${CONCURRENCY}, median of ${ROUNDS} alternating ${DURATION_MS} ms runs`,
    );
    printTable(["server", "req/s", "p50 ms", "p99 ms", "errors", "server CPU µs/req", "vs proxy p50"], [
      ["pass-through proxy", ...cells(base), ""],
      ["huggingface-inference", ...cells(func), `${sign(dp50)} ms ${dp50 <= 2 ? "ok" : "MISS"}`],
    ]);

    const chatPath = `/hf-inference/models/${CHAT_MODEL}/v1/chat/completions`;
    const messages = [{ role: "user", content: "Tell me about Postgres in a few words" }];
    const rows: string[][] = [];
    for (const concurrency of STREAM_CONCURRENCIES) {
      const streams = { upstream: [] as Streamed[], proxy: [] as Streamed[], fn: [] as Streamed[] };
      for (let round = 0; round < ROUNDS; round++) {
        const chat = { model: CHAT_MODEL, messages, stream: true };
        streams.upstream.push(await runStream(upstream.pid, concurrency, post(upstream.url + chatPath, chat)));
        streams.proxy.push(await runStream(proxy.pid, concurrency, post(proxy.url + chatPath, chat)));
        streams.fn.push(
          await runStream(
            fn.pid,
            concurrency,
            post(`${fn.url}/functions/v1/huggingface-inference/text-generation`, { messages, stream: true }),
          ),
        );
      }
      const [up, px, fx] = [streams.upstream, streams.proxy, streams.fn].map((runs) => medianBy(runs, (r) => r.ttfbMs));
      const row = (server: string, r: Streamed, vs: string) => [
        String(concurrency),
        server,
        String(r.streams),
        r.ttfbMs.toFixed(2),
        r.totalMs.toFixed(2),
        String(r.errors),
        r.cpuUs.toFixed(0),
        vs,
      ];
      const dTtfb = fx.ttfbMs - up.ttfbMs;
      rows.push(
        row("upstream (stand-in itself)", up, ""),
        row("pass-through proxy", px, `${sign(px.ttfbMs - up.ttfbMs)} ms`),
        row("huggingface-inference", fx, `${sign(dTtfb)} ms ${dTtfb <= 2 ? "ok" : "MISS"}`),
      );
    }
    console.log(
      `\nhuggingface-inference streaming chat (SSE), upstream ${LATENCY_MS} ms to the first chunk then 5 ms per chunk, median of ${ROUNDS} runs`,
    );
    printTable(
      [
        "concurrency",
        "server",
        "streams",
        "TTFB p50 ms",
        "last byte p50 ms",
        "errors",
        "CPU µs/stream",
        "TTFB vs upstream",
      ],
      rows,
    );
    console.log("(the load generator, the servers and the upstream share this machine's cores)");
  } finally {
    await Promise.all([fn.stop(), proxy.stop(), upstream.stop()]);
  }
}

type Measured = Awaited<ReturnType<typeof measure>>;
type Streamed = Awaited<ReturnType<typeof runStream>>;

async function measure(pid: number, send: () => Promise<Response>) {
  const before = cpuSeconds(pid);
  const result = await runLoad(send, { concurrency: CONCURRENCY, durationMs: DURATION_MS, warmupMs: WARMUP_MS });
  return { ...result, cpuUs: ((cpuSeconds(pid) - before) * 1e6) / result.total };
}

function cells(r: Measured): string[] {
  return [r.rps.toFixed(0), r.p50Ms.toFixed(2), r.p99Ms.toFixed(2), String(r.errors), r.cpuUs.toFixed(0)];
}

function sign(n: number): string {
  return `${n >= 0 ? "+" : ""}${n.toFixed(2)}`;
}
