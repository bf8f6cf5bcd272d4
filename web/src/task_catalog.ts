/**
 * Reads the `huggingface-inference` gateway's `GET` description (`describeTask` in
 * `supabase/functions/_shared/tasks/handler.ts`) into the shape the "Other tasks" form is built from:
 * `{tasks: [{task, path, summary, available, reason?, method, input: {type: "json", fields, example}
 * | {type: "media", media, content_types, max_bytes, …}, output, models, allowed_models, cost_units}]}`.
 *
 * @module
 */

/** A task the form can offer. */
export interface TaskInfo {
  task: string;
  /** One line on what the task does. */
  summary: string;
  /** False for a task the gateway lists but cannot serve (it answers 501); `reason` says why. */
  available: boolean;
  reason?: string;
  /** `json`: a JSON body; `media`: the file itself as the body. */
  input: "json" | "media";
  /** JSON input: each field and the rule it must meet, as the gateway words it. */
  fields: Record<string, string>;
  /** JSON input: a body to start from. */
  example?: Record<string, unknown>;
  /** Media input: `image` or `audio`. */
  media?: string;
  /** Media input: the accepted content types. */
  contentTypes: string[];
  /** Media input: the largest file the gateway accepts. */
  maxBytes?: number;
  /** What comes back, as the gateway words it (a JSON shape, or "image bytes …"). */
  output: string;
  /** The models tried in order. */
  models: string[];
  /** Models a caller may pick with `model`; empty when only the configured ones run. */
  allowedModels: string[];
  /** Units one successful call costs. */
  cost?: number;
}

/** Reads a `GET /huggingface-inference` answer; entries without a task name are skipped; throws nothing. */
export function readTaskCatalog(description: unknown): TaskInfo[] {
  const list = isObject(description) && Array.isArray(description.tasks) ? description.tasks : [];
  const tasks: TaskInfo[] = [];
  for (const entry of list) {
    if (!isObject(entry) || !str(entry.task)) continue;
    const input = isObject(entry.input) ? entry.input : {};
    const available = entry.available !== false;
    tasks.push({
      task: entry.task,
      summary: str(entry.summary) ?? "",
      available,
      reason: available ? undefined : str(entry.reason) ?? "not available on this project",
      input: input.type === "media" ? "media" : "json",
      fields: isObject(input.fields) ? stringValues(input.fields) : {},
      example: isObject(input.example) ? input.example : undefined,
      media: str(input.media),
      contentTypes: strings(input.content_types),
      maxBytes: num(input.max_bytes),
      output: str(entry.output) ?? "",
      models: strings(entry.models),
      allowedModels: strings(entry.allowed_models),
      cost: num(entry.cost_units),
    });
  }
  return tasks;
}

/** The `accept` attribute for a media task's file input (its content types, else `image/*` or `audio/*`). */
export function acceptOf(task: TaskInfo): string {
  if (task.contentTypes.length) return task.contentTypes.join(",");
  return task.media ? `${task.media}/*` : "";
}

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v ? v : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string" && x !== "") : [];
}

function stringValues(o: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => typeof v === "string")) as Record<string, string>;
}
