/**
 * A per-instance budget of bytes held in memory (a weighted semaphore): a request reserves the
 * size of the media it is about to read before reading it, and gives it back when its upstream call
 * ends. Reservations are served first come, first served; one that cannot be served within a short
 * wait is refused with 503 and `Retry-After`, since an instance over the platform's memory limit is
 * killed with every request it holds.
 * @module
 */
import { HttpError } from "../http/mod.ts";

/** Bytes handed out under a fixed capacity. */
export interface ByteBudget {
  /** The budget's size in bytes. */
  readonly capacity: number;
  /** Bytes not reserved right now. */
  available(): number;
  /**
   * Reserves `bytes` (at most the whole capacity: a larger reservation waits until it is alone) and
   * resolves to the function that gives them back (safe to call twice).
   * @throws {HttpError} 503 with `Retry-After` when the bytes are not free within the wait, or
   * `signal` aborts first.
   */
  reserve(bytes: number, signal?: AbortSignal): Promise<() => void>;
}

/** How long a reservation waits, and what `Retry-After` a refused one is told. */
export interface ByteBudgetOptions {
  /** Longest wait for bytes, in ms (default 5000). */
  waitMs?: number;
  /** Seconds a refused caller is told to wait (default 5). */
  retryAfterS?: number;
}

/**
 * Creates a {@linkcode ByteBudget} of `capacity` bytes.
 * @throws {RangeError} when `capacity` is not a positive integer.
 */
export function createByteBudget(capacity: number, options: ByteBudgetOptions = {}): ByteBudget {
  if (!Number.isSafeInteger(capacity) || capacity <= 0) throw new RangeError("capacity must be a positive integer");
  const waitMs = options.waitMs ?? 5000;
  const retryAfterS = options.retryAfterS ?? 5;
  let free = capacity;
  const queue: { bytes: number; grant: () => void }[] = [];

  const give = (bytes: number) => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      free += bytes;
      // First come, first served: a large reservation at the head is not overtaken by smaller ones.
      while (queue.length && queue[0].bytes <= free) {
        const next = queue.shift()!;
        free -= next.bytes;
        next.grant();
      }
    };
  };
  const refused = () =>
    new HttpError(
      503,
      "This instance is holding as much media as it may; retry shortly",
      { retry_after: retryAfterS },
      { "Retry-After": String(retryAfterS) },
    );

  return {
    capacity,
    available: () => free,
    reserve(requested, signal) {
      const bytes = Math.min(Math.max(0, Math.ceil(requested)), capacity);
      if (signal?.aborted) return Promise.reject(refused());
      if (queue.length === 0 && bytes <= free) {
        free -= bytes;
        return Promise.resolve(give(bytes));
      }
      return new Promise((resolve, reject) => {
        const entry = {
          bytes,
          grant: () => {
            clearTimeout(timer);
            signal?.removeEventListener("abort", abandon);
            resolve(give(bytes));
          },
        };
        const abandon = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", abandon);
          queue.splice(queue.indexOf(entry), 1);
          reject(refused());
          // The one that left may have been blocking smaller ones behind it.
          give(0)();
        };
        const timer = setTimeout(abandon, waitMs);
        signal?.addEventListener("abort", abandon, { once: true });
        queue.push(entry);
      });
    },
  };
}
