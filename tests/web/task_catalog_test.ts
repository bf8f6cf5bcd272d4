import assert from "node:assert/strict";
import { readTaskCatalog } from "../../web/src/task_catalog.ts";

Deno.test("readTaskCatalog reads a list of tasks with input kinds, outputs, models, costs and availability", () => {
  const tasks = readTaskCatalog({
    tasks: [
      {
        task: "summarization",
        input: { kind: "json", example: { inputs: "A long text" } },
        output: { kind: "json" },
        models: ["facebook/bart-large-cnn", "sshleifer/distilbart-cnn-12-6"],
        cost: 1,
      },
      {
        task: "image-classification",
        input: { kind: "media", accept: ["image/*"] },
        output: "json",
        model: "google/vit",
      },
      {
        task: "video-classification",
        input: "media",
        output: "json",
        available: false,
        reason: "no provider serves it",
      },
    ],
  });
  assert.deepEqual(tasks, [
    {
      task: "image-classification",
      input: "media",
      accept: "image/*",
      output: "json",
      models: ["google/vit"],
      cost: undefined,
      available: true,
      note: undefined,
    },
    {
      task: "summarization",
      input: "json",
      example: { inputs: "A long text" },
      output: "json",
      models: ["facebook/bart-large-cnn", "sshleifer/distilbart-cnn-12-6"],
      cost: 1,
      available: true,
      note: undefined,
    },
    {
      task: "video-classification",
      input: "media",
      accept: undefined,
      output: "json",
      models: [],
      cost: undefined,
      available: false,
      note: "no provider serves it",
    },
  ]);
});

Deno.test("readTaskCatalog reads a map keyed by task, with cost objects and audio input; ignores junk", () => {
  const tasks = readTaskCatalog({
    "automatic-speech-recognition": {
      input: { type: "audio" },
      output: "json",
      models: "openai/whisper",
      cost: { units: 2 },
    },
    "text-to-speech": { input: "json", output: { content_type: "audio/wav" } },
    broken: "not an object",
  });
  assert.deepEqual(tasks.map((t) => [t.task, t.input, t.accept, t.output, t.models, t.cost]), [
    ["automatic-speech-recognition", "media", "audio/*", "json", ["openai/whisper"], 2],
    ["text-to-speech", "json", undefined, "audio/wav", [], undefined],
  ]);
  assert.deepEqual(readTaskCatalog(null), []);
  assert.deepEqual(readTaskCatalog({ error: "nope" }), []);
});
