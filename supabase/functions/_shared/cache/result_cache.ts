/**
 * The result cache around one upstream call: {@linkcode withCache} answers from the cache when it
 * can (`X-Cache: HIT`), else produces the answer once (`X-Cache: MISS`), streaming it to the
 * caller while a copy is stored.
 *
 * Identical calls in flight at the same time make one upstream call: within an instance they
 * share one promise; across instances the first claims the key (a pending row with a short
 * lease, see the result-cache migration) and the others poll, for a bounded time, until its
 * answer is stored. A failing cache (database or Storage down, slow, or not migrated) never
 * fails the call: it is logged, and the call goes upstream as if there were no cache.
 * @module
 */
import { runInBackground } from "../runtime/mod.ts";
import { concatBytes } from "../http/mod.ts";
import type { CachedAnswer, CacheStore, Claim } from "./store.ts";

/** Tunables of a {@linkcode ResultCache}; every field has a default. */
export interface ResultCacheOptions {
  /** How long a claim holds a key before another instance may produce it (default 150 s: no request outlives the
   * platform's idle timeout, so a live producer keeps its claim). */
  leaseSeconds?: number;
  /** How long an identical call waits for another producer before calling upstream itself (default 60 s). */
  waitMs?: number;
  /** Longest wait for one cache operation before the call goes on without the cache (default 2 s). */
  storeTimeoutMs?: number;
  /** Larger answers stream through uncached (default 10 MiB). */
  maxEntryBytes?: number;
  /** After a cache failure the cache is skipped this long, so an outage costs no latency (default 5 s). */
  retryAfterFailureMs?: number;
  /** Least time between two evictions started by this instance (default 60 s). */
  sweepIntervalMs?: number;
  /** Where storing after the response is handed (default: `runInBackground`, i.e. `EdgeRuntime.waitUntil`). */
  waitUntil?: (work: Promise<unknown>) => void;
}

/** A cache for one function instance: the store, its options, and the calls in flight. */
export interface ResultCache {
  readonly store: CacheStore;
  readonly options: Required<Omit<ResultCacheOptions, "waitUntil">> & Pick<ResultCacheOptions, "waitUntil">;
  /** Answers being produced in this instance, by key; null when the producer's answer was not stored. */
  readonly inflight: Map<string, Promise<Answer | null>>;
  /** Background work (stores, sweeps) not yet finished. */
  readonly background: Set<Promise<unknown>>;
  state: { skipUntil: number; lastSweep: number };
}

/** What {@linkcode withCache} needs to know about a call. */
export interface CachedCall {
  /** From `cacheKey()`. */
  key: string;
  task: string;
  /** The model the key was derived for; an answer from another one (a fallback) is not stored. */
  model: string;
  /** `Cache-Control: no-cache`: call upstream even when an answer is stored, and store the new one. */
  bypassLookup?: boolean;
  /** Headers every answer of this call carries (e.g. `Cache-Control: no-store`); added to hits. */
  hitHeaders?: HeadersInit;
  /** The caller's abort signal: waiting for another producer stops when it aborts. */
  signal?: AbortSignal;
}

/** An answer held in memory. */
interface Answer {
  contentType: string;
  model: string;
  body: Uint8Array<ArrayBuffer> | Blob;
  byteSize: number;
  createdAt: Date;
}

/** Builds a {@linkcode ResultCache} over a store. */
export function createResultCache(store: CacheStore, options: ResultCacheOptions = {}): ResultCache {
  return {
    store,
    options: {
      leaseSeconds: options.leaseSeconds ?? 150,
      waitMs: options.waitMs ?? 60_000,
      storeTimeoutMs: options.storeTimeoutMs ?? 2000,
      maxEntryBytes: options.maxEntryBytes ?? 10 * 1024 * 1024,
      retryAfterFailureMs: options.retryAfterFailureMs ?? 5000,
      sweepIntervalMs: options.sweepIntervalMs ?? 60_000,
      waitUntil: options.waitUntil,
    },
    inflight: new Map(),
    background: new Set(),
    state: { skipUntil: 0, lastSweep: 0 },
  };
}

/**
 * Answers `call` from the cache, or runs `produce` once and stores its 2xx answer.
 * A hit carries `X-Cache: HIT`, the stored `Content-Type` and `X-Model`; a miss is `produce`'s
 * response with `X-Cache: MISS`, its body streamed to the caller as it arrives.
 * @throws what `produce` throws (cache failures are never thrown).
 */
export async function withCache(
  cache: ResultCache,
  call: CachedCall,
  produce: () => Promise<Response>,
): Promise<Response> {
  if (!call.bypassLookup) {
    const running = cache.inflight.get(call.key);
    if (running) {
      const shared = await within(running, cache.options.waitMs, call.signal);
      if (shared) return hitResponse(shared, call);
      // The producer's answer was not stored (an error, or too large): call upstream ourselves.
      return missResponse(await produce());
    }
  }

  // Registered before the first await, so identical calls arriving meanwhile wait for this one.
  const settle = leadFor(cache, call);
  let token: string | undefined;
  let res: Response;
  try {
    if (!call.bypassLookup) {
      const found = await findOrClaim(cache, call);
      if ("answer" in found) {
        settle(found.answer);
        return hitResponse(found.answer, call);
      }
      token = found.token;
    }
    res = await produce();
  } catch (error) {
    settle(null);
    if (token) releaseClaim(cache, call, token);
    throw error;
  }

  const answeredBy = res.headers.get("x-model") ?? call.model;
  const contentType = res.headers.get("content-type");
  if (!res.ok || !res.body || !contentType || answeredBy !== call.model || skipping(cache)) {
    settle(null);
    if (token) releaseClaim(cache, call, token);
    return missResponse(res);
  }

  const [toCaller, toCache] = res.body.tee();
  inBackground(
    cache,
    (async () => {
      const bytes = await collect(toCache, cache.options.maxEntryBytes);
      if (!bytes) {
        settle(null);
        if (token) releaseClaim(cache, call, token);
        return;
      }
      settle({ contentType, model: answeredBy, body: bytes, byteSize: bytes.byteLength, createdAt: new Date() });
      const saved = await guarded(cache, "store", async () => {
        await cache.store.save({ key: call.key, task: call.task, model: answeredBy, contentType, bytes });
        return true;
      });
      if (saved) maybeSweep(cache);
      else if (token) releaseClaim(cache, call, token);
    })(),
  );
  return missResponse(new Response(toCaller, { status: res.status, statusText: res.statusText, headers: res.headers }));
}

/** Resolves when this instance's background stores and sweeps have finished (for tests and shutdown). */
export async function cacheIdle(cache: ResultCache): Promise<void> {
  while (cache.background.size > 0) await Promise.allSettled([...cache.background]);
}

/** Registers the caller as this instance's producer of `call.key`; returns how to hand out its answer. */
function leadFor(cache: ResultCache, call: CachedCall): (answer: Answer | null) => void {
  let resolve!: (answer: Answer | null) => void;
  const promise = new Promise<Answer | null>((r) => (resolve = r));
  const registered = !call.bypassLookup && !cache.inflight.has(call.key);
  if (registered) cache.inflight.set(call.key, promise);
  let done = false;
  return (answer) => {
    if (done) return;
    done = true;
    if (registered && cache.inflight.get(call.key) === promise) cache.inflight.delete(call.key);
    resolve(answer);
  };
}

/**
 * Looks the key up, then claims it; when another instance is producing it, polls until its
 * answer is stored, the claim is ours, or `waitMs` has passed. Returns the answer, or the claim's
 * token (none when the cache failed or the wait ran out: the call goes upstream unclaimed).
 */
async function findOrClaim(cache: ResultCache, call: CachedCall): Promise<{ answer: Answer } | { token?: string }> {
  const hit = await guarded(cache, "lookup", () => cache.store.lookup(call.key));
  if (hit) return { answer: fromStored(hit) };
  if (hit === undefined) return {};
  const deadline = Date.now() + cache.options.waitMs;
  for (let pause = 20;; pause = Math.min(pause * 2, 500)) {
    const claim: Claim | undefined = await guarded(
      cache,
      "claim",
      () => cache.store.claim(call.key, call.task, call.model, cache.options.leaseSeconds),
    );
    if (!claim) return {};
    if (claim.outcome === "claimed") return { token: claim.token };
    if (claim.outcome === "ready") {
      const ready = await guarded(cache, "lookup", () => cache.store.lookup(call.key));
      if (ready) return { answer: fromStored(ready) };
      if (ready === undefined) return {};
    }
    if (Date.now() + pause > deadline) return {};
    await sleep(pause, call.signal);
  }
}

/**
 * Runs one cache operation with a timeout. Returns its result, or undefined when it failed or
 * timed out (logged; the cache is then skipped for `retryAfterFailureMs`), or was skipped.
 * Never throws.
 */
async function guarded<T>(
  cache: ResultCache,
  what: string,
  op: () => Promise<T>,
  { evenWhileSkipping = false } = {},
): Promise<T | undefined> {
  if (skipping(cache) && !evenWhileSkipping) return undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      op(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${cache.options.storeTimeoutMs} ms`)),
          cache.options.storeTimeoutMs,
        );
      }),
    ]);
  } catch (error) {
    cache.state.skipUntil = Date.now() + cache.options.retryAfterFailureMs;
    console.warn(`result cache ${what} failed, calling upstream without it: ${(error as Error)?.message ?? error}`);
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

function skipping(cache: ResultCache): boolean {
  return Date.now() < cache.state.skipUntil;
}

function releaseClaim(cache: ResultCache, call: CachedCall, token: string): void {
  // Best effort: an unreleased claim only makes waiters wait out the lease.
  // Tried even while the cache is skipped after a failure: it frees waiters on other instances.
  inBackground(
    cache,
    guarded(cache, "release", () => cache.store.release(call.key, token), { evenWhileSkipping: true }),
  );
}

function maybeSweep(cache: ResultCache): void {
  if (Date.now() - cache.state.lastSweep < cache.options.sweepIntervalMs) return;
  cache.state.lastSweep = Date.now();
  inBackground(cache, guarded(cache, "sweep", () => cache.store.sweep()));
}

function inBackground(cache: ResultCache, work: Promise<unknown>): void {
  const tracked = work.catch((error) => console.error("result cache background work failed:", error));
  cache.background.add(tracked);
  tracked.finally(() => cache.background.delete(tracked));
  (cache.options.waitUntil ?? runInBackground)(tracked);
}

/** Reads a stream to its end; undefined (and the stream cancelled) once it passes `maxBytes`. */
async function collect(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel();
        return undefined;
      }
      chunks.push(value);
    }
  } catch {
    return undefined; // the upstream broke off: half an answer is not stored
  }
  return concatBytes(...chunks);
}

function fromStored(stored: CachedAnswer): Answer {
  return {
    contentType: stored.contentType,
    model: stored.model,
    body: stored.body,
    byteSize: stored.byteSize,
    createdAt: stored.createdAt,
  };
}

function hitResponse(answer: Answer, call: CachedCall): Response {
  const headers = new Headers(call.hitHeaders);
  headers.set("content-type", answer.contentType);
  headers.set("content-length", String(answer.byteSize));
  headers.set("x-cache", "HIT");
  headers.set("x-model", answer.model);
  headers.set("age", String(Math.max(0, Math.floor((Date.now() - answer.createdAt.getTime()) / 1000))));
  return new Response(answer.body, { status: 200, headers });
}

function missResponse(res: Response): Response {
  const headers = new Headers(res.headers);
  headers.set("x-cache", "MISS");
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}

/** Resolves like `promise`, or with null after `ms` or when `signal` aborts (then it rejects with its reason). */
async function within<T>(promise: Promise<T | null>, ms: number, signal?: AbortSignal): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<null>((resolve, reject) => {
        timer = setTimeout(() => resolve(null), ms);
        onAbort = () => reject(signal!.reason);
        if (signal?.aborted) onAbort();
        else signal?.addEventListener("abort", onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return within(new Promise<null>(() => {}), ms, signal).then(() => undefined);
}
