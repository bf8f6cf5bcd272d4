/**
 * One attempt at a claimed job: download the image, check it, caption it, store the caption.
 * Every outcome is recorded on the job, so a failure is retried or dead-lettered, never lost.
 * @module
 */
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import { HttpError } from "../_shared/http.ts";
import { captionImage, type Hf } from "../_shared/huggingface.ts";
import { BudgetExhausted, deferForBudget, withCaptionBudget } from "./budget.ts";
import { sniffImageType } from "./image.ts";
import { type ClaimedJob, claimJob, completeJob, failJob, type JobFailure } from "./jobs.ts";
import type { Semaphore } from "../_shared/semaphore.ts";

/** What an attempt needs. */
export interface CaptionJobContext {
  db: SupabaseClient;
  hf: Hf;
  maxImageBytes: number;
}

/** Thrown for a failure that no retry can fix (the image itself is the problem). */
class PermanentFailure extends Error {}

/**
 * Waits for a free slot, then claims the job and runs it. Claiming only when work can start keeps
 * the lease for the attempt itself: a job that waited in this instance's queue longer than a
 * lease would otherwise be sent again by the sweeper and captioned twice. Never throws.
 */
export async function captionWhenFree(ctx: CaptionJobContext, slots: Semaphore, objectId: string): Promise<string> {
  const release = await slots.acquire();
  try {
    const claim = await claimJob(ctx.db, objectId);
    // Anything but "claimed" means another delivery took it, or it is no longer due.
    return claim.outcome === "claimed" ? await runCaptionJob(ctx, claim as ClaimedJob) : claim.outcome;
  } catch (error) {
    // The job stays pending in the database; the sweeper sends it again.
    console.error(`caption of ${objectId} not started: ${(error as Error).message}`);
    return "unclaimed";
  } finally {
    release();
  }
}

/** Runs one attempt and records its outcome; never throws (a lost lease is recovered by the sweeper). */
export async function runCaptionJob(ctx: CaptionJobContext, job: ClaimedJob): Promise<string> {
  try {
    const image = await downloadImage(ctx, job);
    const caption = await withCaptionBudget(ctx.db, ctx.hf.config, image.size, () => captionImage(ctx.hf, image));
    // The caption is paid for: a passing database error must not send it round again.
    const outcome = await persistently(() => completeJob(ctx.db, job, caption, ctx.hf.config.imageToTextModel));
    if (outcome === "stale") console.warn(`caption of ${job.objectId} discarded: a newer attempt owns the job`);
    return outcome;
  } catch (error) {
    if (error instanceof BudgetExhausted) return await deferForBudget(ctx.db, job, error);
    const failure = describeFailure(error);
    try {
      const outcome = await failJob(ctx.db, job, failure);
      console.warn(`caption of ${job.objectId} failed (${outcome}): ${failure.message}`);
      return outcome;
    } catch (recordError) {
      // The lease will expire and the sweeper will send the job again.
      console.error(`caption of ${job.objectId}: could not record failure: ${(recordError as Error).message}`);
      return "unrecorded";
    }
  }
}

/** Runs `write` up to three times, 250 ms then 1 s apart; rethrows its last error. */
async function persistently<T>(write: () => Promise<T>): Promise<T> {
  for (const pause of [250, 1000]) {
    try {
      return await write();
    } catch (error) {
      console.warn(`retrying a database write: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
  return await write();
}

async function downloadImage(ctx: CaptionJobContext, job: ClaimedJob): Promise<Blob> {
  // Refuse an oversized image before moving its bytes.
  if (job.size !== null && job.size > ctx.maxImageBytes) {
    throw new PermanentFailure(`image is ${job.size} bytes, over the ${ctx.maxImageBytes}-byte limit`);
  }
  const { data, error } = await ctx.db.storage.from(job.bucket_id).download(job.name);
  if (error || !data) {
    const status = (error as { status?: number; statusCode?: string } | null)?.statusCode;
    const message = `download failed: ${error?.message ?? "no data"}`;
    throw status === "404" ? new PermanentFailure(message) : new Error(message);
  }
  if (data.size === 0) throw new PermanentFailure("image is empty (0 bytes)");
  if (data.size > ctx.maxImageBytes) {
    throw new PermanentFailure(`image is ${data.size} bytes, over the ${ctx.maxImageBytes}-byte limit`);
  }
  const bytes = new Uint8Array(await data.arrayBuffer());
  const type = sniffImageType(bytes);
  if (!type) throw new PermanentFailure("file is not a PNG, JPEG, GIF, WebP or BMP image (corrupt or mislabelled)");
  return new Blob([bytes], { type });
}

function describeFailure(error: unknown): JobFailure {
  if (error instanceof PermanentFailure) return { message: error.message, retryable: false };
  if (error instanceof HttpError) {
    const retryAfter = Number(new Headers(error.headers).get("retry-after"));
    return {
      message: `Hugging Face: ${error.message}`,
      // 400: the model rejects this input; 500: the function is misconfigured. Retrying won't help.
      retryable: error.status !== 400 && error.status !== 500,
      retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
    };
  }
  return { message: (error as Error)?.message ?? String(error), retryable: true };
}
