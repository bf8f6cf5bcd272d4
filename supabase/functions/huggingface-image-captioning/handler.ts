/**
 * `huggingface-image-captioning`: the Database Webhook target for uploads to the captions bucket.
 *
 * It answers within milliseconds (pg_net has one worker, and a slow target holds up every webhook
 * queued behind it): check the secret, validate the event, check the object and its job, reply
 * 202, and claim and caption after responding, as soon as a slot is free.
 * @module
 */
import { createClient, type SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import type { Database } from "../_shared/database.types.ts";
import { ConfigError, configured, type Env, envInt, envString, requireEnv } from "../_shared/env.ts";
import { hfConfigFromEnv } from "../_shared/hf_config.ts";
import { allowMethods, catchErrors, compose, type Handler, readJson } from "../_shared/http.ts";
import { createHf, type HfDeps } from "../_shared/huggingface.ts";
import { createSemaphore } from "../_shared/semaphore.ts";
import { parseStorageObjectEvent, type StorageObjectRecord, verifyWebhookSecret } from "../_shared/webhook.ts";
import { captionWhenFree } from "./caption_job.ts";
import { type Claim, claimJob } from "./jobs.ts";

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
  db: SupabaseClient<Database>;
}

/** Builds the handler from an environment. */
export function createHandler(env: Env, deps: CaptioningDeps = {}): Handler {
  const config = configured(() => captioningConfigFromEnv(env));
  const hf = configured(() => createHf(hfConfigFromEnv(env), deps));
  const waitUntil = deps.waitUntil ?? runInBackground;
  const slots = configured(() => createSemaphore(config().concurrency));

  return compose(catchErrors, allowMethods("POST"), async (req) => {
    const { webhookSecret, bucket, maxImageBytes, db } = config();
    verifyWebhookSecret(req, webhookSecret);
    const event = parseStorageObjectEvent(await readJson(req, MAX_BODY_BYTES));
    const skip = event.record ? skipReason(event.record, bucket) : "deletes need no caption";
    if (skip) return Response.json({ status: "skipped", reason: skip });

    // Checks the object and records its job now; the claim waits until a slot is free.
    const status = await claimJob(db, event.record!.id, { take: false });
    if (status.outcome === "due") {
      waitUntil(captionWhenFree({ db, hf: hf(), maxImageBytes }, slots(), event.record!.id));
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
    db: createClient<Database>(url, serviceKey(env), {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    }),
  };
}

/** The service key: the new `SUPABASE_SECRET_KEYS` default when present, else the legacy JWT. */
function serviceKey(env: Env): string {
  const keys = envString(env, "SUPABASE_SECRET_KEYS");
  if (keys) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(keys);
    } catch {
      throw new ConfigError("SUPABASE_SECRET_KEYS is not valid JSON");
    }
    const key = (parsed as Record<string, unknown>)?.default;
    if (typeof key === "string" && key) return key;
  }
  return requireEnv(env, "SUPABASE_SERVICE_ROLE_KEY");
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
    case "missing":
      return Response.json({ error: "No such object in storage.objects" }, { status: 404 });
  }
}

// On Supabase, EdgeRuntime.waitUntil keeps the instance alive until the work ends.
function runInBackground(work: Promise<unknown>): void {
  const runtime = (globalThis as { EdgeRuntime?: { waitUntil(p: Promise<unknown>): void } }).EdgeRuntime;
  if (runtime) runtime.waitUntil(work);
  else work.catch((error) => console.error("background work failed:", error));
}
