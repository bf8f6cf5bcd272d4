/**
 * The job state of one image, kept in the database (`captioning.jobs`) and changed only through
 * the migration's RPCs, so a claim, a caption and its job's completion are each one transaction.
 * @module
 */
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import type { Database } from "../_shared/database.types.ts";
import { HttpError } from "../_shared/http/mod.ts";

/** What `caption_job_claim` decided for an object. */
export interface Claim {
  objectId: string;
  outcome:
    | "claimed"
    | "due"
    | "missing"
    | "skipped"
    | "busy"
    | "done"
    | "failed"
    | "scheduled"
    | "paused"
    | "throttled";
  lease_token: string | null;
  bucket_id: string | null;
  name: string | null;
  object_version: string | null;
  mimetype: string | null;
  size: number | null;
  attempts: number;
  last_error: string | null;
}

/** A claimed job: the lease that lets its holder finish it. */
export type ClaimedJob = Claim & { outcome: "claimed"; lease_token: string; bucket_id: string; name: string };

/**
 * Claims the job of `objectId` (creating it if the object predates the pipeline); with
 * `take: false`, only reports whether it is `due`. A project-wide pause answers `paused`, and
 * `max_in_flight` jobs already leased answer `throttled`: the job stays queued for the sweeper.
 * @throws {HttpError} 503 when the database cannot be reached; the sweeper sends the job again.
 */
export async function claimJob(db: SupabaseClient<Database>, objectId: string, { take = true } = {}): Promise<Claim> {
  const { data, error } = await db.rpc("caption_job_claim", { object_id: objectId, take });
  if (error) {
    console.error(`caption_job_claim failed: ${error.message}`);
    throw new HttpError(503, "The database is unavailable; the job stays queued and will be retried");
  }
  return { ...(data as Omit<Claim, "objectId">[])[0], objectId };
}

/**
 * Claims the job that has waited longest among those due; `undefined` when none is.
 * @throws {Error} when the database cannot be reached.
 */
export async function claimNextJob(db: SupabaseClient): Promise<Claim | undefined> {
  const { data, error } = await db.rpc("caption_job_claim_next");
  if (error) throw new Error(`caption_job_claim_next failed: ${error.message}`);
  const row = (data as (Omit<Claim, "objectId"> & { object_id: string })[])[0];
  if (!row) return undefined;
  const { object_id, ...claim } = row;
  return { ...claim, objectId: object_id };
}

/**
 * Stores the caption and marks the job done, if this lease still holds it.
 * Returns `"done"`, or `"stale"` when a newer attempt or version took over (nothing is written).
 * @throws {Error} when the database cannot be reached.
 */
export async function completeJob(
  db: SupabaseClient<Database>,
  job: ClaimedJob,
  caption: string,
  model: string,
): Promise<"done" | "stale"> {
  const { data, error } = await db.rpc("caption_job_complete", {
    object_id: job.objectId,
    lease_token: job.lease_token,
    caption,
    model,
  });
  if (error) throw new Error(`caption_job_complete failed: ${error.message}`);
  return data as "done" | "stale";
}

/** Why an attempt failed, and whether another attempt can succeed. */
export interface JobFailure {
  message: string;
  retryable: boolean;
  retryAfterSeconds?: number;
}

/**
 * Records a failed attempt: `"retry"` (scheduled with backoff), `"failed"` (dead letter) or `"stale"`.
 * @throws {Error} when the database cannot be reached.
 */
export async function failJob(
  db: SupabaseClient<Database>,
  job: ClaimedJob,
  failure: JobFailure,
): Promise<"retry" | "failed" | "stale"> {
  const { data, error } = await db.rpc("caption_job_fail", {
    object_id: job.objectId,
    lease_token: job.lease_token,
    error: failure.message,
    retryable: failure.retryable,
    // Left out when unknown: the function's default (null) applies.
    retry_after_seconds: failure.retryAfterSeconds,
  });
  if (error) throw new Error(`caption_job_fail failed: ${error.message}`);
  return data as "retry" | "failed" | "stale";
}

/**
 * Writes `message` to the job's `last_error` without changing its state (e.g. the function is
 * misconfigured, so no attempt can start). Returns whether a live job was there.
 * @throws {Error} when the database cannot be reached.
 */
export async function noteJob(db: SupabaseClient, objectId: string, message: string): Promise<boolean> {
  const { data, error } = await db.rpc("caption_job_note", { object_id: objectId, error: message });
  if (error) throw new Error(`caption_job_note failed: ${error.message}`);
  return data;
}
