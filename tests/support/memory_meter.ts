/**
 * An in-memory {@linkcode MeterStore} with the SQL functions' rules (per-minute requests, per-day
 * units, the project ceiling, refunds), for unit tests of the middleware without a database. The
 * real functions are tested on PostgreSQL in tests/quotas/.
 * @module
 */
import type { MeterStore, Reservation, Settlement } from "../../supabase/functions/_shared/metering/meter.ts";

/** Limits of a tier; null is unlimited. */
export interface TierLimits {
  requests_per_minute: number | null;
  units_per_day: number | null;
}

/** A memory store and what it saw. */
export interface MemoryMeterStore extends MeterStore {
  tiers: Record<string, TierLimits>;
  costs: Record<string, number>;
  ceiling: number | null;
  /** While true, every call throws as an unreachable database does. */
  down: boolean;
  reserved: { key: string | null; userId: string | null; tier: string | null; task: string }[];
  settled: Settlement[];
  counters: Map<string, { requests: number; units: number }>;
}

const TODAY = "2026-12-01";

/** Builds a store with the migration's default tiers and a text-to-image cost of 10. */
export function createMemoryMeterStore(): MemoryMeterStore {
  const store: MemoryMeterStore = {
    tiers: {
      anonymous: { requests_per_minute: 5, units_per_day: 100 },
      authenticated: { requests_per_minute: 20, units_per_day: 1000 },
    },
    costs: { "text-to-image": 10 },
    ceiling: null,
    down: false,
    reserved: [],
    settled: [],
    counters: new Map(),
    reserve(request) {
      if (store.down) return Promise.reject(new TypeError("fetch failed"));
      store.reserved.push(request);
      const cost = store.costs[request.task] ?? 1;
      const tier = request.key === null ? undefined : store.tiers[request.tier ?? ""];
      if (request.key !== null && !tier) {
        return Promise.reject(new Error(`inference tier ${request.tier} does not exist`));
      }
      const counter = (key: string) =>
        store.counters.get(key) ?? store.counters.set(key, { requests: 0, units: 0 }).get(key)!;
      let refused: Reservation["refused"] = null;
      const mine = request.key === null ? undefined : counter(request.key);
      if (mine && tier) {
        if (tier.requests_per_minute !== null && mine.requests >= tier.requests_per_minute) {
          refused = "requests_per_minute";
        } else if (tier.units_per_day !== null && mine.units + cost > tier.units_per_day) refused = "units_per_day";
      }
      const project = counter("project");
      if (!refused && store.ceiling !== null && project.units + cost > store.ceiling) refused = "project_units_per_day";
      if (!refused) {
        if (mine) {
          mine.requests++;
          mine.units += cost;
        }
        project.units += cost;
      }
      return Promise.resolve({
        granted: refused === null,
        refused,
        units: refused ? 0 : cost,
        tier: request.key === null ? null : request.tier,
        day: TODAY,
        requests_per_minute: tier?.requests_per_minute ?? null,
        requests_remaining: tier?.requests_per_minute == null ? null : tier.requests_per_minute - mine!.requests,
        minute_reset: 42,
        units_per_day: tier?.units_per_day ?? null,
        units_remaining: tier?.units_per_day == null ? null : tier.units_per_day - mine!.units,
        day_reset: 3600,
      });
    },
    settle(settlements) {
      if (store.down) return Promise.reject(new TypeError("fetch failed"));
      for (const s of settlements) settleOne(s);
      return Promise.resolve();
    },
  };
  const settleOne = (s: Settlement) => {
    store.settled.push(s);
    const charged = s.charge ? (s.reserved || (store.costs[s.task] ?? 1)) : 0;
    const delta = charged - s.reserved;
    if (s.key !== null && store.counters.has(s.key)) store.counters.get(s.key)!.units += delta;
    const project = store.counters.get("project") ?? { requests: 0, units: 0 };
    project.units += delta;
    store.counters.set("project", project);
  };
  return store;
}
