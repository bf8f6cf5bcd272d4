/**
 * `huggingface-image-captioning`: the Database Webhook target for uploads to the captions bucket.
 *
 * It answers within milliseconds (pg_net sends a batch of webhooks in parallel, but a slow answer
 * still holds up the batches queued behind it): check the secret, validate the event, check the
 * object and its job, reply 202, and claim and caption after responding, as soon as a slot is free.
 * @module
 */
import {
  configured,
  createSemaphore,
  type Env,
  envInt,
  envString,
  requireEnv,
  runInBackground,
} from "../_shared/runtime/mod.ts";
import { createClient, type SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import type { Database } from "../_shared/database.types.ts";
import { allowMethods, catchErrors, compose, type Handler, HttpError, readJson } from "../_shared/http/mod.ts";
import { serviceKeyFromEnv } from "../_shared/identity/mod.ts";
import { createHf, type Hf, hfConfigFromEnv, type HfDeps } from "../_shared/hf/mod.ts";
import { parseStorageObjectEvent, type StorageObjectRecord, verifyWebhookSecret } from "./webhook.ts";
import { captionWhenFree } from "./caption_job.ts";
import { createDownloadBuffers } from "./download_buffers.ts";
import { type ImageTransport, imageTransportFromEnv } from "./transport.ts";
import { type Claim, claimJob, noteJob } from "./jobs.ts";
import { databaseGate } from "./rate.ts";

// A storage.objects row is a few KB; a much larger body is not a webhook.
const MAX_BODY_BYTES = 256 * 1024;

/** Test seams: the upstream fetch, and where background work is handed. */
export interface CaptioningDeps extends HfDeps {
  waitUntil?: (work: Promise<unknown>) => void;
}

interface CaptioningConfig {
  webhookSecret: string;
  bucket: string;
  maxImageBytes: number;
  /** Images one instance downloads and captions at once; further jobs wait their turn, unclaimed. */
  concurrency: number;
  transport: ImageTransport;
  resizeTo?: number;
  db: SupabaseClient<Database>;
}

/** Builds the handler from an environment. */
export function createHandler(env: Env, deps: CaptioningDeps = {}): Handler {
  const config = configured(() => captioningConfigFromEnv(env));
  // The pause a 429 asks for is shared through the database by every instance of the project.
  const hf = configured(() => createHf(hfConfigFromEnv(env), { gate: databaseGate(config().db), ...deps }));
  const waitUntil = deps.waitUntil ?? runInBackground;
  const slots = configured(() => createSemaphore(config().concurrency));
  const buffers = configured(() => createDownloadBuffers(config().concurrency));

  return compose(catchErrors, allowMethods("POST"), async (req) => {
    const { webhookSecret, bucket, maxImageBytes, transport, resizeTo, db } = config();
    verifyWebhookSecret(req, webhookSecret);
    const event = parseStorageObjectEvent(await readJson(req, MAX_BODY_BYTES));
    const skip = event.record ? skipReason(event.record, bucket) : "deletes need no caption";
    if (skip) return Response.json({ status: "skipped", reason: skip });

    // Checks the object and records its job now; the claim waits until a slot is free.
    const status = await claimJob(db, event.record!.id, { take: false });
    if (status.outcome === "due") {
      const ctx = {
        db,
        hf: await noting(db, event.record!.id, hf),
        maxImageBytes,
        transport,
        resizeTo,
        buffers: buffers(),
      };
      waitUntil(captionWhenFree(ctx, slots(), event.record!.id));
    }
    return answerFor(status);
  });
}

function captioningConfigFromEnv(env: Env): CaptioningConfig {
  const url = requireEnv(env, "SUPABASE_URL");
  return {
    webhookSecret: requireEnv(env, "CAPTION_WEBHOOK_SECRET"),
    bucket: envString(env, "CAPTION_BUCKET") ?? "images",
    maxImageBytes: envInt(env, "CAPTION_MAX_IMAGE_BYTES", 10 * 1024 * 1024, { min: 1 }),
    concurrency: envInt(env, "CAPTION_CONCURRENCY", 4, { min: 1, max: 256 }),
    transport: imageTransportFromEnv(env, url),
    resizeTo: envInt(env, "CAPTION_IMAGE_RESIZE", 0, { min: 0, max: 10_000 }) || undefined,
    db: createClient<Database>(url, serviceKeyFromEnv(env), {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    }),
  };
}

/**
 * Returns the configured Hugging Face module; when the function is misconfigured, writes the
 * reason on the job first, so that `select * from captioning.jobs` says what is wrong.
 * @throws {HttpError} 500 naming the setting (never its value).
 */
async function noting(db: SupabaseClient, objectId: string, hf: () => Hf): Promise<Hf> {
  try {
    return hf();
  } catch (error) {
    if (error instanceof HttpError) {
      await noteJob(db, objectId, `function not started: ${error.message}`).catch((e) =>
        console.error(`could not note the misconfiguration on the job: ${(e as Error).message}`)
      );
    }
    throw error;
  }
}

// Answered 2xx so that nobody retries an event there is nothing to do for.
function skipReason(record: StorageObjectRecord, bucket: string): string | undefined {
  if (record.bucket_id !== bucket) return `bucket ${record.bucket_id} is not captioned`;
  const mimetype = record.metadata?.mimetype;
  if (typeof mimetype !== "string" || !mimetype.startsWith("image/")) return "not an image";
  return undefined;
}

function answerFor(claim: Claim): Response {
  switch (claim.outcome) {
    case "due":
    case "claimed":
      return Response.json({ status: "accepted" }, { status: 202 });
    case "busy":
      return Response.json({ status: "in_progress" }, { status: 202 });
    case "scheduled":
      return Response.json({ status: "scheduled", last_error: claim.last_error }, { status: 202 });
    case "done":
      return Response.json({ status: "done" });
    case "failed":
      return Response.json({ status: "failed", last_error: claim.last_error });
    case "skipped":
      return Response.json({ status: "skipped", reason: "not an image in the captions bucket" });
    case "paused":
      return Response.json({ status: "paused", reason: "Hugging Face asked the project to slow down" }, {
        status: 202,
      });
    case "throttled":
      return Response.json({ status: "throttled" }, { status: 202 });
    case "missing":
      // Deleted since its webhook was sent: nothing to do, and nothing for anyone to retry.
      return Response.json({ status: "gone", reason: "the object no longer exists" });
  }
}
