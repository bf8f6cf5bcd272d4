/**
 * `text-to-image`: POST a prompt, get the image back. Served by the gateway's `text-to-image` task
 * (`_shared/tasks/table.ts`), so both URLs share one contract and one implementation.
 * @module
 */
import { allowMethods, catchErrors, compose, cors, type Handler } from "../_shared/http/mod.ts";
import { createIdentify, type IdentifyDeps } from "../_shared/identity/mod.ts";
import type { Env } from "../_shared/runtime/mod.ts";
import type { HfDeps } from "../_shared/hf/mod.ts";
import { createMeter, type MeterDeps } from "../_shared/metering/mod.ts";
import { type CacheDeps, createTaskContext, parseTask, runTask, TASKS } from "../_shared/tasks/mod.ts";

const TASK = TASKS["text-to-image"];

/**
 * Builds the handler from an environment; `deps.fetch` replaces the upstream, `deps.meterStore` the
 * database and `deps.resultCache` the result cache in tests.
 */
export function createHandler(env: Env, deps: HfDeps & IdentifyDeps & MeterDeps & CacheDeps = {}): Handler {
  const identify = createIdentify(env, deps);
  const meter = createMeter(env, deps);
  const ctx = createTaskContext(env, deps);

  // Who calls, what they ask (checked), what it costs, then the call: a refused or bad request pays nothing.
  return compose(
    cors,
    catchErrors,
    allowMethods("POST"),
    identify,
    parseTask(TASK, ctx),
    meter(TASK.id),
    runTask(TASK, ctx),
  );
}
