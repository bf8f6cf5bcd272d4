/**
 * One attempt at a claimed job: download the image, check it, caption it, store the caption.
 * Every outcome is recorded on the job, so a failure is retried or dead-lettered, never lost.
 * @module
 */
import { concatBytes, HttpError } from "../_shared/http/mod.ts";
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import type { Database } from "../_shared/database.types.ts";
import { captionImage, type CaptionSource, type Hf, type ImageBytes } from "../_shared/hf/mod.ts";
import { sha256Hex } from "../_shared/cache/mod.ts";
import { createHash } from "node:crypto";
import { captionByContent } from "./caption_cache.ts";
import { BudgetExhausted, deferForBudget, withCaptionBudget } from "./budget.ts";
import { sniffImageType } from "./image.ts";
import { type ClaimedJob, claimJob, claimNextJob, completeJob, failJob, type JobFailure } from "./jobs.ts";
import type { Semaphore } from "../_shared/runtime/mod.ts";
import type { ImageTransport } from "./transport.ts";
import type { DownloadBuffers } from "./download_buffers.ts";

/** What an attempt needs. */
export interface CaptionJobContext {
  db: SupabaseClient<Database>;
  hf: Hf;
  maxImageBytes: number;
  /** `url` applies to chat mode only; the image-to-text task always takes the bytes. */
  transport: ImageTransport;
  /** When set, Storage's image transformation downscales to fit this many pixels a side. */
  resizeTo?: number;
  /** Where downloads are read into, reused across jobs. */
  buffers?: DownloadBuffers;
}

// Jobs are pulled after the first only this long after it started: one more attempt (at most
// HF_DEADLINE_MS, 120 s by default) must still end within the worker's 150 s wall clock.
const PULL_WINDOW_MS = 20_000;

// How long a signed URL lives: the whole call with its retries fits (HF_DEADLINE_MS is 120 s by default).
const SIGNED_URL_SECONDS = 300;

/** Thrown for a failure that no retry can fix (the image itself is the problem). */
class PermanentFailure extends Error {}

/**
 * Waits for a free slot, then claims the job and runs it. Claiming only when work can start keeps
 * the lease for the attempt itself: a job that waited in this instance's queue longer than a
 * lease would otherwise be sent again by the sweeper and captioned twice. Never throws.
 */
export async function captionWhenFree(ctx: CaptionJobContext, slots: Semaphore, objectId: string): Promise<string> {
  const release = await slots.acquire();
  const started = Date.now();
  try {
    const claim = await claimJob(ctx.db, objectId);
    // Anything but "claimed" means another delivery took it, it is no longer due, or the project is at its rate.
    if (claim.outcome !== "claimed") return claim.outcome;
    const outcome = await runCaptionJob(ctx, claim as ClaimedJob);
    // The slot is free and the project's rate allowed this job: take the next due one at once rather
    // than leave the slot idle until the next sweep, while the worker has wall clock to spare.
    while (Date.now() - started < PULL_WINDOW_MS) {
      const next = await claimNextJob(ctx.db).catch(() => undefined); // the sweeper sends it instead
      if (next?.outcome !== "claimed") break;
      await runCaptionJob(ctx, next as ClaimedJob);
    }
    return outcome;
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
  // The download's array, handed back once every attempt has ended and nothing reads it any more.
  let downloaded: Uint8Array | undefined;
  const giveBack = () => downloaded && ctx.buffers?.giveBack(new Uint8Array(downloaded.buffer));
  try {
    let image: CaptionSource;
    let contentSha256: string;
    if (ctx.transport === "url" && ctx.hf.config.captionMode === "chat") {
      ({ source: image, sha256: contentSha256 } = await signedImageUrl(ctx, job));
    } else {
      const bytes = await downloadImage(ctx, job);
      downloaded = bytes.bytes;
      image = bytes;
      contentSha256 = await sha256Hex(bytes.bytes);
    }
    const caption = await captionByContent({ ...ctx, job }, contentSha256, () =>
      // A cached caption costs no budget: only a call to Hugging Face is counted.
      withCaptionBudget(ctx.db, ctx.hf.config, job.size, () => captionImage(ctx.hf, image)));
    giveBack();
    downloaded = undefined;
    // The caption is paid for: a passing database error must not send it round again.
    const outcome = await persistently(() => completeJob(ctx.db, job, caption, ctx.hf.config.imageToTextModel));
    if (outcome === "stale") console.warn(`caption of ${job.objectId} discarded: a newer attempt owns the job`);
    return outcome;
  } catch (error) {
    giveBack();
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

/**
 * Downloads the image into one array of its exact size and checks it; throws PermanentFailure for a
 * bad image. (supabase-js's `download` makes a Blob, whose bytes the JS garbage collector cannot
 * see: several of them outlive their use and the instance passes its memory limit.)
 */
async function downloadImage(ctx: CaptionJobContext, job: ClaimedJob): Promise<ImageBytes> {
  const { res, length } = await openImage(ctx, job);
  const bytes = await readAtMost(res.body!, ctx.maxImageBytes, length, ctx.buffers);
  if (!bytes) throw new PermanentFailure(`image is over the ${ctx.maxImageBytes}-byte limit`);
  if (bytes.length === 0) throw new PermanentFailure("image is empty (0 bytes)");
  const type = sniffImageType(bytes);
  if (!type) throw new PermanentFailure(NOT_AN_IMAGE);
  return { bytes, type };
}

/**
 * A short-lived signed URL for the provider to fetch, after streaming the image once through a hash (its content key
 * in the caption cache) and a check of its first bytes: the same checks as a download, in flat memory.
 * Throws like {@linkcode downloadImage}.
 */
async function signedImageUrl(
  ctx: CaptionJobContext,
  job: ClaimedJob,
): Promise<{ source: CaptionSource; sha256: string }> {
  const { url, res } = await openImage(ctx, job);
  const hash = createHash("sha256");
  let head: Uint8Array = new Uint8Array(0);
  let size = 0;
  for await (const chunk of res.body ?? []) {
    size += chunk.length;
    if (!ctx.resizeTo && size > ctx.maxImageBytes) {
      throw new PermanentFailure(`image is over the ${ctx.maxImageBytes}-byte limit`);
    }
    if (head.length < 32) head = concatBytes(head, chunk.subarray(0, 32 - head.length));
    hash.update(chunk);
  }
  if (size === 0) throw new PermanentFailure("image is empty (0 bytes)");
  if (!sniffImageType(head)) throw new PermanentFailure(NOT_AN_IMAGE);
  return { source: { url }, sha256: hash.digest("hex") };
}

/** Signs a URL for the image (downscaled when configured) and starts reading it; throws for a refused or failed download. */
async function openImage(
  ctx: CaptionJobContext,
  job: ClaimedJob,
): Promise<{ url: string; res: Response; length?: number }> {
  // Refuse an oversized image before moving its bytes (a downscaled one is measured as it arrives).
  if (!ctx.resizeTo) refuseOversized(ctx, job.size);
  const { data, error } = await ctx.db.storage.from(job.bucket_id).createSignedUrl(
    job.name,
    SIGNED_URL_SECONDS,
    transformOf(ctx),
  );
  if (error || !data) throw downloadFailure(error);
  const res = await fetch(data.signedUrl);
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw downloadFailure({
      message: body.message ?? res.statusText,
      statusCode: String(body.statusCode ?? res.status),
    });
  }
  const length = Number(res.headers.get("content-length") ?? NaN);
  if (Number.isFinite(length) && length > ctx.maxImageBytes) {
    await res.body?.cancel();
    refuseOversized(ctx, length);
  }
  return { url: data.signedUrl, res, length: Number.isFinite(length) ? length : undefined };
}

/**
 * Reads a body straight into one array (a BYOB reader: no chunk per read, no Blob); `undefined`
 * when it runs past `max` bytes.
 */
async function readAtMost(
  body: ReadableStream<Uint8Array>,
  max: number,
  expected?: number,
  buffers?: DownloadBuffers,
): Promise<Uint8Array | undefined> {
  const reader = body.getReader({ mode: "byob" });
  // One byte more than expected, to notice a body longer than it said.
  const initial = Math.min(max + 1, (expected ?? 64 * 1024) + 1);
  let buffer: ArrayBuffer = (buffers?.take(initial) ?? new Uint8Array(initial)).buffer as ArrayBuffer;
  let length = 0;
  try {
    for (;;) {
      if (length === buffer.byteLength) {
        const grown = new ArrayBuffer(Math.min(max + 1, buffer.byteLength * 2));
        new Uint8Array(grown).set(new Uint8Array(buffer, 0, length));
        buffer = grown;
      }
      const { value, done } = await reader.read(new Uint8Array(buffer, length, buffer.byteLength - length));
      // The read transfers the array: keep the one it hands back.
      if (value) buffer = value.buffer as ArrayBuffer;
      if (done) return new Uint8Array(buffer, 0, length);
      length += value.byteLength;
      if (length > max) return undefined;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

const NOT_AN_IMAGE = "file is not a PNG, JPEG, GIF, WebP or BMP image (corrupt or mislabelled)";

function refuseOversized(ctx: CaptionJobContext, size: number | null): void {
  if (size !== null && size > ctx.maxImageBytes) {
    throw new PermanentFailure(`image is ${size} bytes, over the ${ctx.maxImageBytes}-byte limit`);
  }
}

function transformOf(ctx: CaptionJobContext) {
  return ctx.resizeTo
    ? { transform: { width: ctx.resizeTo, height: ctx.resizeTo, resize: "contain" as const } }
    : undefined;
}

/** The error for a failed download: permanent when the object is gone, retried otherwise. */
function downloadFailure(error: { message?: string; statusCode?: string } | null): Error {
  const status = (error as { statusCode?: string } | null)?.statusCode;
  if (status === "404") return new PermanentFailure(`download failed: ${error?.message ?? "not found"}`);
  if (status === "500") {
    // The real Storage API answers 500 for a row whose file is not in the storage backend.
    return new Error(
      `download failed: Storage answered 500 (${
        error?.message ?? "no message"
      }); for an object that exists, that usually means its file bytes are missing from the storage backend`,
    );
  }
  return new Error(`download failed: ${error?.message ?? "no data"}`);
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
