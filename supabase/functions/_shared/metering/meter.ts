/**
 * Quotas and the usage log for an inference function, as one middleware per task. It comes after
 * the caller is identified and the input is validated, so a refused or malformed request costs
 * nothing:
 *
 * ```ts
 * const meter = createMeter(env);
 * compose(cors, catchErrors, allowMethods("POST"), identify, parseTask(task, ctx), meter(task.id), runTask(task, ctx));
 * ```
 *
 * For the caller `identify` kept (see `identity/caller.ts`), it reserves one request and the task's units in the
 * database before the handler runs (one round trip, the only one on the response path), answers
 * 429 or 503 when a limit is met, and settles in the background once the answer is on its way: a
 * 2xx is charged, anything else is given back, an `X-Cache: HIT` answer costs nothing. A body of
 * unknown length is counted as it streams and settled when it ends (refunded if the upstream cuts
 * it short); one with a `Content-Length` passes through untouched, keeping the runtime's fast
 * path, and is settled at that size as it starts. The handler tells
 * it which model served with `X-Model`. Every answer past the sign-in check carries the IETF
 * `RateLimit-Policy` and `RateLimit` headers. When the quota cannot be checked, the answer is 503:
 * never free service.
 * @module
 */
import { configured, type Env, envString, requireEnv, runInBackground } from "../runtime/mod.ts";
import { createClient, type SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import { type Caller, callerOf, serviceKeyFromEnv } from "../identity/mod.ts";
import { HttpError, jsonError, type Middleware } from "../http/mod.ts";
import { createRpcMeterStore, type MeterStore, type Reservation, type Settlement } from "./store.ts";
import { createPostgresMeterStore } from "./store_postgres.ts";

export { createRpcMeterStore, type LimitName, type MeterStore, type Reservation, type Settlement } from "./store.ts";

/** Test and wiring seams. */
export interface MeterDeps {
  /** Replaces the database (default: supabase-js RPCs with the service key). */
  meterStore?: MeterStore;
  /** Where the usage write runs after the answer (default: `runInBackground`, i.e. `EdgeRuntime.waitUntil`). */
  waitUntil?: (work: Promise<unknown>) => void;
}

/** A middleware factory: `meter(task)` meters one task. */
export type Meter = (task: string) => Middleware;

// What a caller is told to wait when the quota cannot be checked.
const OUTAGE_RETRY_AFTER_S = 5;
// Settlements that end within this long of each other share one database call.
const SETTLE_BATCH_MS = 25;
const SETTLE_BATCH_MAX = 100;

/**
 * Builds the metering middleware factory from the environment (`SUPABASE_URL` and the service key).
 * Configuration errors surface per request as a 500 naming the variable. Each `meter(task)` needs
 * `createIdentify`'s middleware before it (a missing caller is a 500: never free service).
 */
export function createMeter(env: Env, deps: MeterDeps = {}): Meter {
  const store = deps.meterStore ? () => deps.meterStore! : configured(() => meterStoreFromEnv(env));
  const waitUntil = deps.waitUntil ?? runInBackground;
  const settle = batched((settlements: Settlement[]) => store().settle(settlements));

  return (task) => async (req, next) => {
    const started = performance.now();
    const caller = callerOf.get(req);
    const inputBytes = contentLength(req);
    let reservation: Reservation | undefined;
    const record = (
      outcome: Omit<Settlement, "key" | "day" | "reserved" | "caller" | "userId" | "task" | "inputBytes">,
    ) =>
      waitUntil(
        settle({
          key: caller.key,
          day: reservation?.day ?? null,
          reserved: reservation?.units ?? 0,
          caller: caller.label,
          userId: caller.userId,
          task,
          inputBytes,
          ...outcome,
        }).catch((error) => console.error(`usage of ${task} not recorded: ${(error as Error).message}`)),
      );

    if (caller.kind !== "service") {
      reservation = await reserveOrUnavailable(store(), caller, task);
      if (!reservation.granted) {
        const refusal = refusalResponse(reservation);
        record({
          charge: false,
          model: null,
          status: refusal.status,
          latencyMs: elapsed(started),
          outputBytes: null,
          cache: null,
        });
        return refusal;
      }
    }

    let res: Response;
    try {
      res = await next(req);
    } catch (error) {
      if (!(error instanceof HttpError)) {
        record({
          charge: false,
          model: null,
          status: 500,
          latencyMs: elapsed(started),
          outputBytes: null,
          cache: null,
        });
        throw error;
      }
      res = jsonError(error.status, error.message, error.details, error.headers);
    }

    const headers = new Headers(res.headers);
    if (reservation) {
      for (const [name, value] of Object.entries(rateLimitHeaders(reservation))) headers.set(name, value);
    }
    const cache: "hit" | null = res.headers.get("x-cache")?.toUpperCase() === "HIT" ? "hit" : null;
    const paid = res.status >= 200 && res.status < 300 && cache === null;
    const outcome = { model: res.headers.get("x-model"), status: res.status, cache };
    const length = Number(res.headers.get("content-length") ?? NaN);
    if (res.body && Number.isSafeInteger(length)) {
      // A body of known length keeps the runtime's fast path (passing a stream through JS costs
      // ~0.4 ms of CPU a request here), so it is settled as it starts, at its declared size.
      record({ ...outcome, charge: paid, latencyMs: elapsed(started), outputBytes: length });
      return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
    }
    const body = countedBody(res.body, (outputBytes, complete) =>
      // A body cut short by the upstream is a failed call; a caller hanging up still got served.
      record({ ...outcome, charge: paid && complete, latencyMs: elapsed(started), outputBytes }));
    return new Response(body, { status: res.status, statusText: res.statusText, headers });
  };
}

/**
 * The IETF `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers) for a
 * reservation: one policy per limit the caller has, `r` left and `t` seconds to the reset.
 */
export function rateLimitHeaders(r: Reservation): Record<string, string> {
  const policies: string[] = [];
  const states: string[] = [];
  if (r.requests_per_minute !== null) {
    policies.push(`"requests_per_minute";q=${r.requests_per_minute};w=60`);
    states.push(`"requests_per_minute";r=${r.requests_remaining ?? 0};t=${r.minute_reset}`);
  }
  if (r.units_per_day !== null) {
    policies.push(`"units_per_day";q=${r.units_per_day};w=86400`);
    states.push(`"units_per_day";r=${r.units_remaining ?? 0};t=${r.day_reset}`);
  }
  return policies.length ? { "RateLimit-Policy": policies.join(", "), "RateLimit": states.join(", ") } : {};
}

/** The 429 (a caller's limit) or 503 (the project's ceiling) answer to a refused reservation. */
export function refusalResponse(r: Reservation): Response {
  const limit = r.refused ?? "project_units_per_day";
  const retryAfter = limit === "requests_per_minute" ? r.minute_reset : r.day_reset;
  const message = limit === "requests_per_minute"
    ? `Rate limit reached: ${r.requests_per_minute} requests per minute; retry in ${retryAfter} s`
    : limit === "units_per_day"
    ? `Daily quota reached: ${r.units_per_day} units per day; it resets at midnight UTC`
    : "The project's daily inference budget is used up; it resets at midnight UTC";
  return jsonError(limit === "project_units_per_day" ? 503 : 429, message, {
    limit,
    retry_after_seconds: retryAfter,
  }, { "Retry-After": String(retryAfter), ...rateLimitHeaders(r) });
}

/**
 * Reserves for a caller.
 * @throws {HttpError} 503 when the database cannot answer: a quota that cannot be checked is not granted.
 */
async function reserveOrUnavailable(store: MeterStore, caller: Caller, task: string): Promise<Reservation> {
  try {
    return await store.reserve({ key: caller.key, userId: caller.userId, tier: caller.tier, task });
  } catch (error) {
    console.error(`quota check for ${task} failed: ${(error as Error).message}`);
    throw new HttpError(503, "Usage quotas cannot be checked right now; retry shortly", {}, {
      "Retry-After": String(OUTAGE_RETRY_AFTER_S),
    });
  }
}

/**
 * Passes a body through, counting its bytes; `done(bytes, complete)` is called once, when it ends
 * (`complete`), errors, or the reader cancels it (also `complete`: the upstream delivered).
 */
function countedBody(
  body: ReadableStream<Uint8Array> | null,
  done: (bytes: number, complete: boolean) => void,
): ReadableStream<Uint8Array> | null {
  if (!body) {
    done(0, true);
    return null;
  }
  let bytes = 0;
  let finished = false;
  const finish = (complete: boolean) => {
    if (!finished) done(bytes, complete);
    finished = true;
  };
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          finish(true);
          return;
        }
        bytes += value.byteLength;
        controller.enqueue(value);
      } catch (error) {
        finish(false);
        controller.error(error);
      }
    },
    cancel(reason) {
      finish(true);
      return reader.cancel(reason);
    },
  });
}

/**
 * The store the environment asks for: a direct connection when `INFERENCE_DB_URL` is set, else
 * supabase-js RPCs to `SUPABASE_URL` with the service key.
 * @throws {ConfigError} when the variables it needs are missing.
 */
export function meterStoreFromEnv(env: Env): MeterStore {
  const url = envString(env, "INFERENCE_DB_URL");
  return url ? createPostgresMeterStore(url) : createRpcMeterStore(serviceClient(env));
}

/**
 * Groups the calls that arrive within {@linkcode SETTLE_BATCH_MS} into one call of `many`; each
 * call's promise settles with its batch's.
 */
function batched<T>(many: (items: T[]) => Promise<void>): (item: T) => Promise<void> {
  let pending: { item: T; resolve: () => void; reject: (error: unknown) => void }[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    const batch = pending;
    pending = [];
    many(batch.map((p) => p.item)).then(
      () => batch.forEach((p) => p.resolve()),
      (error) => batch.forEach((p) => p.reject(error)),
    );
  };
  return (item) =>
    new Promise<void>((resolve, reject) => {
      pending.push({ item, resolve, reject });
      if (pending.length >= SETTLE_BATCH_MAX) flush();
      else timer ??= setTimeout(flush, SETTLE_BATCH_MS);
    });
}

function serviceClient(env: Env): SupabaseClient {
  return createClient(requireEnv(env, "SUPABASE_URL"), serviceKeyFromEnv(env), {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
}

function contentLength(req: Request): number | null {
  const n = Number(req.headers.get("content-length") ?? NaN);
  return Number.isFinite(n) && n >= 0 ? n : null;
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
