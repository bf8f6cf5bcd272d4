/**
 * The project-wide pause toward Hugging Face, kept in the database (`captioning.hf_pause`) so that
 * a 429 seen by one instance holds back every instance, including ones started later.
 * @module
 */
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import { type HfGate, sleep } from "../_shared/hf/mod.ts";

/**
 * A gate for `createHf` that waits out the recorded pause before each call and records the pauses
 * the upstream asks for. Its methods throw when the database cannot be reached.
 */
export function databaseGate(db: SupabaseClient): HfGate {
  return {
    async wait(signal) {
      // Checked again after each wait: another instance may have lengthened the pause meanwhile.
      for (let seconds = await pauseLeft(db); seconds > 0; seconds = await pauseLeft(db)) {
        await sleep(Math.ceil(seconds * 1000), signal);
      }
    },
    async pause(untilMs, status) {
      const seconds = Math.max(0, (untilMs - Date.now()) / 1000);
      const { error } = await db.rpc("caption_rate_pause", { seconds, upstream_status: status });
      if (error) throw new Error(`caption_rate_pause failed: ${error.message}`);
      console.warn(`Hugging Face asked to slow down (${status}): every instance pauses for ${seconds.toFixed(1)} s`);
    },
  };
}

async function pauseLeft(db: SupabaseClient): Promise<number> {
  const { data, error } = await db.rpc("caption_rate_wait");
  if (error) throw new Error(`caption_rate_wait failed: ${error.message}`);
  return Number(data) || 0;
}
