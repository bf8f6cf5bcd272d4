/**
 * `deno task bench cache`: cache hits through the real `huggingface-inference` handler for a JSON
 * task (summarization) and an image (seeded text-to-image), next to the same handler with the
 * cache off and a bare pass-through proxy, all to the same Hugging Face stand-in at 50 ms latency.
 * Target: a hit's p50 under 10 ms. Quotas are off (the unmetered store), so the rows measure the
 * cache; the meter's own reservation round trip is measured by the quotas scenario.
 *
 * The cache sits on a real PostgreSQL with the migrations, behind the local PostgREST and Storage
 * stand-ins. Run as a script, this file is the server process:
 *   deno run -A cache.ts <port> <upstreamUrl>   (SUPABASE_URL, SERVICE_KEY in the environment)
 * @module
 */
import { createHandler } from "../../supabase/functions/huggingface-inference/handler.ts";
import { freePort } from "../stack/testing.ts";
import { LOCAL_JWT_SECRET, userToken } from "../support/tokens.ts";
import { type LoadResult, runLoad } from "./load.ts";
import { unmeteredStore } from "./unmetered.ts";

const UPSTREAM_LATENCY_MS = 50;
const CONCURRENCIES = (Deno.env.get("BENCH_CACHE_CONCURRENCY") ?? "1,8").split(",").map(Number);
// Pass-through and cache are measured in alternation and the median round kept, as in main.ts.
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 3);
const DURATION_MS = Number(Deno.env.get("BENCH_DURATION_MS") ?? 3000);
const TARGET_P50_MS = 10;
const MODELS = { json: "facebook/bart-large-cnn", image: "black-forest-labs/FLUX.1-schnell" };
/** The two calls measured: their gateway task, their body, and the upstream request a bare proxy makes for them. */
const CALLS = {
  json: {
    task: "summarization",
    body: { inputs: "The tower is 324 metres tall, about the same height as an 81-storey building." },
  },
  image: { task: "text-to-image", body: { prompt: "Llama wearing sunglasses", seed: 42 } },
} as const;
const SERVERS = {
  "pass-through": "/pass",
  "gateway, no cache": "/off/huggingface-inference",
  "gateway, cache hit": "/huggingface-inference",
} as const;

/** Runs the scenario and prints its table. */
export async function cacheScenario(): Promise<void> {
  // The local Supabase runs in its own process, as PostgREST and Storage do, so the load
  // generator here does not share a thread with them.
  const apiPort = freePort();
  const stack = await spawn(["../stack/dev.ts"], { API_PORT: String(apiPort), DB_PORT: String(freePort()) }, {
    port: apiPort,
    readyLine: "Press Ctrl-C",
  });
  const serviceKey = /service_role key: (\S+)/.exec(stack.output)?.[1];
  if (!serviceKey) throw new Error("deno task dev did not print a service_role key");
  const upstreamPort = freePort();
  const upstream = await spawn(
    ["../bench/serve.ts", "fake-hf", String(upstreamPort), String(UPSTREAM_LATENCY_MS)],
    {},
    {
      port: upstreamPort,
    },
  );
  const port = freePort();
  const server = await spawn(["../bench/cache.ts", String(port), upstream.url], {
    SUPABASE_URL: stack.url,
    SERVICE_KEY: serviceKey,
  }, { port });
  const rows: string[][] = [];
  const token = await userToken();
  const send = (prefix: string, kind: keyof typeof CALLS) =>
    fetch(`${server.url}${prefix}/${CALLS[kind].task}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(CALLS[kind].body),
    });
  try {
    // Prime the cache, and make sure the hit rows measure hits.
    for (const kind of ["json", "image"] as const) {
      for (let i = 0; i < 20; i++) {
        const res = await send(SERVERS["gateway, cache hit"], kind);
        await res.arrayBuffer();
        if (res.headers.get("x-cache") === "HIT") break;
        if (i === 19) throw new Error(`${kind}: the gateway never answered X-Cache: HIT`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    for (const concurrency of CONCURRENCIES) {
      for (const kind of ["json", "image"] as const) {
        const runs = new Map<string, LoadResult[]>();
        for (let round = 0; round < ROUNDS; round++) {
          for (const [name, prefix] of Object.entries(SERVERS)) {
            const result = await runLoad(async () => {
              const res = await send(prefix, kind);
              // A hit row answered by anything but a hit is an error, not a fast pass-through.
              if (name === "gateway, cache hit" && res.headers.get("x-cache") !== "HIT") {
                await res.body?.cancel();
                return new Response(null, { status: 500 });
              }
              return res;
            }, { concurrency, durationMs: DURATION_MS, warmupMs: 1000 });
            runs.set(name, [...(runs.get(name) ?? []), result]);
          }
        }
        for (const [name, results] of runs) {
          const r = median(results);
          const verdict = name === "gateway, cache hit" ? (r.p50Ms < TARGET_P50_MS ? "ok" : "MISS") : "";
          rows.push(row(concurrency, kind, name, r, verdict));
        }
      }
    }
  } finally {
    await server.stop();
    await upstream.stop();
    await stack.stop();
  }
  console.log(
    `\nresult cache: median of ${ROUNDS} alternating ${DURATION_MS} ms runs, Hugging Face stand-in at ${UPSTREAM_LATENCY_MS} ms`,
  );
  const header = [
    "concurrency",
    "answer",
    "server",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    `p50 < ${TARGET_P50_MS} ms`,
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  console.log([line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n"));
  console.log(
    "(hits go through the local PostgREST and Storage stand-ins, in their own process, to a real PostgreSQL)",
  );
}

function row(concurrency: number, kind: string, server: string, r: LoadResult, verdict: string): string[] {
  const label = kind === "json" ? "JSON (summarization)" : "image (text-to-image, seed)";
  return [
    String(concurrency),
    label,
    server,
    r.rps.toFixed(0),
    r.p50Ms.toFixed(2),
    r.p99Ms.toFixed(2),
    String(r.errors),
    verdict,
  ];
}

/** The run with the median p50. */
function median(runs: LoadResult[]): LoadResult {
  return [...runs].sort((a, b) => a.p50Ms - b.p50Ms)[Math.floor(runs.length / 2)];
}

/** Starts a Deno script (relative to this file) in its own process and waits for its ready line. */
async function spawn(
  [script, ...args]: string[],
  env: Record<string, string>,
  { port, readyLine = "ready" }: { port: number; readyLine?: string },
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(script, import.meta.url).pathname, ...args],
    env,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let output = "";
  while (!output.includes(readyLine)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${script} exited before it was ready`);
    output += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return {
    url: `http://127.0.0.1:${port}`,
    output,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/**
 * The server under test, one process: a bare proxy (`/pass/<task>`), the gateway with the cache
 * off (`/off/huggingface-inference/<task>`) and with it on (`/huggingface-inference/<task>`).
 */
function serve(port: number, upstreamUrl: string) {
  const env = {
    HUGGING_FACE_ACCESS_TOKEN: "hf_bench",
    HF_BASE_URL: upstreamUrl,
    SUPABASE_URL: Deno.env.get("SUPABASE_URL")!,
    SUPABASE_SERVICE_ROLE_KEY: Deno.env.get("SERVICE_KEY")!,
    SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
  };
  const cached = createHandler(env, { meterStore: unmeteredStore });
  const uncached = createHandler({ ...env, HF_RESULT_CACHE: "off" }, { meterStore: unmeteredStore });
  Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path.startsWith("/off/")) return await uncached(req);
    if (!path.startsWith("/pass/")) return await cached(req);
    // The floor: forward the call as the client library would, stream the answer back.
    const kind = path === "/pass/summarization" ? "json" : "image";
    const body = await req.json();
    const upstreamBody = kind === "json" ? body : { inputs: body.prompt, parameters: { seed: body.seed } };
    const res = await fetch(`${upstreamUrl}/hf-inference/models/${MODELS[kind]}`, {
      method: "POST",
      headers: { authorization: "Bearer hf_bench", "content-type": "application/json" },
      body: JSON.stringify(upstreamBody),
    });
    return new Response(res.body, { status: res.status, headers: res.headers });
  });
  console.log("ready");
}

if (import.meta.main) serve(Number(Deno.args[0]), Deno.args[1]);
