/**
 * `text-to-image`: POST a prompt, get the image back. Served by the gateway's `text-to-image` task
 * (`_shared/tasks.ts`), so both URLs share one contract and one implementation.
 * @module
 */
import { authConfigFromEnv, createBearerVerifier } from "../_shared/auth.ts";
import { cors } from "../_shared/cors.ts";
import { configured, type Env } from "../_shared/env.ts";
import { bearerGuard } from "../_shared/guard.ts";
import { allowMethods, catchErrors, compose, type Handler } from "../_shared/http.ts";
import type { HfDeps } from "../_shared/huggingface.ts";
import { createTaskContext, taskHandler } from "../_shared/task_http.ts";
import { TASKS } from "../_shared/tasks.ts";

/** Builds the handler from an environment; `deps.fetch` replaces the upstream in tests. */
export function createHandler(env: Env, deps: HfDeps = {}): Handler {
  const verifyBearer = configured(() => createBearerVerifier(authConfigFromEnv(env)));
  const ctx = createTaskContext(env, deps);

  return compose(
    cors,
    catchErrors,
    allowMethods("POST"),
    bearerGuard(verifyBearer),
    taskHandler(TASKS["text-to-image"], ctx),
  );
}
