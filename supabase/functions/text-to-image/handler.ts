/**
 * `text-to-image`: POST a prompt, get the image back. Served by the gateway's `text-to-image` task
 * (`_shared/tasks/table.ts`), so both URLs share one contract and one implementation.
 * @module
 */
import { allowMethods, catchErrors, compose, cors, type Handler } from "../_shared/http/mod.ts";
import type { Env } from "../_shared/runtime/mod.ts";
import type { HfDeps } from "../_shared/hf/mod.ts";
import { createMeter, type MeterDeps } from "../_shared/metering/mod.ts";
import { type CacheDeps, createTaskContext, taskHandler, TASKS } from "../_shared/tasks/mod.ts";

/**
 * Builds the handler from an environment; `deps.fetch` replaces the upstream, `deps.meterStore` the
 * database and `deps.resultCache` the result cache in tests.
 */
export function createHandler(env: Env, deps: HfDeps & MeterDeps & CacheDeps = {}): Handler {
  const meter = createMeter(env, deps);
  const ctx = createTaskContext(env, deps);

  // meter: only signed-in callers, within their quota; settled from the answer.
  return compose(
    cors,
    catchErrors,
    allowMethods("POST"),
    meter("text-to-image"),
    taskHandler(TASKS["text-to-image"], ctx),
  );
}
