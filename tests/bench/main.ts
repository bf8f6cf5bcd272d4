/**
 * `deno task bench`: prints text-to-image throughput and latency through the function, next to a
 * bare pass-through proxy to the same local Hugging Face stand-in, at upstream latencies of 0 and
 * 50 ms. Targets: ≥ 0.9× the proxy's requests/s and ≤ +2 ms p50.
 * @module
 */
import { type LoadResult, runLoad } from "./load.ts";
import { userToken } from "../support/tokens.ts";

const CONCURRENCY = 32;
const DURATION_MS = Number(Deno.env.get("BENCH_DURATION_MS") ?? 5000);
const WARMUP_MS = 1000;

/** Starts `serve.ts` in its own process and waits until it listens. */
async function spawn(mode: string, port: number, arg: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./serve.ts", import.meta.url).pathname, mode, String(port), arg],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${mode} exited before it was ready`);
    seen += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
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
      const measure = (url: string, body: string) =>
        runLoad(
          () =>
            fetch(url, {
              method: "POST",
              headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
              body,
            }),
          { concurrency: CONCURRENCY, durationMs: DURATION_MS, warmupMs: WARMUP_MS },
        );
      const base: LoadResult = await measure(proxy.url, JSON.stringify({ inputs: prompt }));
      const func: LoadResult = await measure(`${fn.url}/functions/v1/text-to-image`, JSON.stringify({ prompt }));
      const ratio = func.rps / base.rps;
      const dp50 = func.p50Ms - base.p50Ms;
      rows.push(
        [`${latency} ms`, "pass-through proxy", fmt(base.rps), fmt(base.p50Ms, 2), fmt(base.p99Ms, 2), String(base.errors), "", ""],
        [
          `${latency} ms`,
          "text-to-image",
          fmt(func.rps),
          fmt(func.p50Ms, 2),
          fmt(func.p99Ms, 2),
          String(func.errors),
          `${ratio.toFixed(2)}× ${ratio >= 0.9 ? "ok" : "MISS"}`,
          `${dp50 >= 0 ? "+" : ""}${dp50.toFixed(2)} ms ${dp50 <= 2 ? "ok" : "MISS"}`,
        ],
      );
    } finally {
      await Promise.all([fn.stop(), proxy.stop(), upstream.stop()]);
    }
  }
  console.log(`\ntext-to-image, concurrency ${CONCURRENCY}, ${DURATION_MS} ms per run (64×64 PNG upstream)`);
  table(["upstream", "server", "req/s", "p50 ms", "p99 ms", "errors", "vs proxy req/s", "vs proxy p50"], rows);
}

function fmt(n: number, digits = 0) {
  return n.toFixed(digits);
}

function table(header: string[], rows: string[][]) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of rows) console.log(line(row));
}

const scenarios: Record<string, () => Promise<void>> = { "text-to-image": textToImageScenario };
const chosen = Deno.args.length ? Deno.args : Object.keys(scenarios);
for (const name of chosen) await scenarios[name]();
