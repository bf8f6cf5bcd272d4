/**
 * Model fallback chains: try the next model when one is gone, unpaid or down, never when the
 * caller's input was refused.
 * @module
 */
import { HfHttpError } from "./errors.ts";

// Upstream answers that say "this model, here, now" is the problem rather than the request.
const MODEL_PROBLEMS = new Set([402, 404, 410]);

/** True when a failed call (retries already spent) should move on to the next model of a chain. */
export function isModelProblem(error: unknown): boolean {
  if (!(error instanceof HfHttpError) || error.upstreamStatus === undefined) return false;
  return MODEL_PROBLEMS.has(error.upstreamStatus) || error.upstreamStatus >= 500;
}

/**
 * Runs `attempt` with each model of `models` in turn until one answers; returns its value and the
 * model that served it.
 * @throws the last model's error, or at once any error that is not a model problem.
 */
export async function runWithFallback<T>(
  models: readonly string[],
  attempt: (model: string) => Promise<T>,
): Promise<{ value: T; model: string }> {
  if (models.length === 0) throw new Error("runWithFallback needs at least one model");
  for (const [i, model] of models.entries()) {
    try {
      return { value: await attempt(model), model };
    } catch (error) {
      const next = models[i + 1];
      if (next === undefined || !isModelProblem(error)) throw error;
      console.warn(`hf ${model}: failed with ${(error as HfHttpError).upstreamStatus}, falling back to ${next}`);
    }
  }
  throw new Error("unreachable");
}
