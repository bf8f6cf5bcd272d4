/**
 * `huggingface-inference`: every Hugging Face task of the guide behind one function.
 * `POST /huggingface-inference/<task>` runs a task; `GET /huggingface-inference[/<task>]` describes them.
 * @module
 */
import {
  allowMethods,
  catchErrors,
  compose,
  cors,
  type Handler,
  HttpError,
  type Middleware,
} from "../_shared/http/mod.ts";
import type { Env } from "../_shared/runtime/mod.ts";
import type { HfDeps } from "../_shared/hf/mod.ts";
import { createIdentify, type IdentifyDeps } from "../_shared/identity/mod.ts";
import { createMeter, type MeterDeps } from "../_shared/metering/mod.ts";
import {
  type CacheDeps,
  createTaskContext,
  describeTask,
  parseTask,
  runTask,
  taskHandler,
  TASKS,
} from "../_shared/tasks/mod.ts";

const NAME = "huggingface-inference";
// The platform passes `/huggingface-inference/<task>`; the local gateway passes `/functions/v1/…`.
const ROUTE = new RegExp(`^(.*/${NAME})(?:/([^/]+))?/?$`);

/** Test and merge seams: the upstream `fetch`, the meter's store, the result cache, and the check each task's POST runs first. */
export interface InferenceDeps extends HfDeps, IdentifyDeps, MeterDeps, CacheDeps {
  /** Returns the middleware between a task's checked input and its call (default: the quota meter). */
  guard?: (task: string) => Middleware;
}

/** Builds the handler from an environment. */
export function createHandler(env: Env, deps: InferenceDeps = {}): Handler {
  const identify = createIdentify(env, deps);
  const guard = deps.guard ?? createMeter(env, deps);
  const ctx = createTaskContext(env, deps);
  // One route per task (a table, not a chain of ifs): who calls, what they ask (checked), what it
  // costs, then the call, so a refused or bad request pays nothing. An unavailable task answers 501
  // before anything else, so it is never metered.
  const routes = new Map(
    Object.values(TASKS).map((task) => [
      task.id,
      task.unavailable
        ? taskHandler(task, ctx)
        : compose(identify, parseTask(task, ctx), guard(task.id), runTask(task, ctx)),
    ]),
  );
  const describe = (prefix: string, id: string) => describeTask(TASKS[id], ctx, `${prefix}/${id}`);

  return compose(cors, catchErrors, allowMethods("GET", "POST"), (req) => {
    const match = ROUTE.exec(new URL(req.url).pathname);
    if (!match) throw new HttpError(404, `Not found; use /${NAME}/<task>`);
    const [, prefix, id] = match;
    if (id !== undefined && !Object.hasOwn(TASKS, id)) {
      throw new HttpError(404, `Unknown task ${id}; GET /${NAME} lists them`, { tasks: Object.keys(TASKS) });
    }
    if (req.method === "GET") {
      return Promise.resolve(
        Response.json(id ? describe(prefix, id) : { tasks: Object.keys(TASKS).map((t) => describe(prefix, t)) }),
      );
    }
    if (id === undefined) throw new HttpError(404, `POST to /${NAME}/<task>; GET /${NAME} lists them`);
    return routes.get(id)!(req);
  });
}
