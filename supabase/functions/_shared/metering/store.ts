/**
 * Where quotas live: the shapes of `public.inference_reserve`'s answer and of a settlement, and the
 * default store, which calls the two RPCs through supabase-js with the service key.
 * @module
 */
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";

// The quota check is on every request's path: a database that does not answer in this long is down.
const RESERVE_TIMEOUT_MS = 5_000;

/** The limit a refusal names. */
export type LimitName = "requests_per_minute" | "units_per_day" | "project_units_per_day";

/** What `public.inference_reserve` decided; resets are seconds from now, `null` limits are unlimited. */
export interface Reservation {
  granted: boolean;
  refused: LimitName | null;
  /** Units taken (0 when refused). */
  units: number;
  tier: string | null;
  /** The UTC day the units were taken from, `YYYY-MM-DD`. */
  day: string;
  requests_per_minute: number | null;
  requests_remaining: number | null;
  minute_reset: number;
  units_per_day: number | null;
  units_remaining: number | null;
  day_reset: number;
}

/** One call's outcome, for `public.inference_settle_many`. */
export interface Settlement {
  /** The quota key reserved on (null: the system caller or the service role). */
  key: string | null;
  /** The reservation's day (null: today). */
  day: string | null;
  reserved: number;
  /** Whether the call is paid for: the reservation is kept (or, with nothing reserved, the task's cost taken). */
  charge: boolean;
  caller: string;
  userId: string | null;
  task: string;
  model: string | null;
  status: number;
  latencyMs: number;
  inputBytes: number | null;
  outputBytes: number | null;
  cache: "hit" | null;
}

/** Where quotas live: the database, through two RPCs. */
export interface MeterStore {
  /** Reserves for `key` (null: the system caller, only the project ceiling applies); throws when the database cannot answer. */
  reserve(
    request: { key: string | null; userId: string | null; tier: string | null; task: string },
  ): Promise<Reservation>;
  /** Settles calls and writes their usage rows, in one round trip; throws when the database cannot answer. */
  settle(settlements: Settlement[]): Promise<void>;
}

/** A {@linkcode MeterStore} on `public.inference_reserve` and `public.inference_settle` through supabase-js. */
export function createRpcMeterStore(db: SupabaseClient): MeterStore {
  return {
    async reserve({ key, userId, tier, task }) {
      const { data, error } = await db
        .rpc("inference_reserve", { key, user_id: userId, default_tier: tier, task })
        .abortSignal(AbortSignal.timeout(RESERVE_TIMEOUT_MS));
      if (error) throw new Error(`inference_reserve failed: ${error.message}`);
      return data as Reservation;
    },
    async settle(settlements) {
      const { error } = await db.rpc("inference_settle_many", { settlements: settlements.map(settlementRow) });
      if (error) throw new Error(`inference_settle_many failed: ${error.message}`);
    },
  };
}

/** A settlement as `public.inference_settle_many` takes it: the SQL function's argument names. */
export function settlementRow(s: Settlement): Record<string, unknown> {
  return {
    key: s.key,
    day: s.day,
    reserved: s.reserved,
    charge: s.charge,
    caller: s.caller,
    user_id: s.userId,
    task: s.task,
    model: s.model,
    status: s.status,
    latency_ms: s.latencyMs,
    input_bytes: s.inputBytes,
    output_bytes: s.outputBytes,
    cache: s.cache,
  };
}
