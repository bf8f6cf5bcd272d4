/**
 * Where the captions of the user's images stand: the caption from `image_caption`, else the job's
 * state and failure reason from `my_caption_jobs()`.
 * @module
 */
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";

/** One image's captioning state. */
export type CaptionState =
  | { state: "done"; caption: string }
  | { state: "failed"; reason: string }
  | { state: "captioning"; attempts: number };

/** Reads the state of each object id (all of the user's when `ids` is omitted); throws the API's error. */
export async function captionStates(supabase: SupabaseClient, ids?: string[]): Promise<Map<string, CaptionState>> {
  let query = supabase.from("image_caption").select("id, caption");
  if (ids) query = query.in("id", ids);
  const [captions, jobs] = await Promise.all([query, supabase.rpc("my_caption_jobs")]);
  if (captions.error) throw captions.error;
  const states = new Map<string, CaptionState>();
  for (
    const job of (jobs.data ?? []) as { object_id: string; status: string; attempts: number; last_error: string }[]
  ) {
    if (ids && !ids.includes(job.object_id)) continue;
    states.set(
      job.object_id,
      job.status === "failed"
        ? { state: "failed", reason: job.last_error || "captioning failed" }
        : { state: "captioning", attempts: job.attempts },
    );
  }
  for (const row of captions.data as { id: string; caption: string }[]) {
    states.set(row.id, { state: "done", caption: row.caption });
  }
  return states;
}

/** The line a person reads for a state. */
export function describeCaptionState(state: CaptionState | undefined): string {
  if (!state) return "captioning…";
  if (state.state === "done") return state.caption;
  if (state.state === "failed") return `Captioning failed: ${state.reason}`;
  return state.attempts > 1 ? `captioning… (attempt ${state.attempts})` : "captioning…";
}
