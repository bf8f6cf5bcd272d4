/**
 * Which inference calls may be answered from the result cache: a table of tasks and their rule.
 *
 * A result is cached only when it depends on nothing but the input, the parameters and the
 * model, so that replaying it is indistinguishable from calling again:
 * - `always`: the task is deterministic (classification, extraction, transcription, ...);
 * - `seeded`: a sampling task is deterministic only for a fixed integer `seed`, and only on a
 *   model that honours it (list the ones that do not in `unseededModels`);
 * - `greedy`: text generation is deterministic only with `temperature: 0`, and a streamed answer
 *   is never cached (it is consumed token by token, and a cut stream would be half an answer).
 * A task missing from the table is never cached.
 * @module
 */

/** How a task's calls qualify for the cache. */
export type CacheRule = "always" | "seeded" | "greedy";

/** The cache rule of every cacheable gateway task; adding a task is adding a row. */
export const CACHE_RULES: Readonly<Record<string, CacheRule>> = {
  "summarization": "always",
  "translation": "always",
  "text-classification": "always",
  "fill-mask": "always",
  "feature-extraction": "always",
  "image-to-text": "always",
  "image-classification": "always",
  "object-detection": "always",
  "image-segmentation": "always",
  "automatic-speech-recognition": "always",
  "audio-classification": "always",
  "text-to-image": "seeded",
  "text-to-speech": "seeded",
  "chat-completion": "greedy",
  "text-generation": "greedy",
};

/** What the cache does with one call. */
export interface CacheDecision {
  /** Whether the call goes through the cache at all. */
  cacheable: boolean;
  /** `Cache-Control: no-cache`: skip the lookup (call upstream), but store the fresh answer. */
  bypassLookup: boolean;
  /** Why, in a few words (for logs and tests). */
  reason: string;
}

/** Options of {@linkcode cacheDecision}. */
export interface CachePolicyOptions {
  /** Models whose output varies even with a fixed seed; their seeded calls are not cached. */
  unseededModels?: ReadonlySet<string>;
}

/**
 * Decides whether a call is cached. `parameters` is the call's parameter object; for chat the
 * OpenAI-style top-level fields (`temperature`, `stream`) may be passed in it too. `headers` are
 * the caller's request headers: `Cache-Control: no-cache` bypasses the lookup, `no-store` skips
 * the cache entirely. Never throws.
 */
export function cacheDecision(
  task: string,
  model: string,
  parameters: Record<string, unknown> | undefined,
  headers: Headers = new Headers(),
  options: CachePolicyOptions = {},
): CacheDecision {
  const directives = cacheControl(headers);
  const no = (reason: string): CacheDecision => ({ cacheable: false, bypassLookup: false, reason });
  if (directives.has("no-store")) return no("the caller sent Cache-Control: no-store");
  const rule = Object.hasOwn(CACHE_RULES, task) ? CACHE_RULES[task] : undefined;
  if (!rule) return no(`${task} is not a cached task`);
  const params = parameters ?? {};
  if (rule === "seeded") {
    if (!Number.isInteger(params.seed)) return no(`${task} without a fixed integer seed is random`);
    if (options.unseededModels?.has(model)) return no(`${model} does not honour its seed`);
  }
  if (rule === "greedy") {
    if (params.stream === true) return no("a streamed answer is not cached");
    if (params.temperature !== 0) return no(`${task} is sampled unless temperature is 0`);
  }
  const bypassLookup = directives.has("no-cache");
  return { cacheable: true, bypassLookup, reason: bypassLookup ? "the caller sent Cache-Control: no-cache" : rule };
}

/** The caller's `Cache-Control` directives, lower-cased, without their values. */
function cacheControl(headers: Headers): Set<string> {
  const value = headers.get("cache-control") ?? "";
  return new Set(value.split(",").map((d) => d.split("=")[0].trim().toLowerCase()).filter(Boolean));
}
