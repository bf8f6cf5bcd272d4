/**
 * Every Hugging Face task the gateway serves, one typed row each: what it takes (JSON fields or
 * media), its parameter rules, its default models, the client call, the shape of its answer and
 * its cost. A new task is a new row; the HTTP side (`handler.ts`) treats them all alike.
 * @module
 */
import { type InferenceClient, InferenceClientProviderOutputError } from "npm:@huggingface/inference@4.13.30";
import {
  type CallOptions,
  type CallTarget,
  type Hf,
  type ImageBytes,
  sendingAsBase64,
  sendingBytes,
  textToImage,
} from "../hf/mod.ts";
import {
  bodyLength,
  boolean,
  either,
  endingWithDone,
  HttpError,
  integer,
  keepingBody,
  listOf,
  type MediaKind,
  number,
  object,
  oneOf,
  type Rule,
  type Rules,
  text,
} from "../http/mod.ts";

/** What a task answers: JSON, or a byte stream with its content type. */
export type TaskAnswer =
  | { json: unknown }
  | { body: ReadableStream<Uint8Array> | Blob; contentType: string; contentLength?: number };

/** A task's input, once validated: the JSON fields, or the media and its parameters. */
export type TaskInput =
  | { kind: "json"; fields: Record<string, unknown> }
  | { kind: "media"; media: ImageBytes; parameters: Record<string, unknown> };

/** How a task is called. */
export type TaskInputSpec =
  | {
    type: "json";
    /** The body's top-level fields (`model` aside). */
    fields: Rules;
    /** Fields that must be present. */
    required?: string[];
    /** Checks across fields (e.g. "one of messages or inputs"); throws 400. */
    check?(fields: Record<string, unknown>): void;
    example: Record<string, unknown>;
  }
  | { type: "media"; media: MediaKind; parameters: Rules }
  | { type: "none" };

/** One task of the gateway. */
export interface TaskDescriptor {
  /** The Hugging Face task id, which is also the route: `/huggingface-inference/<id>`. */
  id: string;
  summary: string;
  input: TaskInputSpec;
  /** The answer, in words (shape or content type). */
  output: string;
  /** Served by providers today; `HF_MODEL_<TASK>` replaces them. */
  defaultModels: readonly string[];
  /** An older variable naming the model (kept for `text-to-image`). */
  legacyModelEnv?: string;
  /** Cost in quota units as seeded in `inference.task_costs` (shown by GET; the database row is what is charged). */
  cost: number;
  /** The largest JSON body accepted. */
  maxJsonBytes?: number;
  /** Why the task cannot be served (it then answers 501). */
  unavailable?: string;
  /** Calls `model` through `hf.run`, so retries, timeouts and the error mapping are shared. */
  run(hf: Hf, model: string, input: TaskInput): Promise<TaskAnswer>;
}

/** The longest text a text task takes, in characters. */
export const MAX_TEXT_LENGTH = 20_000;
/** The longest text-to-image prompt, in characters. */
export const MAX_PROMPT_LENGTH = 2000;

const inputsText = text(MAX_TEXT_LENGTH, { required: true });
const truncation = oneOf("do_not_truncate", "longest_first", "only_first", "only_second");
const generateParameters = object({
  max_length: integer(1, 4096),
  min_length: integer(0, 4096),
  max_new_tokens: integer(1, 4096),
  min_new_tokens: integer(0, 4096),
  num_beams: integer(1, 16),
  do_sample: boolean,
  temperature: number(0, 10),
  top_k: integer(1, 1000),
  top_p: number(0, 1),
  early_stopping: boolean,
});

/** The request and the one client call of a text task that takes `{inputs: string, parameters?}`. */
function textTask(parameters: Rules, example: string): TaskInputSpec {
  return {
    type: "json",
    fields: { inputs: inputsText, parameters: object(parameters) },
    required: ["inputs"],
    example: { inputs: example },
  };
}

type JsonFields = Record<string, unknown> & { inputs?: unknown; parameters?: Record<string, unknown> };
type ClientCall<T> = (client: InferenceClient, target: CallTarget, options: CallOptions) => Promise<T>;

/** A task whose answer is JSON: one client call, then the normaliser that gives it one shape. */
function jsonTask<T>(
  call: (input: TaskInput) => ClientCall<T>,
  normalise: (output: T) => unknown,
): TaskDescriptor["run"] {
  return async (hf, model, input) => ({ json: normalise(await hf.run(model, call(input))) });
}

const fieldsOf = (input: TaskInput): JsonFields => (input.kind === "json" ? input.fields : {});
const mediaOf = (input: TaskInput): { media: ImageBytes; parameters: Record<string, unknown> } => {
  if (input.kind !== "media") throw new Error("media task called without media");
  return input;
};

/**
 * The media for a client call whose body is the media itself: an empty stand-in Blob for the client,
 * and a fetch that sends the bytes, streamed, in its place (a Blob would copy them outside the JS heap).
 */
const sentMedia = (input: TaskInput, fetch: typeof globalThis.fetch) => {
  const { media } = mediaOf(input);
  return { data: new Blob([], { type: media.type }), fetch: sendingBytes(fetch, media) };
};

const labelScore = (x: { label: string; score?: number }) => ({ label: x.label, score: x.score ?? null });

// --- text-generation (chat completion) ----------------------------------------------------------

const chatContent: Rule = {
  describe: `string, or array of {type: "text", text}`,
  check(v) {
    if (typeof v === "string") {
      return v.length > MAX_TEXT_LENGTH ? `must be at most ${MAX_TEXT_LENGTH} characters` : undefined;
    }
    // Only text parts: an image_url part would make the provider fetch a URL the caller chose.
    if (
      Array.isArray(v) && v.length > 0 && v.length <= 32 &&
      v.every((p) =>
        typeof p === "object" && p !== null && p.type === "text" && typeof p.text === "string" &&
        p.text.length <= MAX_TEXT_LENGTH && Object.keys(p).length === 2
      )
    ) return undefined;
    return `must be a string or an array of {"type": "text", "text": string} parts (no URLs)`;
  },
};
const role = oneOf("system", "user", "assistant");
const chatMessage: Rule = {
  describe: `{role: ${role.describe}; content: ${chatContent.describe}}`,
  check(v) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return "must be an object {role, content}";
    const m = v as Record<string, unknown>;
    const extra = Object.keys(m).find((key) => key !== "role" && key !== "content");
    if (extra) return `has an unknown field ${extra}`;
    const roleProblem = role.check(m.role);
    if (roleProblem) return `role ${roleProblem}`;
    const contentProblem = chatContent.check(m.content);
    return contentProblem ? `content ${contentProblem}` : undefined;
  },
};

const chatFields: Rules = {
  messages: listOf(chatMessage, 100),
  inputs: inputsText,
  max_tokens: integer(1, 8192),
  temperature: number(0, 2),
  top_p: number(0, 1),
  seed: integer(0, 2 ** 32 - 1),
  stop: either(text(200), listOf(text(200), 4)),
  frequency_penalty: number(-2, 2),
  presence_penalty: number(-2, 2),
  stream: boolean,
};

/** Chat: `inputs` becomes one user message; `stream` answers server-sent events as they arrive. */
const runChat: TaskDescriptor["run"] = (hf, model, input) => {
  const { messages, inputs, stream, ...settings } = fieldsOf(input);
  const args = { messages: messages ?? [{ role: "user", content: inputs }], ...settings } as any;
  if (!stream) {
    return hf.run(model, async (client, target, options) => ({
      json: await client.chatCompletion({ ...target, ...args }, options),
    }));
  }
  return hf.run(model, async (client, target, options) => {
    const body = keepingBody(options.fetch, (type) => type.startsWith("text/event-stream"));
    // The client sees an empty stream and checks only the status; the caller gets the events.
    for await (const _ of client.chatCompletionStream({ ...target, ...args }, { ...options, fetch: body.fetch })) {
      // nothing: the kept body is forwarded instead
    }
    const upstream = body.kept();
    if (!upstream?.body) throw new InferenceClientProviderOutputError("expected an event stream");
    return { body: endingWithDone(upstream.body), contentType: "text/event-stream; charset=utf-8" };
  });
};

/** A streamed media answer (audio): the upstream body, passed on as it arrives. */
function streamedMedia(kind: string, call: (input: TaskInput) => ClientCall<Blob>): TaskDescriptor["run"] {
  return (hf, model, input) =>
    hf.run(model, async (client, target, options) => {
      const body = keepingBody(options.fetch, (type) => type.startsWith(`${kind}/`));
      const blob = await call(input)(client, target, { ...options, fetch: body.fetch });
      const upstream = body.kept();
      if (upstream?.body) {
        // Media bytes pass as they are (only an event stream gets a closing `[DONE]`).
        return {
          body: upstream.body,
          contentType: upstream.headers.get("content-type")!,
          contentLength: bodyLength(upstream),
        };
      }
      if (!blob.type.startsWith(`${kind}/`)) {
        throw new InferenceClientProviderOutputError(`expected ${kind}, got ${blob.type || "no content type"}`);
      }
      return { body: blob, contentType: blob.type };
    });
}

/** Some image-to-text models answer `[{generated_text}]`, which the pinned client refuses; unwrap it. */
function unwrappingOneElementArrays(base: typeof fetch): typeof fetch {
  return async (url, init) => {
    const res = await base(url, init);
    if (!res.ok || !res.headers.get("content-type")?.startsWith("application/json")) return res;
    const body = await res.json();
    return Response.json(Array.isArray(body) && body.length === 1 ? body[0] : body, { status: res.status });
  };
}

// --- the table ----------------------------------------------------------------------------------

const textToImageFields: Rules = {
  prompt: text(MAX_PROMPT_LENGTH, { required: true }),
  negative_prompt: text(MAX_PROMPT_LENGTH),
  width: integer(64, 2048, 8),
  height: integer(64, 2048, 8),
  num_inference_steps: integer(1, 100),
  guidance_scale: number(0, 50),
  seed: integer(0, 2 ** 32 - 1),
};

/** Every task, by id. */
export const TASKS: Readonly<Record<string, TaskDescriptor>> = Object.fromEntries(
  ([
    {
      id: "summarization",
      summary: "Summarises a text.",
      input: textTask(
        { clean_up_tokenization_spaces: boolean, truncation, generate_parameters: generateParameters },
        "A long article …",
      ),
      output: `{"summary_text": string}`,
      defaultModels: ["facebook/bart-large-cnn"],
      cost: 2,
      run: jsonTask(
        (i) => (c, t, o) =>
          c.summarization({ ...t, inputs: fieldsOf(i).inputs as string, parameters: fieldsOf(i).parameters }, o),
        (out) => ({ summary_text: out.summary_text }),
      ),
    },
    {
      id: "translation",
      summary: "Translates a text (src_lang/tgt_lang for multilingual models).",
      input: textTask({
        src_lang: text(20),
        tgt_lang: text(20),
        clean_up_tokenization_spaces: boolean,
        truncation,
        generate_parameters: generateParameters,
      }, "Hello, world"),
      output: `{"translation_text": string}`,
      defaultModels: ["google-t5/t5-small"],
      cost: 2,
      run: jsonTask(
        (i) => (c, t, o) =>
          c.translation({ ...t, inputs: fieldsOf(i).inputs as string, parameters: fieldsOf(i).parameters }, o),
        (out) => ({ translation_text: (Array.isArray(out) ? out[0] : out).translation_text }),
      ),
    },
    {
      id: "text-classification",
      summary: "Classifies a text (e.g. sentiment).",
      input: textTask({ function_to_apply: oneOf("sigmoid", "softmax", "none"), top_k: integer(1, 100) }, "I love it"),
      output: `[{"label": string, "score": number}]`,
      defaultModels: ["distilbert/distilbert-base-uncased-finetuned-sst-2-english"],
      cost: 1,
      run: jsonTask(
        (i) => (c, t, o) =>
          c.textClassification({ ...t, inputs: fieldsOf(i).inputs as string, parameters: fieldsOf(i).parameters }, o),
        (out) => out.map(labelScore),
      ),
    },
    {
      id: "fill-mask",
      summary: "Fills the mask token of a text (e.g. [MASK]).",
      input: textTask(
        { top_k: integer(1, 100), targets: listOf(text(100, { required: true }), 100) },
        "Paris is the [MASK] of France.",
      ),
      output: `[{"sequence": string, "score": number, "token": number, "token_str": string}]`,
      defaultModels: ["google-bert/bert-base-uncased"],
      cost: 1,
      run: jsonTask(
        (i) => (c, t, o) =>
          c.fillMask({ ...t, inputs: fieldsOf(i).inputs as string, parameters: fieldsOf(i).parameters }, o),
        (out) => out.map(({ sequence, score, token, token_str }) => ({ sequence, score, token, token_str })),
      ),
    },
    {
      id: "text-generation",
      summary: "Generates text as an OpenAI-style chat completion; `stream: true` answers server-sent events.",
      input: {
        type: "json",
        fields: chatFields,
        check(f) {
          if ((f.messages === undefined) === (f.inputs === undefined)) {
            throw new HttpError(400, "Give exactly one of messages or inputs", { field: "messages" });
          }
        },
        example: { messages: [{ role: "user", content: "Write a haiku about Postgres" }], max_tokens: 200 },
      },
      output: "a chat completion (JSON), or text/event-stream chunks ending with data: [DONE]",
      defaultModels: ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct"],
      cost: 5,
      run: runChat,
    },
    {
      id: "feature-extraction",
      summary: "Embeds a text (or up to 64) as vectors, e.g. for pgvector.",
      input: {
        type: "json",
        fields: {
          inputs: either(text(8000, { required: true }), listOf(text(8000, { required: true }), 64)),
          parameters: object({
            normalize: boolean,
            prompt_name: text(100),
            truncate: boolean,
            truncation_direction: oneOf("left", "right"),
          }),
        },
        required: ["inputs"],
        example: { inputs: "The quick brown fox" },
      },
      output: "number[] for one text, number[][] for a list",
      defaultModels: ["sentence-transformers/all-MiniLM-L6-v2"],
      cost: 1,
      run: jsonTask(
        (i) => (c, t, o) =>
          c.featureExtraction({ ...t, inputs: fieldsOf(i).inputs as string, parameters: fieldsOf(i).parameters }, o),
        (out) => out,
      ),
    },
    {
      id: "text-to-image",
      summary: "Generates an image from a prompt (the text-to-image function's contract).",
      input: {
        type: "json",
        fields: textToImageFields,
        required: ["prompt"],
        example: { prompt: "Llama wearing sunglasses" },
      },
      output: "image bytes (image/png or image/jpeg), streamed",
      defaultModels: ["black-forest-labs/FLUX.1-schnell"],
      legacyModelEnv: "TEXT_TO_IMAGE_MODEL",
      cost: 10,
      maxJsonBytes: 64 * 1024,
      run: (hf, model, input) => {
        const { prompt, ...parameters } = fieldsOf(input);
        // Not tied to the request's signal: Deno.serve aborts it once the response starts.
        return textToImage(hf, { prompt: (prompt as string).trim(), parameters }, undefined, model);
      },
    },
    {
      id: "text-to-speech",
      summary: "Speaks a text.",
      input: textTask({}, "Hello from Supabase"),
      output: "audio bytes with the upstream Content-Type, streamed",
      defaultModels: ["hexgrad/Kokoro-82M"],
      cost: 5,
      run: streamedMedia(
        "audio",
        (i) => (c, t, o) => c.textToSpeech({ ...t, inputs: fieldsOf(i).inputs as string }, o),
      ),
    },
    {
      id: "image-to-text",
      summary: "Captions an image.",
      input: { type: "media", media: "image", parameters: {} },
      output: `{"generated_text": string}`,
      defaultModels: ["Salesforce/blip-image-captioning-large"],
      cost: 3,
      run: jsonTask(
        (i) => (c, t, o) => {
          const { data, fetch } = sentMedia(i, o.fetch);
          return c.imageToText({ ...t, data }, { ...o, fetch: unwrappingOneElementArrays(fetch) });
        },
        (out) => ({ generated_text: out.generated_text }),
      ),
    },
    {
      id: "image-classification",
      summary: "Classifies an image.",
      input: { type: "media", media: "image", parameters: {} },
      output: `[{"label": string, "score": number}]`,
      defaultModels: ["google/vit-base-patch16-224"],
      cost: 2,
      run: jsonTask(
        (i) => (c, t, o) => {
          const { data, fetch } = sentMedia(i, o.fetch);
          return c.imageClassification({ ...t, data }, { ...o, fetch });
        },
        (out) => out.map(labelScore),
      ),
    },
    {
      id: "object-detection",
      summary: "Finds objects in an image, with their boxes.",
      input: { type: "media", media: "image", parameters: {} },
      output: `[{"label": string, "score": number, "box": {"xmin", "ymin", "xmax", "ymax"}}]`,
      defaultModels: ["facebook/detr-resnet-50"],
      cost: 3,
      run: jsonTask(
        (i) => (c, t, o) => {
          const { data, fetch } = sentMedia(i, o.fetch);
          return c.objectDetection({ ...t, data }, { ...o, fetch });
        },
        (out) =>
          out.map(({ label, score, box: { xmin, ymin, xmax, ymax } }) => ({
            label,
            score,
            box: { xmin, ymin, xmax, ymax },
          })),
      ),
    },
    {
      id: "image-segmentation",
      summary: "Segments an image; each mask is a base64 PNG.",
      input: {
        type: "media",
        media: "image",
        parameters: {
          mask_threshold: number(0, 1),
          overlap_mask_area_threshold: number(0, 1),
          subtask: oneOf("semantic", "instance", "panoptic"),
          threshold: number(0, 1),
        },
      },
      output: `[{"label": string, "score": number, "mask": base64 PNG}]`,
      defaultModels: ["nvidia/segformer-b0-finetuned-ade-512-512"],
      cost: 4,
      run: jsonTask(
        (i) => (c, t, o) => {
          const { media, parameters } = mediaOf(i);
          const { inputs, fetch } = sendingAsBase64(o.fetch, media);
          return c.imageSegmentation({ ...t, inputs, parameters }, { ...o, fetch });
        },
        (out) => out.map(({ label, score, mask }) => ({ label, score: score ?? null, mask })),
      ),
    },
    {
      id: "automatic-speech-recognition",
      summary: "Transcribes speech.",
      input: { type: "media", media: "audio", parameters: {} },
      output: `{"text": string}`,
      defaultModels: ["openai/whisper-large-v3"],
      cost: 5,
      run: jsonTask(
        (i) => (c, t, o) => {
          const { data, fetch } = sentMedia(i, o.fetch);
          return c.automaticSpeechRecognition({ ...t, inputs: data }, { ...o, fetch });
        },
        (out) => {
          if (typeof out?.text !== "string") throw new InferenceClientProviderOutputError("expected {text: string}");
          return { text: out.text };
        },
      ),
    },
    {
      id: "audio-classification",
      summary: "Classifies a sound (e.g. emotion, event).",
      input: { type: "media", media: "audio", parameters: {} },
      output: `[{"label": string, "score": number}]`,
      defaultModels: ["superb/hubert-large-superb-er"],
      cost: 2,
      run: jsonTask(
        (i) => (c, t, o) => {
          const { data, fetch } = sentMedia(i, o.fetch);
          return c.audioClassification({ ...t, inputs: data }, { ...o, fetch });
        },
        (out) => out.map(labelScore),
      ),
    },
    {
      id: "video-classification",
      summary: "Classifies a video.",
      input: { type: "none" },
      output: "—",
      defaultModels: [],
      cost: 0,
      unavailable:
        "video-classification is not served: no inference provider and no @huggingface/inference version offers it today",
      run: () => Promise.reject(new HttpError(501, "video-classification is not available")),
    },
  ] satisfies TaskDescriptor[]).map((task) => [task.id, task]),
);
