/**
 * A meter store that grants everything without a database: text-to-image with quotas off, for
 * benchmarks that measure something else (or measure quotas against it).
 * @module
 */
import type { MeterStore } from "../../supabase/functions/_shared/metering/meter.ts";

/** Grants every reservation (unlimited tier) and drops every settlement. */
export const unmeteredStore: MeterStore = {
  reserve: () =>
    Promise.resolve({
      granted: true,
      refused: null,
      units: 10,
      tier: "bench",
      day: new Date().toISOString().slice(0, 10),
      requests_per_minute: null,
      requests_remaining: null,
      minute_reset: 60,
      units_per_day: null,
      units_remaining: null,
      day_reset: 86400,
    }),
  settle: () => Promise.resolve(),
};
