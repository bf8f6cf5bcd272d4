/**
 * Captions by content: an image whose bytes were captioned before (under any name, by anyone)
 * gets that caption with no Hugging Face call. The key is the SHA-256 of the bytes, the model and
 * the caption mode and prompt, so a new model or prompt captions afresh. The job records the
 * outcome in `captioning.jobs.cache` (`hit` or `miss`).
 *
 * The bytes are hashed, not the Storage `eTag`: an eTag is the MD5 of the content only for a
 * single-part upload (a multipart or resumable upload's eTag is not a content hash, and an S3
 * backend with KMS encryption returns something else again), and MD5 collisions can be made on
 * purpose, which would let one image be served another's caption.
 * @module
 */
import { runInBackground } from "../_shared/runtime/mod.ts";
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import { cacheKey, type CacheStore, createSupabaseCacheStore } from "../_shared/cache/mod.ts";
import { CAPTION_PROMPT, type Hf } from "../_shared/hf/mod.ts";

/** The cache task captions are stored under (its TTL is the `caption` row of `cache.ttl`). */
export const CAPTION_CACHE_TASK = "caption";

/** What a cached caption needs: the database, the model's configuration, and the job's lease. */
export interface CaptionCacheContext {
  db: SupabaseClient;
  hf: Hf;
  job: { objectId: string; lease_token: string };
}

const stores = new WeakMap<SupabaseClient, CacheStore>();

/**
 * Returns the caption of the image whose bytes hash to `contentSha256`: the cached one when these bytes were captioned before, else
 * `produce()`'s, which is then stored. A cache failure is logged and `produce` runs as if there
 * were no cache.
 * @throws what `produce` throws.
 */
export async function captionByContent(
  ctx: CaptionCacheContext,
  /** The SHA-256 (hex) of the image's bytes. */
  contentSha256: string,
  produce: () => Promise<string>,
): Promise<string> {
  let store = stores.get(ctx.db);
  if (!store) stores.set(ctx.db, store = createSupabaseCacheStore(ctx.db));
  const { imageToTextModel: model, captionMode } = ctx.hf.config;
  const key = await cacheKey({
    task: CAPTION_CACHE_TASK,
    model,
    parameters: { mode: captionMode, prompt: captionMode === "chat" ? CAPTION_PROMPT : null },
    input: { sha256: contentSha256 },
  });

  const cached = await bestEffort("lookup", () => store.lookup(key));
  const caption = cached ? parseCaption(await new Blob([cached.body]).text()) : undefined;
  if (caption) {
    await record(ctx, "hit");
    return caption;
  }
  // Recorded while the model works, and stored after: neither adds to the job's time.
  const [fresh] = await Promise.all([produce(), record(ctx, "miss")]);
  const bytes = new TextEncoder().encode(JSON.stringify({ caption: fresh }));
  runInBackground(bestEffort(
    "store",
    () => store.save({ key, task: CAPTION_CACHE_TASK, model, contentType: "application/json", bytes }),
  ));
  return fresh;
}

function parseCaption(text: string): string | undefined {
  try {
    const caption = JSON.parse(text)?.caption;
    return typeof caption === "string" && caption ? caption : undefined;
  } catch {
    return undefined;
  }
}

/** Notes the outcome on the job, for its owner to query; informational, so a failure is only logged. */
async function record(ctx: CaptionCacheContext, cache: "hit" | "miss"): Promise<void> {
  await bestEffort("record", async () => {
    const { error } = await ctx.db.rpc("caption_job_record_cache", {
      object_id: ctx.job.objectId,
      lease_token: ctx.job.lease_token,
      cache,
    });
    if (error) throw new Error(error.message);
  });
}

async function bestEffort<T>(what: string, op: () => Promise<T>): Promise<T | undefined> {
  try {
    return await op();
  } catch (error) {
    console.warn(`caption cache ${what} failed, going on without it: ${(error as Error)?.message ?? error}`);
    return undefined;
  }
}
