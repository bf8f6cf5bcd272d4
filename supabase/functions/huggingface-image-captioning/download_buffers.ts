/**
 * Arrays for image downloads, reused from one job to the next. A finished job's 10 MB array would
 * otherwise wait for the garbage collector while the next job allocates another, and an instance
 * serving a stream of jobs would climb toward its memory limit.
 * @module
 */

/** Hands out arrays and keeps at most `keep` returned ones (one per slot), the largest first. */
export interface DownloadBuffers {
  /** An array of at least `size` bytes (its length may be larger). */
  take(size: number): Uint8Array;
  /** Returns an array no longer in use; it may be handed out again. */
  giveBack(buffer: Uint8Array): void;
}

/** Creates a {@linkcode DownloadBuffers} keeping at most `keep` spare arrays. */
export function createDownloadBuffers(keep: number): DownloadBuffers {
  const spare: Uint8Array[] = [];
  return {
    take(size) {
      const fit = spare.findIndex((b) => b.length >= size);
      return fit >= 0 ? spare.splice(fit, 1)[0] : new Uint8Array(size);
    },
    giveBack(buffer) {
      spare.push(buffer);
      spare.sort((a, b) => b.length - a.length);
      spare.length = Math.min(spare.length, keep);
    },
  };
}
