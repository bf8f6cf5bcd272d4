/**
 * A closed-loop HTTP load generator: `concurrency` workers, each sending its next request as soon
 * as the previous one finishes, for a fixed time.
 * @module
 */

/** Throughput and latency of one run. */
export interface LoadResult {
  /** Requests completed in the measured window. */
  requests: number;
  /** Requests completed in all, warm-up included. */
  total: number;
  errors: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

/** Runs the load, discarding the first `warmupMs` of results. */
export async function runLoad(
  send: () => Promise<Response>,
  { concurrency, durationMs, warmupMs }: { concurrency: number; durationMs: number; warmupMs: number },
): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let total = 0;
  const start = performance.now();
  const measureFrom = start + warmupMs;
  const end = measureFrom + durationMs;
  const worker = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      let ok = false;
      try {
        const res = await send();
        await res.arrayBuffer();
        ok = res.ok;
      } catch {
        ok = false;
      }
      const t1 = performance.now();
      total++;
      if (t0 >= measureFrom && t1 <= end) {
        if (ok) latencies.push(t1 - t0);
        else errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return {
    requests: latencies.length,
    total,
    errors,
    rps: latencies.length / (durationMs / 1000),
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
  };
}
