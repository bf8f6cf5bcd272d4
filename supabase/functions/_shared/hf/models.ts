/**
 * Which models a task uses: its fallback chain from `HF_MODEL_<TASK>` (or the task's defaults), and
 * the models a caller may pick from `HF_ALLOWED_MODELS_<TASK>`.
 * @module
 */
import { ConfigError, type Env, envString } from "../runtime/mod.ts";
import { HttpError } from "../http/mod.ts";

// A Hub model id: `org/name` (or a bare name), no URL, no path tricks.
const MODEL_ID = /^[\w.-]+(\/[\w.-]+)?$/;

/** The environment-variable suffix of a task id: `text-to-image` → `TEXT_TO_IMAGE`. */
export function envSuffix(task: string): string {
  return task.toUpperCase().replaceAll("-", "_");
}

function modelList(env: Env, name: string): string[] | undefined {
  const raw = envString(env, name);
  if (raw === undefined) return undefined;
  const models = raw.split(",").map((m) => m.trim()).filter(Boolean);
  for (const model of models) {
    if (!MODEL_ID.test(model) || model.includes("..")) throw new ConfigError(`${name} holds an invalid model id`);
  }
  return models.length ? models : undefined;
}

/**
 * The fallback chain of `task`: `HF_MODEL_<TASK>` (comma-separated), else the first of `legacyEnv`
 * that is set, else `defaults`.
 * @throws {ConfigError} when a variable holds an invalid model id.
 */
export function modelChain(env: Env, task: string, defaults: readonly string[], legacyEnv?: string): string[] {
  return modelList(env, `HF_MODEL_${envSuffix(task)}`) ??
    (legacyEnv ? modelList(env, legacyEnv) : undefined) ?? [...defaults];
}

/**
 * The models a caller may choose for `task` (`HF_ALLOWED_MODELS_<TASK>`); none when unset.
 * @throws {ConfigError} when the variable holds an invalid model id.
 */
export function allowedModels(env: Env, task: string): string[] {
  return modelList(env, `HF_ALLOWED_MODELS_${envSuffix(task)}`) ?? [];
}

/**
 * The models to try: the caller's pick (only from `allowed`), else the configured chain.
 * @throws {HttpError} 400 when the caller picked a model that is not allowed; nothing is sent upstream.
 */
export function chooseModels(requested: unknown, chain: readonly string[], allowed: readonly string[]): string[] {
  if (requested === undefined || requested === null) return [...chain];
  if (typeof requested !== "string" || !allowed.includes(requested)) {
    throw new HttpError(
      400,
      allowed.length
        ? `model must be one of: ${allowed.join(", ")}`
        : "model cannot be chosen for this task (no models are allowed)",
      { field: "model" },
    );
  }
  return [requested];
}
