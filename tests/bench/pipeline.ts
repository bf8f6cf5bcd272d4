/**
 * The captioning pipeline under load: upload N images through the Storage stand-in and time
 * until the last caption lands, with the fake Hugging Face answering in 200 ms and the function
 * captioning K images at once, so the ceiling is K / 0.2 s. Run once clean and once with 30%
 * transient faults.
 * @module
 */
import { createClient } from "npm:@supabase/supabase-js@2.119.0";
import { startDev } from "../stack/dev.ts";
import { describe, startFakeHf } from "../support/fake_hf.ts";
import { makePng } from "../support/images.ts";

/** One run's figures. */
export interface PipelineResult {
  faultRate: number;
  images: number;
  uploadSeconds: number;
  lastCaptionSeconds: number;
  captionsPerSecond: number;
  ceiling: number;
  lost: number;
  failed: number;
  duplicates: number;
  hfCalls: number;
}

const HF_LATENCY_MS = 200;

/** Runs the pipeline once with `images` uploads and concurrency `k`. */
export async function runPipeline(
  { images, k, faultRate }: { images: number; k: number; faultRate: number },
): Promise<PipelineResult> {
  const fake = startFakeHf({ latencyMs: HF_LATENCY_MS, faultRate, seed: 7 });
  const dev = await startDev({
    apiPort: 0,
    dbPort: 0,
    sweepIntervalMs: 500,
    env: {
      HUGGING_FACE_ACCESS_TOKEN: "hf_bench",
      HF_BASE_URL: fake.url,
      // K bounds the Hugging Face calls; more jobs in flight keep downloads and writes off the critical path.
      HF_MAX_CONCURRENCY: String(k),
      CAPTION_CONCURRENCY: String(4 * k),
      HF_TIMEOUT_MS: "2000",
      HF_DEADLINE_MS: "5000",
    },
  });
  try {
    const { sql } = dev.stack;
    await sql`update captioning.settings set value = v from (values
      ('retry_base_seconds', '0.5'), ('retry_max_seconds', '5'), ('redispatch_seconds', '10'),
      ('lease_seconds', '120'), ('max_attempts', '10'), ('max_in_flight', ${String(4 * k)})) as s(k, v)
      where key = s.k`;
    const admin = createClient(dev.apiUrl, dev.stack.serviceRoleKey, { auth: { persistSession: false } });

    // Distinct images, made before the clock starts.
    const pngs = await Promise.all(
      Array.from({ length: images }, (_, i) => makePng(16, 16, [i % 256, (i >> 8) % 256, 99])),
    );
    const expected = new Map<string, string>();
    const started = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < images) {
        const i = next++;
        const { data, error } = await admin.storage.from("images").upload(`bench/${i}.png`, pngs[i], {
          contentType: "image/png",
        });
        if (error) throw new Error(`upload ${i}: ${error.message}`);
        expected.set(data.id, (await describe(pngs[i]))!);
      }
    }));
    const uploadSeconds = (performance.now() - started) / 1000;

    let lastCaptionSeconds = NaN;
    const deadline = Date.now() + 600_000;
    while (Date.now() < deadline) {
      const [row] = await sql`select
          count(*) filter (where status in ('pending', 'processing'))::int as open,
          count(*) filter (where status = 'done')::int as done
        from captioning.jobs`;
      if (row.done === images && Number.isNaN(lastCaptionSeconds)) {
        lastCaptionSeconds = (performance.now() - started) / 1000;
      }
      if (row.open === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const captions = await sql`select id, caption from public.image_caption`;
    const [{ failed }] = await sql`select count(*)::int as failed from captioning.jobs where status = 'failed'`;
    const right = captions.filter((c) => expected.get(c.id) === c.caption).length;
    const duplicates = [...fake.captionsAnswered.values()].reduce((n, count) => n + Math.max(0, count - 1), 0);
    return {
      faultRate,
      images,
      uploadSeconds,
      lastCaptionSeconds,
      captionsPerSecond: right / lastCaptionSeconds,
      ceiling: k / (HF_LATENCY_MS / 1000),
      lost: images - right - failed,
      failed,
      duplicates,
      hfCalls: fake.seen.length,
    };
  } finally {
    await dev.stop();
    await fake.stop();
  }
}
