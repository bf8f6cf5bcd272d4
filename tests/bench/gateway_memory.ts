/**
 * Peak memory of `huggingface-inference` in a process of its own, as the platform runs it, while it
 * holds 1, 4 and 8 maximum-size media bodies at once (a 10 MiB WAV for automatic-speech-recognition,
 * a 10 MiB PNG for image-classification and image-segmentation), with the default limits and an
 * upstream that answers after 300 ms. Target: under 200 MB peak RSS, under the platform's 256 MB.
 * @module
 */
import { makeWav } from "../support/audio.ts";
import { startFakeHf } from "../support/fake_hf.ts";
import { startServerProcess } from "../support/function_process.ts";
import { LOCAL_JWT_SECRET, userToken } from "../support/tokens.ts";
import { paddedPng } from "./caption_memory.ts";
import { cpuSeconds, printTable } from "./harness.ts";

const LIMIT_MB = 256;
const TARGET_MB = 200;
const IMAGE_BYTES = 10 * 1024 * 1024;
const AUDIO_BYTES = 10 * 1024 * 1024;
const SERVER = new URL("./gateway_memory_serve.ts", import.meta.url);

/** One row of the table. */
export interface GatewayMemoryRow {
  task: string;
  bodies: number;
  peakMb: number;
  /** Peak RSS with garbage collected after each answer (`--expose-gc`): what the requests really hold. */
  collectedPeakMb: number;
  /** The function process's CPU time (user + system) per request, in ms. */
  cpuMsPerRequest: number;
  /** Answers by status, e.g. `{200: 3, 503: 1}`. */
  statuses: Record<number, number>;
}

const TASKS: { task: string; body: () => Promise<Uint8Array<ArrayBuffer>>; type: string }[] = [
  {
    task: "automatic-speech-recognition",
    type: "audio/wav",
    body: () => Promise.resolve(makeWav((AUDIO_BYTES - 44) / 2 / 16_000)),
  },
  { task: "image-classification", type: "image/png", body: () => paddedPng(IMAGE_BYTES, 1) },
  { task: "image-segmentation", type: "image/png", body: () => paddedPng(IMAGE_BYTES, 2) },
];

/** Runs each task at 1, 4 and 8 concurrent bodies, a fresh function process for each; `env` is added to the function's. */
export async function runGatewayMemory(counts = [1, 4, 8], env: Record<string, string> = {}) {
  const rows: GatewayMemoryRow[] = [];
  const token = await userToken();
  const hf = startFakeHf({ latencyMs: 300 });
  try {
    for (const { task, body, type } of TASKS) {
      const bytes = await body();
      for (const bodies of counts) {
        const send = async (v8Flags: string[]) => {
          hf.seen.length = 0; // the fake keeps what it was sent; its memory is not the function's
          const fn = await startServerProcess(SERVER, {
            HUGGING_FACE_ACCESS_TOKEN: "hf_bench",
            HF_BASE_URL: hf.url,
            SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
            HF_RESULT_CACHE: "off",
            HF_TIMEOUT_MS: "60000",
            ...env,
          }, v8Flags);
          try {
            const cpuBefore = cpuSeconds(fn.pid);
            const statuses: Record<number, number> = {};
            await Promise.all(Array.from({ length: bodies }, async () => {
              const res = await fetch(`${fn.url}/huggingface-inference/${task}`, {
                method: "POST",
                headers: { authorization: `Bearer ${token}`, "content-type": type },
                body: bytes,
              });
              await res.body?.cancel();
              statuses[res.status] = (statuses[res.status] ?? 0) + 1;
            }));
            return { peakMb: fn.peakRss() / 1e6, cpuMs: ((cpuSeconds(fn.pid) - cpuBefore) * 1000) / bodies, statuses };
          } finally {
            await fn.stop();
          }
        };
        const deployed = await send([]);
        const collected = await send(["--expose-gc"]);
        rows.push({
          task,
          bodies,
          peakMb: deployed.peakMb,
          collectedPeakMb: collected.peakMb,
          cpuMsPerRequest: deployed.cpuMs,
          statuses: deployed.statuses,
        });
      }
    }
  } finally {
    await hf.stop();
  }
  return rows;
}

/** Prints the table. */
export function printGatewayMemory(rows: GatewayMemoryRow[]) {
  console.log(
    "\nhuggingface-inference memory: the function in its own process, maximum-size bodies sent at once (10 MiB WAV, 10 MiB PNG)",
  );
  console.log(
    "(peak RSS: as deployed; GC'd: the same run with garbage collected after each answer, i.e. what requests hold;",
  );
  console.log(" CPU/request: the whole process over the run; the platform allows 2 s per request)");
  printTable(
    ["task", "bodies", "peak RSS", "GC'd", "limit", `target < ${TARGET_MB} MB`, "CPU/request", "answers"],
    rows.map((r) => [
      r.task,
      String(r.bodies),
      `${r.peakMb.toFixed(0)} MB`,
      `${r.collectedPeakMb.toFixed(0)} MB`,
      `${LIMIT_MB} MB`,
      r.peakMb < TARGET_MB ? "ok" : "MISS",
      `${r.cpuMsPerRequest.toFixed(0)} ms`,
      Object.entries(r.statuses).map(([status, n]) => `${n}×${status}`).join(" "),
    ]),
  );
}
