/// <reference lib="dom" />
/**
 * Other tasks: a form built from the `huggingface-inference` gateway's `GET` description. The
 * panel stays hidden where that function is not deployed (404).
 * @module
 */
import { type AppContext, functionHeaders } from "./app_context.ts";
import { byId, el, networkMessage, say } from "./dom.ts";
import { readFunctionError } from "./function_errors.ts";
import { readTaskCatalog, type TaskInfo } from "./task_catalog.ts";

const GATEWAY = "huggingface-inference";

/** Loads the description and builds the form; hides the panel when the gateway is absent. */
export async function loadTasks(ctx: AppContext): Promise<void> {
  const panel = byId("tasks-panel");
  const message = byId("task-message");
  let res: Response;
  try {
    res = await fetch(`${ctx.url}/functions/v1/${GATEWAY}`, { headers: await functionHeaders(ctx) });
  } catch {
    // A gateway that answers without CORS headers (e.g. a bare 404) is a failed fetch here.
    panel.hidden = true;
    document.body.dataset.tasks = "absent";
    return;
  }
  if (res.status === 404) {
    await res.body?.cancel();
    panel.hidden = true;
    document.body.dataset.tasks = "absent";
    return;
  }
  panel.hidden = false;
  document.body.dataset.tasks = "shown";
  if (!res.ok) return say(message, `The task list is unavailable: ${(await readFunctionError(res)).message}`, "error");
  const tasks = readTaskCatalog(await res.json().catch(() => null));
  if (!tasks.length) return say(message, "The gateway describes no tasks.", "error");
  buildForm(ctx, tasks);
}

function buildForm(ctx: AppContext, tasks: TaskInfo[]): void {
  const select = byId<HTMLSelectElement>("task-select");
  const form = byId<HTMLFormElement>("task-form");
  const message = byId("task-message");
  const output = byId("task-output");
  select.replaceChildren(
    ...tasks.map((t) => el("option", { value: t.task, ...(t.available ? {} : { disabled: "" }) }, labelOf(t))),
  );
  const current = () => tasks.find((t) => t.task === select.value) ?? tasks[0];
  const show = () => {
    const task = current();
    const models = task.models.length ? task.models.join(", ") : "default";
    const cost = task.cost !== undefined ? ` · cost: ${task.cost} unit${task.cost === 1 ? "" : "s"}` : "";
    byId("task-info").textContent = `Input: ${
      task.input === "media" ? task.accept ?? "a file" : "JSON"
    } · output: ${task.output} · model: ${models}${cost}${task.note ? ` · ${task.note}` : ""}`;
    byId("task-json-label").hidden = task.input !== "json";
    byId("task-file-label").hidden = task.input !== "media";
    const file = byId<HTMLInputElement>("task-file");
    file.accept = task.accept ?? "";
    const json = byId<HTMLTextAreaElement>("task-json");
    json.value = JSON.stringify(task.example ?? { inputs: "" }, null, 2);
  };
  const firstAvailable = tasks.find((t) => t.available);
  if (firstAvailable) select.value = firstAvailable.task;
  select.onchange = show;
  show();

  form.onsubmit = async (event) => {
    event.preventDefault();
    const task = current();
    let body: BodyInit;
    let type: string;
    if (task.input === "media") {
      const file = byId<HTMLInputElement>("task-file").files?.[0];
      if (!file) return say(message, "Choose a file first.", "error");
      body = file;
      type = file.type || "application/octet-stream";
    } else {
      const text = byId<HTMLTextAreaElement>("task-json").value;
      try {
        JSON.parse(text);
      } catch {
        return say(message, "The input is not valid JSON.", "error");
      }
      body = text;
      type = "application/json";
    }
    say(message, "Running…");
    output.replaceChildren();
    try {
      const res = await fetch(`${ctx.url}/functions/v1/${GATEWAY}/${encodeURIComponent(task.task)}`, {
        method: "POST",
        headers: await functionHeaders(ctx, { "content-type": type }),
        body,
      });
      if (!res.ok) return say(message, (await readFunctionError(res)).message, "error");
      const contentType = res.headers.get("content-type") ?? "";
      const model = res.headers.get("x-model");
      if (contentType.startsWith("image/") || contentType.startsWith("audio/")) {
        const url = URL.createObjectURL(await res.blob());
        output.append(
          contentType.startsWith("image/") ? el("img", { src: url, alt: `${task.task} output` }) : el("audio", {
            src: url,
            controls: "",
          }),
        );
      } else {
        const text = await res.text();
        let shown = text;
        try {
          shown = JSON.stringify(JSON.parse(text), null, 2);
        } catch { /* text or a stream: shown as it came */ }
        output.append(el("pre", { text: shown }));
      }
      say(message, model ? `Done (model: ${model}).` : "Done.", "ok");
    } catch (error) {
      say(message, networkMessage(error), "error");
    }
  };
}

function labelOf(task: TaskInfo): string {
  return task.available ? task.task : `${task.task} (unavailable)`;
}
