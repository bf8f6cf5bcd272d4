import assert from "node:assert/strict";
import { acceptOf, readTaskCatalog } from "../../web/src/task_catalog.ts";
import { createTaskContext, describeTask } from "../../supabase/functions/_shared/tasks/handler.ts";
import { TASKS } from "../../supabase/functions/_shared/tasks/table.ts";

/** The gateway's own GET description (what `huggingface-inference` answers), from its table of tasks. */
function gatewayDescription(env: Record<string, string> = {}): unknown {
  const ctx = createTaskContext({ SUPABASE_URL: "http://127.0.0.1:54321", ...env });
  const prefix = "/functions/v1/huggingface-inference";
  // Through JSON, as the page receives it.
  return JSON.parse(
    JSON.stringify({ tasks: Object.keys(TASKS).map((id) => describeTask(TASKS[id], ctx, `${prefix}/${id}`)) }),
  );
}

Deno.test("readTaskCatalog reads the gateway's real description: every task, in its order", () => {
  const tasks = readTaskCatalog(gatewayDescription());
  assert.deepEqual(tasks.map((t) => t.task), Object.keys(TASKS));
  assert.ok(tasks.length >= 10);
  for (const t of tasks) {
    assert.ok(t.summary, `${t.task} has a summary`);
    if (t.available) {
      assert.ok(t.models.length && t.cost !== undefined && t.output, `${t.task} has models, cost, output`);
    }
  }
});

Deno.test("readTaskCatalog: a JSON task with its fields, example, models and cost", () => {
  const summarization = readTaskCatalog(gatewayDescription()).find((t) => t.task === "summarization")!;
  assert.equal(summarization.input, "json");
  assert.equal(summarization.available, true);
  assert.equal(summarization.reason, undefined);
  assert.deepEqual(
    summarization.example,
    TASKS.summarization.input.type === "json" && TASKS.summarization.input.example,
  );
  assert.match(summarization.fields.inputs, /^string, at most \d+ characters/);
  assert.match(summarization.fields.parameters, /^object: \{ .*max_length: integer/);
  assert.deepEqual(summarization.models, ["facebook/bart-large-cnn"]);
  assert.deepEqual(summarization.allowedModels, []);
  assert.equal(summarization.cost, TASKS.summarization.cost);
  assert.equal(summarization.output, `{"summary_text": string}`);
  assert.deepEqual(summarization.contentTypes, []);
});

Deno.test("readTaskCatalog: a media task with its content types and size limit; an allowed model list", () => {
  const tasks = readTaskCatalog(gatewayDescription({
    HF_MAX_AUDIO_BYTES: String(5 * 1024 * 1024),
    HF_ALLOWED_MODELS_AUDIO_CLASSIFICATION: "a/one,b/two",
  }));
  const audio = tasks.find((t) => t.task === "audio-classification")!;
  assert.equal(audio.input, "media");
  assert.equal(audio.media, "audio");
  assert.ok(audio.contentTypes.includes("audio/wav") && audio.contentTypes.every((c) => c.startsWith("audio/")));
  assert.equal(acceptOf(audio), audio.contentTypes.join(","));
  assert.equal(audio.maxBytes, 5 * 1024 * 1024);
  assert.deepEqual(audio.allowedModels, ["a/one", "b/two"]);
  assert.deepEqual(audio.fields, {});
  assert.equal(audio.example, undefined);
  const image = tasks.find((t) => t.task === "image-classification")!;
  assert.ok(acceptOf(image).split(",").every((c) => c.startsWith("image/")));
});

Deno.test("readTaskCatalog: an unavailable task keeps its reason", () => {
  const video = readTaskCatalog(gatewayDescription()).find((t) => t.task === "video-classification")!;
  assert.equal(video.available, false);
  assert.match(video.reason!, /not served/);
  assert.deepEqual(video.models, []);
  assert.equal(video.cost, undefined);
});

Deno.test("readTaskCatalog skips entries without a task name and reads nothing from other answers", () => {
  assert.deepEqual(readTaskCatalog({ tasks: [{ summary: "no name" }, "junk", null] }), []);
  assert.deepEqual(readTaskCatalog(null), []);
  assert.deepEqual(readTaskCatalog({ error: "Invalid JWT" }), []);
  assert.deepEqual(readTaskCatalog([{ task: "bare list" }]), []);
  const [minimal] = readTaskCatalog({ tasks: [{ task: "x", available: false }] });
  assert.equal(minimal.reason, "not available on this project");
  assert.equal(acceptOf({ ...minimal, media: "image" }), "image/*");
});
