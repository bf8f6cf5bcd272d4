/**
 * `deno task bench cache`: cache hits for a JSON answer (image-to-text) and an image answer
 * (seeded text-to-image) through a small handler built on `withCache`, next to a pass-through
 * proxy to the same Hugging Face stand-in at 50 ms latency. Target: a hit's p50 under 10 ms.
 *
 * The cache sits on a real PostgreSQL with the migrations, behind the local PostgREST and Storage
 * stand-ins. Run as a script, this file is the server process:
 *   deno run -A cache.ts <port> <upstreamUrl>   (SUPABASE_URL, SERVICE_KEY in the environment)
 * @module
 */
import { createClient } from "npm:@supabase/supabase-js@2.119.0";
import { cacheKey } from "../../supabase/functions/_shared/cache_key.ts";
import { createSupabaseCacheStore } from "../../supabase/functions/_shared/cache_store.ts";
import { createResultCache, withCache } from "../../supabase/functions/_shared/result_cache.ts";
import { freePort } from "../stack/testing.ts";
import { makePng } from "../support/images.ts";
import { type LoadResult, runLoad } from "./load.ts";

const UPSTREAM_LATENCY_MS = 50;
const CONCURRENCIES = (Deno.env.get("BENCH_CACHE_CONCURRENCY") ?? "1,8").split(",").map(Number);
// Pass-through and cache are measured in alternation and the median round kept, as in main.ts.
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 3);
const DURATION_MS = Number(Deno.env.get("BENCH_DURATION_MS") ?? 3000);
const TARGET_P50_MS = 10;
const MODELS = { json: "Salesforce/blip-image-captioning-large", image: "black-forest-labs/FLUX.1-schnell" };

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
  try {
    for (const concurrency of CONCURRENCIES) {
      for (const kind of ["json", "image"] as const) {
        const measure = (path: string) =>
          runLoad(() => fetch(`${server.url}${path}`, { method: "POST" }), {
            concurrency,
            durationMs: DURATION_MS,
            warmupMs: 1000,
          });
        const passes: LoadResult[] = [];
        const hits: LoadResult[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          passes.push(await measure(`/pass/${kind}`));
          hits.push(await measure(`/cached/${kind}`));
        }
        const [pass, hit] = [median(passes), median(hits)];
        rows.push(row(concurrency, kind, "pass-through", pass, ""));
        rows.push(row(concurrency, kind, "cache hit", hit, hit.p50Ms < TARGET_P50_MS ? "ok" : "MISS"));
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
  const label = kind === "json" ? "JSON (image-to-text)" : "image (text-to-image, seed)";
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

/** The server under test: pass-through and cached routes to the same upstream. */
async function serve(port: number, upstreamUrl: string) {
  const db = createClient(Deno.env.get("SUPABASE_URL")!, Deno.env.get("SERVICE_KEY")!, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  const cache = createResultCache(createSupabaseCacheStore(db));
  const image = await makePng(16, 16, [10, 120, 200]);
  const prompt = { inputs: "Llama wearing sunglasses", parameters: { seed: 42 } };
  const headers = { authorization: "Bearer hf_bench" };
  const calls = {
    json: () =>
      fetch(`${upstreamUrl}/hf-inference/models/${MODELS.json}`, {
        method: "POST",
        headers: { ...headers, "content-type": "image/png" },
        body: image,
      }),
    image: () =>
      fetch(`${upstreamUrl}/hf-inference/models/${MODELS.image}`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify(prompt),
      }),
  };
  const keys = {
    json: () => cacheKey({ task: "image-to-text", model: MODELS.json, input: { bytes: image } }),
    image: () =>
      cacheKey({
        task: "text-to-image",
        model: MODELS.image,
        parameters: prompt.parameters,
        input: { json: prompt.inputs },
      }),
  };
  Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (req) => {
    const [, mode, kind] = new URL(req.url).pathname.split("/") as [string, string, "json" | "image"];
    await req.body?.cancel();
    if (!(kind in calls)) return Response.json({ error: "unknown route" }, { status: 404 });
    const produce = async () => {
      const res = await calls[kind]();
      return new Response(res.body, { status: res.status, headers: res.headers });
    };
    if (mode === "pass") return await produce();
    const task = kind === "json" ? "image-to-text" : "text-to-image";
    return await withCache(cache, { key: await keys[kind](), task, model: MODELS[kind] }, produce);
  });
  console.log("ready");
}

if (import.meta.main) await serve(Number(Deno.args[0]), Deno.args[1]);
