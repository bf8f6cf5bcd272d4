/**
 * Peak memory of the captioning function in a process of its own, as the platform runs it, while
 * it captions 1, 4 and 8 images of CAPTION_MAX_IMAGE_BYTES (10 MiB) uploaded at once, with the
 * default CAPTION_CONCURRENCY (4), for each way the image reaches the model. Target: under 200 MB
 * peak RSS, leaving headroom under the platform's 256 MB.
 * @module
 */
import { makePng } from "../support/images.ts";
import { waitForJobs, withFleet } from "../support/function_fleet.ts";
import { cpuSeconds, printTable } from "./harness.ts";

const IMAGE_BYTES = 10 * 1024 * 1024;
const LIMIT_MB = 256;
const TARGET_MB = 200;

/** One row of the memory table. */
export interface MemoryRow {
  mode: string;
  images: number;
  peakMb: number;
  /** The function process's CPU time (user + system) per image, in ms. */
  cpuMsPerImage: number;
  seconds: number;
  captioned: number;
}

const MODES: { mode: string; env: Record<string, string> }[] = [
  { mode: "chat, url (signed URL)", env: { CAPTION_MODE: "chat", CAPTION_IMAGE_TRANSPORT: "url" } },
  { mode: "chat, inline (data URL)", env: { CAPTION_MODE: "chat", CAPTION_IMAGE_TRANSPORT: "inline" } },
  { mode: "image-to-text (bytes)", env: { CAPTION_MODE: "image-to-text", CAPTION_IMAGE_TRANSPORT: "inline" } },
];

/** Runs every mode at 1, 4 and 8 images, a fresh function process for each; returns the rows. */
export async function runCaptionMemory(counts = [1, 4, 8]): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = [];
  for (const { mode, env } of MODES) {
    for (const images of counts) {
      rows.push(await measure(mode, env, images));
    }
  }
  return rows;
}

async function measure(mode: string, env: Record<string, string>, images: number): Promise<MemoryRow> {
  return await withFleet({
    instances: 1,
    env: { ...env, CAPTION_MAX_IMAGE_BYTES: String(IMAGE_BYTES), HF_TIMEOUT_MS: "60000" },
    settings: { max_in_flight: "64" },
  }, async ({ stack, admin, instances }) => {
    const files = await Promise.all(Array.from({ length: images }, (_, i) => paddedPng(IMAGE_BYTES, i)));
    const cpuBefore = cpuSeconds(instances[0].pid);
    const started = performance.now();
    const ids = await Promise.all(files.map(async (bytes, i) => {
      const { data, error } = await admin.storage.from("images").upload(`memory/${i}.png`, bytes, {
        contentType: "image/png",
      });
      if (error) throw new Error(`upload ${i}: ${error.message}`);
      return data.id;
    }));
    files.length = 0;
    const { done } = await waitForJobs(stack, ids, 120_000);
    return {
      mode,
      images,
      peakMb: instances[0].peakRss() / 1e6,
      cpuMsPerImage: ((cpuSeconds(instances[0].pid) - cpuBefore) * 1000) / images,
      seconds: (performance.now() - started) / 1000,
      captioned: done,
    };
  });
}

/** A valid PNG of exactly `size` bytes: a small image plus a private ancillary chunk of noise. */
export async function paddedPng(size: number, seed: number): Promise<Uint8Array<ArrayBuffer>> {
  const base = await makePng(64, 64, [seed % 256, (seed * 37) % 256, 200]);
  const iend = base.length - 12;
  const dataLength = size - base.length - 12;
  const out = new Uint8Array(size);
  out.set(base.subarray(0, iend));
  const view = new DataView(out.buffer);
  view.setUint32(iend, dataLength);
  out.set(new TextEncoder().encode("paDd"), iend + 4);
  for (let at = iend + 8; at < iend + 8 + dataLength; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(at + 65536, iend + 8 + dataLength)));
  }
  // Decoders skip an unknown ancillary chunk; its CRC is left zero, which they do not check for it.
  out.set(base.subarray(iend), size - 12);
  return out;
}

/** Prints the memory table. */
export function printCaptionMemory(rows: MemoryRow[]) {
  console.log(
    `\ncaptioning memory: the function in its own process (deno run index.ts), 10 MiB images uploaded at once, CAPTION_CONCURRENCY 4`,
  );
  console.log(
    "(CPU/image: the whole process, webhook, download, encoding and sending included; the platform allows 2 s per request)",
  );
  printTable(
    ["transport", "images", "peak RSS", "limit", `target < ${TARGET_MB} MB`, "CPU/image", "captioned", "time"],
    rows.map((r) => [
      r.mode,
      String(r.images),
      `${r.peakMb.toFixed(0)} MB`,
      `${LIMIT_MB} MB`,
      r.peakMb < TARGET_MB ? "ok" : "MISS",
      `${r.cpuMsPerImage.toFixed(0)} ms`,
      `${r.captioned}/${r.images}`,
      `${r.seconds.toFixed(1)} s`,
    ]),
  );
}
