/**
 * Captioning counts against the project's daily inference budget (`project_units_per_day`) as
 * the system caller, and writes a usage row per attempt with a null user.
 * @module
 */
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import type { HfConfig } from "../_shared/hf/mod.ts";
import { createRpcMeterStore, type Reservation } from "../_shared/metering/mod.ts";

/** The `inference.task_costs` task a caption is charged as: the chat caption, or the image-to-text task. */
export function captionTask(mode: HfConfig["captionMode"]): string {
  return mode === "image-to-text" ? "image-to-text" : "image-caption";
}

/** The project's ceiling is met: the job waits, neither failed nor retried, until `until`. */
export class BudgetExhausted extends Error {
  override name = "BudgetExhausted";
  constructor(readonly until: Date) {
    super(`project_units_per_day reached; deferred until ${until.toISOString()}`);
  }
}

/**
 * Reserves the caption's units, runs `work`, and settles: charged on success, given back on
 * failure, with a usage row either way (written in the background; losing it is acceptable).
 * @throws {BudgetExhausted} when the ceiling is met (before `work` runs); what `work` throws; an
 * Error when the database cannot reserve.
 */
export async function withCaptionBudget<T>(
  db: SupabaseClient,
  config: Pick<HfConfig, "captionMode" | "imageToTextModel">,
  inputBytes: number | null,
  work: () => Promise<T>,
): Promise<T> {
  const store = createRpcMeterStore(db);
  const task = captionTask(config.captionMode);
  const reservation: Reservation = await store.reserve({ key: null, userId: null, tier: null, task });
  if (!reservation.granted) throw new BudgetExhausted(new Date(Date.now() + reservation.day_reset * 1000));
  const started = performance.now();
  const settle = (status: number, charge: boolean) =>
    store.settle([{
      key: null,
      day: reservation.day,
      reserved: reservation.units,
      charge,
      caller: "system:captioning",
      userId: null,
      task,
      model: config.imageToTextModel,
      status,
      latencyMs: Math.round(performance.now() - started),
      inputBytes,
      outputBytes: null,
      cache: null,
    }]).catch((error) => console.error(`caption usage not recorded: ${(error as Error).message}`));
  try {
    const result = await work();
    void settle(200, true);
    return result;
  } catch (error) {
    void settle((error as { status?: number })?.status ?? 500, false);
    throw error;
  }
}

/**
 * Gives a claimed job back to the queue until the budget resets, without spending an attempt.
 * Returns `"deferred"`, `"stale"` (the lease is gone) or `"unrecorded"` (the database did not
 * answer; the lease expires and the sweeper sends the job again). Never throws.
 */
export async function deferForBudget(
  db: SupabaseClient,
  job: { objectId: string; lease_token: string },
  exhausted: BudgetExhausted,
): Promise<string> {
  const { data, error } = await db.rpc("caption_job_defer", {
    object_id: job.objectId,
    lease_token: job.lease_token,
    until: exhausted.until.toISOString(),
    reason: exhausted.message,
  });
  if (error) {
    console.error(`caption of ${job.objectId}: could not defer: ${error.message}`);
    return "unrecorded";
  }
  console.warn(`caption of ${job.objectId} ${data}: ${exhausted.message}`);
  return data;
}
