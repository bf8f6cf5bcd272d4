/**
 * A counting semaphore, for bounding how much work runs at once.
 * @module
 */

/** Hands out at most `size` slots; `acquire` resolves to the slot's release function. */
export interface Semaphore {
  acquire(): Promise<() => void>;
}

/** Creates a {@linkcode Semaphore} with `size` slots, served first come, first served. */
export function createSemaphore(size: number): Semaphore {
  let active = 0;
  const queue: (() => void)[] = [];
  const release = () => {
    const next = queue.shift();
    if (next) next();
    else active--;
  };
  return {
    acquire() {
      if (active < size) {
        active++;
        return Promise.resolve(once(release));
      }
      return new Promise((resolve) => queue.push(() => resolve(once(release))));
    },
  };
}

// A slot released twice would let an extra caller in.
function once(fn: () => void): () => void {
  let called = false;
  return () => {
    if (!called) {
      called = true;
      fn();
    }
  };
}
