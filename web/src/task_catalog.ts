/**
 * Reads the `huggingface-inference` gateway's `GET` description into one shape the "Other tasks"
 * form is built from. The description gives, per task, its input (JSON or media), its output, the
 * configured model(s) and its cost in units; field names are read leniently so that small
 * differences in the description do not hide a task.
 *
 * @module
 */

/** A task the form can offer. */
export interface TaskInfo {
  task: string;
  /** `json`: a JSON body; `media`: a file sent as the raw body. */
  input: "json" | "media";
  /** For media input: the accepted types (`image/*`, `audio/*`). */
  accept?: string;
  /** An example JSON body to start from. */
  example?: unknown;
  /** What comes back: `json`, `image`, `audio`, `text`, … */
  output: string;
  models: string[];
  /** Units one successful call costs, when given. */
  cost?: number;
  available: boolean;
  /** Why a task is unavailable, or other notes. */
  note?: string;
}

/** Normalises a description (`{tasks: [...]}`, `{tasks: {name: {...}}}`, or a bare list/map); throws nothing. */
export function readTaskCatalog(description: unknown): TaskInfo[] {
  const root = isObject(description) && "tasks" in description ? description.tasks : description;
  const entries: [string | undefined, unknown][] = Array.isArray(root)
    ? root.map((t) => [undefined, t])
    : isObject(root)
    ? Object.entries(root)
    : [];
  const tasks: TaskInfo[] = [];
  for (const [key, value] of entries) {
    if (!isObject(value)) continue;
    const task = str(value.task) ?? str(value.name) ?? str(value.id) ?? key;
    if (!task) continue;
    const input = readInput(value.input ?? value.request);
    const output = readKind(value.output ?? value.response) ?? "json";
    const models = [value.models, value.model].flatMap((m) =>
      Array.isArray(m) ? m.filter((x) => typeof x === "string") : typeof m === "string" ? m.split(",") : []
    ).map((m) => m.trim()).filter(Boolean);
    const cost = num(value.cost) ?? num(value.units) ?? num(value.cost_units) ??
      (isObject(value.cost) ? num(value.cost.units) : undefined);
    const available = value.available !== false && value.status !== "unavailable" && value.implemented !== false;
    tasks.push({
      task,
      ...input,
      output,
      models,
      cost,
      available,
      note: str(value.note) ?? str(value.reason) ?? str(value.description),
    });
  }
  return tasks.sort((a, b) => a.task.localeCompare(b.task));
}

function readInput(input: unknown): Pick<TaskInfo, "input" | "accept" | "example"> {
  const kind = readKind(input) ?? "json";
  const media = /media|image|audio|binary|file|bytes/i.test(kind) && !/json/i.test(kind);
  const accept = isObject(input)
    ? str(input.accept) ?? (Array.isArray(input.accept) ? input.accept.join(",") : undefined) ??
      (Array.isArray(input.content_types) ? input.content_types.join(",") : str(input.content_type))
    : undefined;
  const example = isObject(input) ? input.example ?? input.schema : undefined;
  if (!media) return { input: "json", example };
  return {
    input: "media",
    accept: accept ?? (/audio/i.test(kind) ? "audio/*" : /image/i.test(kind) ? "image/*" : undefined),
  };
}

function readKind(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (isObject(value)) return str(value.kind) ?? str(value.type) ?? str(value.content_type) ?? str(value.media);
  return undefined;
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
