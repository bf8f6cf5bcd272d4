/**
 * Quotas and the usage log: the `meter(task)` middleware and the stores it reserves and settles in.
 * @module
 */
export { createMeter, type MeterDeps } from "./meter.ts";
export { createRpcMeterStore, type Reservation } from "./store.ts";
