/// <reference lib="dom" />
/**
 * Other tasks: a form built from the `huggingface-inference` gateway's `GET` description, which
 * runs a task as the signed-in user and shows its answer, the model (`X-Model`) and the quota left.
 * The panel stays hidden where that function is not deployed (404, or an answer without CORS).
 * @module
 */
import { type AppContext, functionHeaders } from "./app_context.ts";
import { byId, el, networkMessage, say } from "./dom.ts";
import { readFunctionError } from "./function_errors.ts";
import { describeQuotas, parseRateLimit } from "./rate_limit.ts";
import { acceptOf, readTaskCatalog, type TaskInfo } from "./task_catalog.ts";

const GATEWAY = "huggingface-inference";

/** Loads the description and builds the form; hides the panel when the gateway is absent. */
export async function loadTasks(ctx: AppContext): Promise<void> {
  const panel = byId("tasks-panel");
  const message = byId("task-message");
  let res: Response;
  try {
    res = await fetch(`${ctx.url}/functions/v1/${GATEWAY}`, { headers: await functionHeaders(ctx) });
  } catch {
    // A function that is not deployed answers without CORS headers: a failed fetch here.
    return hide(panel);
  }
  if (res.status === 404) {
    await res.body?.cancel();
    return hide(panel);
  }
  panel.hidden = false;
  document.body.dataset.tasks = "shown";
  if (!res.ok) return say(message, `The task list is unavailable: ${(await readFunctionError(res)).message}`, "error");
  const tasks = readTaskCatalog(await res.json().catch(() => null));
  if (!tasks.length) return say(message, "The gateway describes no tasks.", "error");
  buildForm(ctx, tasks);
}

function hide(panel: HTMLElement): void {
  panel.hidden = true;
  document.body.dataset.tasks = "absent";
}

function buildForm(ctx: AppContext, tasks: TaskInfo[]): void {
  const select = byId<HTMLSelectElement>("task-select");
  const form = byId<HTMLFormElement>("task-form");
  const run = byId<HTMLButtonElement>("task-run");
  const modelSelect = byId<HTMLSelectElement>("task-model");
  const message = byId("task-message");
  const output = byId("task-output");
  // Unavailable tasks stay selectable, so a person can read why.
  select.replaceChildren(
    ...tasks.map((t) => el("option", { value: t.task }, t.available ? t.task : `${t.task} (unavailable)`)),
  );
  const current = () => tasks.find((t) => t.task === select.value) ?? tasks[0];
  const show = () => {
    const task = current();
    byId("task-summary").textContent = task.summary;
    byId("task-info").replaceChildren(...facts(infoOf(task)));
    // `model` is the Model picker's, shown only when the task allows a choice.
    const fields = Object.entries(task.fields).filter(([name]) => name !== "model");
    byId("task-fields-box").hidden = !fields.length;
    byId("task-fields").replaceChildren(...facts(fields));
    byId("task-model-label").hidden = !task.available || !task.allowedModels.length;
    modelSelect.replaceChildren(
      el("option", { value: "" }, `Configured (${task.models.join(" → ") || "default"})`),
      ...task.allowedModels.map((m) => el("option", { value: m }, m)),
    );
    byId("task-json-label").hidden = !task.available || task.input !== "json";
    byId("task-file-label").hidden = !task.available || task.input !== "media";
    byId<HTMLInputElement>("task-file").accept = acceptOf(task);
    byId<HTMLTextAreaElement>("task-json").value = JSON.stringify(task.example ?? { inputs: "" }, null, 2);
    run.disabled = !task.available;
    say(message, "");
    output.replaceChildren();
  };
  select.value = (tasks.find((t) => t.available) ?? tasks[0]).task;
  select.onchange = show;
  show();

  form.onsubmit = async (event) => {
    event.preventDefault();
    const task = current();
    if (!task.available) return;
    const model = modelSelect.value;
    const url = new URL(`${ctx.url}/functions/v1/${GATEWAY}/${encodeURIComponent(task.task)}`);
    let body: BodyInit;
    let type: string;
    if (task.input === "media") {
      const file = byId<HTMLInputElement>("task-file").files?.[0];
      if (!file) return say(message, "Choose a file first.", "error");
      body = file;
      type = file.type || "application/octet-stream";
      if (model) url.searchParams.set("model", model);
    } else {
      let json: unknown;
      try {
        json = JSON.parse(byId<HTMLTextAreaElement>("task-json").value);
      } catch {
        return say(message, "The input is not valid JSON.", "error");
      }
      body = JSON.stringify(model && isObject(json) ? { ...json, model } : json);
      type = "application/json";
    }
    say(message, "Running…");
    output.replaceChildren();
    run.disabled = true;
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: await functionHeaders(ctx, { "content-type": type }),
        body,
      });
      showQuota(res.headers);
      if (!res.ok) return say(message, (await readFunctionError(res)).message, "error");
      output.append(await answerElement(task, res));
      const used = res.headers.get("x-model");
      say(message, used ? `Done (model: ${used}).` : "Done.", "ok");
    } catch (error) {
      say(message, networkMessage(error), "error");
    } finally {
      run.disabled = false;
    }
  };
}

/** The answer as the page shows it: an image, an audio player, or the JSON/text it came as. */
async function answerElement(task: TaskInfo, res: Response): Promise<HTMLElement> {
  const contentType = res.headers.get("content-type") ?? "";
  if (contentType.startsWith("image/")) {
    return el("img", { src: URL.createObjectURL(await res.blob()), alt: `${task.task} output` });
  }
  if (contentType.startsWith("audio/")) {
    return el("audio", { src: URL.createObjectURL(await res.blob()), controls: "" });
  }
  const text = await res.text();
  let shown = text;
  try {
    shown = JSON.stringify(JSON.parse(text), null, 2);
  } catch { /* text, or a stream of server-sent events: shown as it came */ }
  return el("pre", { text: shown });
}

function showQuota(headers: Headers): void {
  const quota = byId("task-quota");
  const quotas = parseRateLimit(headers);
  quota.hidden = quotas.length === 0;
  quota.textContent = quotas.length ? `Quota: ${describeQuotas(quotas)}` : "";
}

/** What a person needs to call the task: input, output, models, cost (or why it is unavailable). */
function infoOf(task: TaskInfo): [string, string][] {
  if (!task.available) return [["Unavailable", task.reason ?? ""]];
  const input = task.input === "json" ? "JSON (see Fields)" : mediaInput(task);
  const rows: [string, string][] = [["Input", input], ["Output", task.output]];
  rows.push([task.models.length > 1 ? "Models" : "Model", task.models.join(" → ") || "default"]);
  if (task.cost !== undefined) rows.push(["Cost", `${task.cost} unit${task.cost === 1 ? "" : "s"} per call`]);
  return rows;
}

function mediaInput(task: TaskInfo): string {
  const kinds = task.contentTypes.map((t) => t.split("/")[1]?.toUpperCase()).filter(Boolean).join(", ");
  const size = task.maxBytes ? `, up to ${Math.round(task.maxBytes / (1024 * 1024))} MB` : "";
  return `${task.media === "audio" ? "an audio file" : task.media === "image" ? "an image" : "a file"}${
    kinds ? ` (${kinds})` : ""
  }${size}`;
}

/** `<dt>`/`<dd>` pairs. */
function facts(rows: [string, string][]): HTMLElement[] {
  return rows.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })]);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
