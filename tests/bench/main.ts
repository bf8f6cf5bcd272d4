/**
 * `deno task bench [text-to-image] [pipeline]`: prints, in one run,
 * - text-to-image throughput and latency through the function, next to a bare pass-through proxy
 *   to the same local Hugging Face stand-in, at upstream latencies of 0 and 50 ms
 *   (targets: ≥ 0.9× the proxy's requests/s, ≤ +2 ms p50);
 * - the captioning pipeline: captions/s for BENCH_IMAGES uploads (default 1000) against the
 *   ceiling K / 0.2 s (K = BENCH_K, default 8), time to the last caption, lost and duplicate
 *   counts, clean and with 30% transient faults (targets: ≥ 0.8× the ceiling clean; 0 lost and
 *   0 duplicates in both).
 * @module
 */
import { type LoadResult, runLoad } from "./load.ts";
import { runPipeline } from "./pipeline.ts";
import { inferenceScenario } from "./inference.ts";
import { printCaptionMemory, runCaptionMemory } from "./caption_memory.ts";
import { userToken } from "../support/tokens.ts";
import { freePort } from "../stack/testing.ts";
import { cpuSeconds, medianBy, printTable, type Spawned, spawnServer } from "./harness.ts";

const CONCURRENCY = 32;
const DURATION_MS = Number(Deno.env.get("BENCH_DURATION_MS") ?? 3000);
const WARMUP_MS = 1000;
// Proxy and function are measured in alternation, and the median round kept, so that a burst of
// other work on the machine does not land on one side only.
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 3);

/** Starts `serve.ts` in its own process and waits until it listens. */
function spawn(mode: string, port: number, arg: string): Promise<Spawned> {
  return spawnServer(new URL("./serve.ts", import.meta.url), port, mode, String(port), arg);
}

async function textToImageScenario() {
  const token = await userToken();
  const prompt = "Llama wearing sunglasses";
  const rows: string[][] = [];
  for (const latency of [0, 50]) {
    const upstream = await spawn("fake-hf", freePort(), String(latency));
    const proxy = await spawn("proxy", freePort(), upstream.url);
    const fn = await spawn("text-to-image", freePort(), upstream.url);
    try {
      // The proxy forwards its body untouched, so it is sent the router's own shape.
      const measure = async (server: { url: string; pid: number }, path: string, body: string) => {
        const cpuBefore = cpuSeconds(server.pid);
        const result = await runLoad(
          () =>
            fetch(server.url + path, {
              method: "POST",
              headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
              body,
            }),
          { concurrency: CONCURRENCY, durationMs: DURATION_MS, warmupMs: WARMUP_MS },
        );
        const cpuUs = ((cpuSeconds(server.pid) - cpuBefore) * 1e6) / result.total;
        return { ...result, cpuUs };
      };
      const bases: Measured[] = [];
      const funcs: Measured[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        bases.push(await measure(proxy, "/", JSON.stringify({ inputs: prompt })));
        funcs.push(await measure(fn, "/functions/v1/text-to-image", JSON.stringify({ prompt })));
      }
      const base = medianBy(bases, (r) => r.rps);
      const func = medianBy(funcs, (r) => r.rps);
      const ratio = func.rps / base.rps;
      const dp50 = func.p50Ms - base.p50Ms;
      const row = (server: string, r: Measured, vsReqs: string, vsP50: string) => [
        `${latency} ms`,
        server,
        fmt(r.rps),
        fmt(r.p50Ms, 2),
        fmt(r.p99Ms, 2),
        String(r.errors),
        fmt(r.cpuUs),
        vsReqs,
        vsP50,
      ];
      rows.push(
        row("pass-through proxy", base, "", ""),
        row(
          "text-to-image",
          func,
          `${ratio.toFixed(2)}× ${ratio >= 0.9 ? "ok" : "MISS"}`,
          `${dp50 >= 0 ? "+" : ""}${dp50.toFixed(2)} ms ${dp50 <= 2 ? "ok" : "MISS"}`,
        ),
      );
    } finally {
      await Promise.all([fn.stop(), proxy.stop(), upstream.stop()]);
    }
  }
  console.log(
    `\ntext-to-image, concurrency ${CONCURRENCY}, median of ${ROUNDS} alternating ${DURATION_MS} ms runs (64×64 PNG upstream)`,
  );
  printTable(
    [
      "upstream",
      "server",
      "req/s",
      "p50 ms",
      "p99 ms",
      "errors",
      "server CPU µs/req",
      "vs proxy req/s",
      "vs proxy p50",
    ],
    rows,
  );
  console.log("(the load generator, the server and the upstream share this machine's cores)");
}

type Measured = LoadResult & { cpuUs: number };

function fmt(n: number, digits = 0) {
  return n.toFixed(digits);
}

async function pipelineScenario() {
  const images = Number(Deno.env.get("BENCH_IMAGES") ?? 1000);
  const k = Number(Deno.env.get("BENCH_K") ?? 8);
  const rows: string[][] = [];
  for (const faultRate of [0, 0.3]) {
    const r = await runPipeline({ images, k, faultRate });
    const ratio = r.captionsPerSecond / r.ceiling;
    rows.push([
      faultRate ? "30% transient faults" : "no faults",
      fmt(r.captionsPerSecond, 1),
      `${fmt(r.ceiling)} (${ratio.toFixed(2)}×${faultRate ? "" : ratio >= 0.8 ? " ok" : " MISS"})`,
      `${fmt(r.lastCaptionSeconds, 1)} s`,
      `${fmt(r.uploadSeconds, 1)} s`,
      `${r.lost}${r.lost === 0 ? " ok" : " MISS"}`,
      `${r.duplicates}${r.duplicates === 0 ? " ok" : " MISS"}`,
      String(r.failed),
      String(r.hfCalls),
    ]);
  }
  console.log(`\ncaptioning pipeline: ${images} uploads, Hugging Face latency 200 ms, K = ${k} concurrent calls`);
  printTable(
    ["run", "captions/s", "ceiling K/0.2s", "last caption", "uploads took", "lost", "duplicates", "failed", "HF calls"],
    rows,
  );
}

/** Total and stolen CPU ticks of the machine, from /proc/stat (zeros where it is not there). */
function cpuTicks(): { total: number; steal: number } {
  try {
    const fields = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 };
  } catch {
    return { total: 0, steal: 0 };
  }
}

const scenarios: Record<string, () => Promise<void>> = {
  "text-to-image": textToImageScenario,
  pipeline: pipelineScenario,
  inference: inferenceScenario,
  cache: () => import("./cache.ts").then((m) => m.cacheScenario()),
  "caption-memory": async () => printCaptionMemory(await runCaptionMemory()),
  quotas: () => import("./quotas.ts").then((m) => m.quotasScenario()),
  "gateway-memory": () =>
    import("./gateway_memory.ts").then(async (m) => m.printGatewayMemory(await m.runGatewayMemory())),
};
const chosen = Deno.args.length ? Deno.args : Object.keys(scenarios);
for (const name of chosen) {
  const before = cpuTicks();
  await scenarios[name]();
  const after = cpuTicks();
  // On a shared virtual machine the host can take CPU away mid-run; say how much it did.
  const stolen = (after.steal - before.steal) / Math.max(1, after.total - before.total);
  console.log(`(CPU stolen by the host during this scenario: ${(stolen * 100).toFixed(1)}%)`);
}
