/**
 * Quota windows are fixed UTC minutes: a test that counts per-minute requests must not straddle two.
 * @module
 */

/** Waits out the last seconds of a UTC minute, so what follows runs within one window. */
export async function awayFromMinuteEdge(marginMs = 10_000): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < marginMs) await new Promise((resolve) => setTimeout(resolve, left + 200));
}
