/**
 * A local stand-in for Hugging Face's router, speaking its wire protocol for the `hf-inference`
 * provider as the pinned `@huggingface/inference@4.13.30` sends and checks it:
 * - `POST /hf-inference/models/{org}/{model}`: the model's task (its pipeline, as the Hub knows it)
 *   decides the body and the answer. JSON `{inputs, parameters}` for text tasks, text-to-image,
 *   text-to-speech and image-segmentation (image as base64); raw bytes for image-to-text,
 *   image-classification, object-detection, automatic-speech-recognition and audio-classification.
 *   Answers as the client validates them (e.g. summarization `[{summary_text}]`, text-classification
 *   `[[{label, score}]]`), images as real PNGs and speech as a real WAV made here;
 * - `…/pipeline/feature-extraction`: the same, the route the client takes without an endpoint URL;
 * - `POST …/models/{org}/{model}/v1/chat/completions`: an OpenAI chat completion, plain or streamed
 *   as server-sent events ending with `data: [DONE]`; with an image as a data URL or an http(s) URL it
 *   fetches (as providers do), a caption;
 * - errors as JSON `{"error": "...", "estimated_time"?: n}` with the upstream's status.
 *
 * Replies can be scripted per call (`enqueue`) or drawn at random (`faults`) to test retries.
 * @module
 */
import { makeWav, wavInfo } from "./audio.ts";
import { imageInfo, makePng, tinyJpeg } from "./images.ts";

/** What the fake saw of one request. */
export interface SeenRequest {
  task: FakeTask;
  model: string;
  headers: Headers;
  json?: any;
  bytes?: Uint8Array;
}

/** A scripted answer: a ready response, `"hang"` to never answer, or the usual answer after a delay. */
export type Scripted = Response | "hang" | { delayMs: number };

/** Knobs a test may turn while the fake runs. */
export interface FakeHfOptions {
  /** The token to require; requests without it get 401. */
  token?: string;
  /** Delay before every answer. */
  latencyMs?: number;
  /** Image type text-to-image answers with. */
  imageType?: "png" | "jpeg";
  /** Shape of the image-to-text answer (the endpoint sends either, depending on the model). */
  captionShape?: "object" | "array";
  /** Share of calls (0..1) that fail at random with one of `faultKinds`. */
  faultRate?: number;
  faultKinds?: ("503" | "429" | "500" | "hang")[];
  /** Seed for the fault draw, so a run is repeatable. */
  seed?: number;
  /** While true, every call answers 503 (a stretch of downtime). */
  down?: boolean;
  /** More models and their tasks, beside {@linkcode MODEL_TASKS}. */
  models?: Record<string, FakeTask>;
  /** A streamed chat sends its first chunk, then waits for this before the rest. */
  holdStream?: Promise<unknown>;
  /** Delay between streamed chat chunks. */
  streamChunkDelayMs?: number;
}

/** The tasks the fake serves ("chat" is chat completion). */
export type FakeTask =
  | "chat"
  | "summarization"
  | "translation"
  | "text-classification"
  | "fill-mask"
  | "feature-extraction"
  | "text-to-image"
  | "text-to-speech"
  | "image-to-text"
  | "image-classification"
  | "object-detection"
  | "image-segmentation"
  | "automatic-speech-recognition"
  | "audio-classification";

/** Models the fake knows, with their task, as the Hub's pipeline tags say. */
export const MODEL_TASKS: Readonly<Record<string, FakeTask>> = {
  "facebook/bart-large-cnn": "summarization",
  "Falconsai/text_summarization": "summarization",
  "google-t5/t5-small": "translation",
  "facebook/nllb-200-distilled-600M": "translation",
  "distilbert/distilbert-base-uncased-finetuned-sst-2-english": "text-classification",
  "google-bert/bert-base-uncased": "fill-mask",
  "FacebookAI/roberta-base": "fill-mask",
  "sentence-transformers/all-MiniLM-L6-v2": "feature-extraction",
  "BAAI/bge-small-en-v1.5": "feature-extraction",
  "hexgrad/Kokoro-82M": "text-to-speech",
  "facebook/mms-tts-eng": "text-to-speech",
  "google/vit-base-patch16-224": "image-classification",
  "microsoft/resnet-50": "image-classification",
  "facebook/detr-resnet-50": "object-detection",
  "hustvl/yolos-tiny": "object-detection",
  "nvidia/segformer-b0-finetuned-ade-512-512": "image-segmentation",
  "facebook/detr-resnet-50-panoptic": "image-segmentation",
  "openai/whisper-large-v3": "automatic-speech-recognition",
  "openai/whisper-small": "automatic-speech-recognition",
  "superb/hubert-large-superb-er": "audio-classification",
  "MIT/ast-finetuned-audioset-10-10-0.4593": "audio-classification",
};

// Tasks whose request body is raw media bytes rather than JSON.
const BINARY_TASKS = new Set<FakeTask>([
  "image-to-text",
  "image-classification",
  "object-detection",
  "automatic-speech-recognition",
  "audio-classification",
]);

/** A running fake. */
export interface FakeHf {
  /** Base URL to use as `HF_BASE_URL`. */
  url: string;
  options: FakeHfOptions;
  seen: SeenRequest[];
  /** How many times each caption was delivered to a waiting caller (more than one: duplicate work). */
  captionsAnswered: Map<string, number>;
  /** Queues answers for the next calls, in order; when the queue is empty the fake answers itself. */
  enqueue(...replies: Scripted[]): void;
  /** Drops the answers still queued. */
  clear(): void;
  stop(): Promise<void>;
}

/** Starts the fake on a free loopback port (or `port`). */
export function startFakeHf(options: FakeHfOptions = {}, port = 0): FakeHf {
  const seen: SeenRequest[] = [];
  const captionsAnswered = new Map<string, number>();
  const queue: Scripted[] = [];
  const hanging = new Set<() => void>();
  let random = mulberry32(options.seed ?? 1);
  let lastSeed = options.seed;

  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const match = /^\/hf-inference\/models\/([^/]+\/[^/]+)(\/pipeline\/[\w-]+)?(\/v1\/chat\/completions)?\/?$/.exec(
      url.pathname,
    );
    if (req.method !== "POST" || !match) return hfError(404, `Not Found: ${url.pathname}`);
    if (options.token && req.headers.get("authorization") !== `Bearer ${options.token}`) {
      return hfError(401, "Invalid credentials in Authorization header");
    }
    const type = req.headers.get("content-type") ?? "";
    const model = match[1];
    // Models the fake does not know keep the old guess: JSON is text-to-image, bytes are a caption.
    const task: FakeTask = match[3]
      ? "chat"
      : (match[2]?.slice("/pipeline/".length) as FakeTask | undefined) ?? options.models?.[model] ??
        MODEL_TASKS[model] ??
        (type.startsWith("application/json") ? "text-to-image" : "image-to-text");
    const record: SeenRequest = { task, model, headers: req.headers };
    if (type.startsWith("application/json")) record.json = await req.json().catch(() => undefined);
    else record.bytes = new Uint8Array(await req.arrayBuffer());
    seen.push(record);

    if (options.latencyMs) await new Promise((r) => setTimeout(r, options.latencyMs));
    if (options.seed !== lastSeed) [random, lastSeed] = [mulberry32(options.seed ?? 1), options.seed];
    let reply: Scripted | undefined = queue.shift();
    if (!reply && options.down) reply = hfError(503, `Model ${record.model} is currently loading`, 5);
    if (!reply && options.faultRate && random() < options.faultRate) {
      const kinds = options.faultKinds ?? ["503", "429", "500", "hang"];
      reply = fault(kinds[Math.floor(random() * kinds.length)]);
    }
    if (reply === "hang") {
      // Answer only when the caller gives up (or the fake stops), like a stuck upstream.
      return await new Promise<Response>((resolve) => {
        const done = () => {
          hanging.delete(done);
          resolve(hfError(504, "hung"));
        };
        hanging.add(done);
        req.signal.addEventListener("abort", done, { once: true });
      });
    }
    if (reply && !(reply instanceof Response)) {
      const { delayMs } = reply as { delayMs: number };
      await new Promise((r) => setTimeout(r, delayMs));
      reply = undefined;
    }
    if (reply) return reply as Response;
    if (BINARY_TASKS.has(task) ? !record.bytes : !record.json) {
      return hfError(400, BINARY_TASKS.has(task) ? "expected raw bytes" : "expected a JSON body");
    }
    return await ANSWERS[task](record, { options, captionsAnswered, signal: req.signal });
  });

  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    options,
    seen,
    captionsAnswered,
    enqueue: (...replies) => void queue.push(...replies),
    clear: () => void queue.splice(0),
    async stop() {
      for (const done of [...hanging]) done();
      await server.shutdown();
    },
  };
}

/** A JSON error as the router sends it. */
export function hfError(status: number, error: string, estimatedTime?: number, headers: HeadersInit = {}): Response {
  const body: Record<string, unknown> = { error };
  if (estimatedTime !== undefined) body.estimated_time = estimatedTime;
  return Response.json(body, { status, headers });
}

function fault(kind: string): Scripted {
  switch (kind) {
    case "503":
      return hfError(503, "Model is currently loading", 1);
    case "429":
      return hfError(429, "Rate limit reached", undefined, { "Retry-After": "1" });
    case "500":
      return hfError(500, "Internal Server Error");
    default:
      return "hang";
  }
}

/** What an answer may use besides the request. */
interface AnswerContext {
  options: FakeHfOptions;
  captionsAnswered: Map<string, number>;
  signal: AbortSignal;
}

type Answer = (record: SeenRequest, ctx: AnswerContext) => Response | Promise<Response>;

/** The input text of a JSON task, or a 400 as the router gives it. */
function inputText(record: SeenRequest): string | Response {
  const inputs = record.json?.inputs;
  return typeof inputs === "string" && inputs.trim() !== ""
    ? inputs
    : hfError(400, "inputs must be a non-empty string");
}

/** Answers per task: each shape is what the client's `hf-inference` helper checks for. */
const ANSWERS: Record<FakeTask, Answer> = {
  async "text-to-image"(record, { options }) {
    const prompt = inputText(record);
    if (prompt instanceof Response) return prompt;
    const { width = 64, height = 64 } = record.json.parameters ?? {};
    return options.imageType === "jpeg"
      ? new Response(tinyJpeg, { headers: { "content-type": "image/jpeg" } })
      : new Response(await pngOfSize(width, height), { headers: { "content-type": "image/png" } });
  },
  async "image-to-text"(record, { options, captionsAnswered, signal }) {
    const caption = await describe(record.bytes!);
    if (!caption) return hfError(400, "cannot identify image file");
    const body = { generated_text: counted(caption, captionsAnswered, signal) };
    return Response.json(options.captionShape === "array" ? [body] : body);
  },
  chat: (record, ctx) => (findImageUrl(record.json) !== undefined ? captionChat(record, ctx) : textChat(record, ctx)),
  summarization(record) {
    const text = inputText(record);
    if (text instanceof Response) return text;
    return Response.json([{ summary_text: text.split(/\s+/).slice(0, 8).join(" ") }]);
  },
  translation(record) {
    const text = inputText(record);
    if (text instanceof Response) return text;
    const target = record.json.parameters?.tgt_lang ?? "fr";
    return Response.json([{ translation_text: `[${target}] ${text}` }]);
  },
  "text-classification"(record) {
    const text = inputText(record);
    if (text instanceof Response) return text;
    const negative = /\b(bad|awful|hate|terrible)\b/i.test(text);
    return Response.json([[
      { label: negative ? "NEGATIVE" : "POSITIVE", score: 0.98 },
      { label: negative ? "POSITIVE" : "NEGATIVE", score: 0.02 },
    ]]);
  },
  "fill-mask"(record) {
    const text = inputText(record);
    if (text instanceof Response) return text;
    if (!text.includes("[MASK]")) return hfError(400, "No mask_token ([MASK]) found on the input");
    const topK = record.json.parameters?.top_k ?? 5;
    const words = ["capital", "heart", "center", "city", "pride", "soul", "jewel"].slice(0, topK);
    return Response.json(words.map((word, i) => ({
      score: Number((0.6 / (i + 1)).toFixed(4)),
      token: 3000 + i,
      token_str: word,
      sequence: text.replace("[MASK]", word),
    })));
  },
  "feature-extraction"(record) {
    const inputs = record.json?.inputs;
    const ok = (t: unknown) => typeof t === "string" && t !== "";
    if (ok(inputs)) return Response.json(embed(inputs));
    if (Array.isArray(inputs) && inputs.length > 0 && inputs.every(ok)) return Response.json(inputs.map(embed));
    return hfError(400, "inputs must be a string or a list of strings");
  },
  "text-to-speech"(record) {
    const text = inputText(record);
    if (text instanceof Response) return text;
    // About a tenth of a second per word, like speech.
    return new Response(makeWav(Math.min(10, 0.1 * text.split(/\s+/).length)), {
      headers: { "content-type": "audio/wav" },
    });
  },
  "image-classification"(record) {
    const info = imageInfo(record.bytes!);
    if (!info) return hfError(400, "cannot identify image file");
    return Response.json([{ label: `${info.type} picture`, score: 0.9 }, { label: "tabby cat", score: 0.1 }]);
  },
  "object-detection"(record) {
    const info = imageInfo(record.bytes!);
    if (!info) return hfError(400, "cannot identify image file");
    return Response.json([{
      label: "cat",
      score: 0.97,
      box: { xmin: 0, ymin: 0, xmax: info.width, ymax: info.height },
    }]);
  },
  async "image-segmentation"(record) {
    const inputs = record.json?.inputs;
    const bytes = typeof inputs === "string" ? Uint8Array.from(atob(inputs), (c) => c.charCodeAt(0)) : undefined;
    const info = bytes && imageInfo(bytes);
    if (!info) return hfError(400, "cannot identify image file");
    const mask = await makePng(info.width, info.height, [255, 255, 255]);
    return Response.json([{ label: "cat", score: 0.95, mask: btoa(String.fromCharCode(...mask)) }]);
  },
  "automatic-speech-recognition"(record) {
    const info = wavInfo(record.bytes!);
    if (!info) return hfError(400, "Malformed soundfile");
    return Response.json({ text: `a ${info.seconds.toFixed(2)} s ${info.sampleRate} Hz recording` });
  },
  "audio-classification"(record) {
    if (!wavInfo(record.bytes!)) return hfError(400, "Malformed soundfile");
    return Response.json([{ label: "neu", score: 0.7 }, { label: "hap", score: 0.3 }]);
  },
};

function counted(caption: string, captionsAnswered: Map<string, number>, signal: AbortSignal) {
  // A caller that gave up (timed out) never receives this answer, so it is not a caption given.
  if (!signal.aborted) captionsAnswered.set(caption, (captionsAnswered.get(caption) ?? 0) + 1);
  return caption;
}

async function captionChat(record: SeenRequest, { captionsAnswered, signal }: AnswerContext): Promise<Response> {
  const bytes = await imageOf(findImageUrl(record.json));
  const caption = bytes ? await describe(bytes) : undefined;
  if (!caption) return hfError(400, "messages must contain a valid image_url");
  counted(caption, captionsAnswered, signal);
  return Response.json(chatCompletion(record.model, caption));
}

function chatCompletion(model: string, content: string) {
  return {
    id: "chatcmpl-fake",
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content } }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  };
}

/** A text chat: the reply echoes the last user message, plain or as server-sent events. */
function textChat(record: SeenRequest, { options }: AnswerContext): Response {
  const messages = record.json?.messages;
  const last = Array.isArray(messages) ? messages.findLast((m: any) => m?.role === "user") : undefined;
  const said = typeof last?.content === "string"
    ? last.content
    : Array.isArray(last?.content)
    ? last.content.map((p: any) => p?.text ?? "").join(" ")
    : "";
  if (!said) return hfError(422, "messages must hold a user message");
  const reply = `You said: ${said}`;
  if (!record.json.stream) return Response.json(chatCompletion(record.model, reply));
  const words = reply.split(" ");
  const encoder = new TextEncoder();
  const event = (delta: Record<string, unknown>, finish: string | null) =>
    encoder.encode(`data: ${
      JSON.stringify({
        id: "chatcmpl-fake",
        object: "chat.completion.chunk",
        created: Math.floor(Date.now() / 1000),
        model: record.model,
        choices: [{ index: 0, delta, finish_reason: finish }],
      })
    }\n\n`);
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      for (const [i, word] of words.entries()) {
        controller.enqueue(event({ role: "assistant", content: (i ? " " : "") + word }, null));
        if (i === 0 && options.holdStream) await options.holdStream;
        if (options.streamChunkDelayMs) await new Promise((r) => setTimeout(r, options.streamChunkDelayMs));
      }
      controller.enqueue(event({}, "stop"));
      controller.enqueue(encoder.encode("data: [DONE]\n\n"));
      controller.close();
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
}

/** A deterministic unit vector of 384 numbers for a text (what all-MiniLM-L6-v2 answers, in shape). */
export function embed(text: string): number[] {
  let seed = 2166136261;
  for (const c of text) seed = Math.imul(seed ^ c.charCodeAt(0), 16777619);
  const next = mulberry32(seed);
  const v = Array.from({ length: 384 }, () => next() * 2 - 1);
  const norm = Math.hypot(...v);
  return v.map((x) => Number((x / norm).toFixed(6)));
}

const pngs = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();
// Encoding once per size keeps the fake cheap enough not to skew a benchmark.
function pngOfSize(width: number, height: number) {
  const key = `${width}x${height}`;
  if (!pngs.has(key)) pngs.set(key, makePng(width, height));
  return pngs.get(key)!;
}

/** The fake's caption: says what the image is, and a digest so each image's caption is its own. */
export async function describe(bytes: Uint8Array): Promise<string | undefined> {
  const info = imageInfo(bytes);
  if (!info) return undefined;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  const hex = [...digest.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `a ${info.width}x${info.height} ${info.type} image ${hex}`;
}

/** The bytes of a data URL, or of an http(s) URL fetched as a provider does; undefined when there are none. */
async function imageOf(url: string | undefined): Promise<Uint8Array | undefined> {
  const data = url && /^data:image\/[\w.+-]+;base64,(.+)$/.exec(url);
  if (data) return (Uint8Array as unknown as { fromBase64(s: string): Uint8Array }).fromBase64(data[1]);
  if (!url || !/^https?:\/\//.test(url)) return undefined;
  const res = await fetch(url).catch(() => undefined);
  if (!res?.ok) {
    await res?.body?.cancel();
    return undefined;
  }
  return new Uint8Array(await res.arrayBuffer());
}

function findImageUrl(body: any): string | undefined {
  for (const message of body?.messages ?? []) {
    for (const part of Array.isArray(message?.content) ? message.content : []) {
      if (part?.type === "image_url" && typeof part.image_url?.url === "string") return part.image_url.url;
    }
  }
  return undefined;
}

// A small seeded PRNG so fault runs are repeatable.
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

if (import.meta.main) {
  // `deno task fake-hf`: a local Hugging Face for `deno task dev` (HF_BASE_URL=http://127.0.0.1:8787).
  const port = Number(Deno.env.get("FAKE_HF_PORT") ?? 8787);
  const fake = startFakeHf({ latencyMs: Number(Deno.env.get("FAKE_HF_LATENCY_MS") ?? 0) }, port);
  console.log(`fake Hugging Face listening on ${fake.url} (any token accepted)`);
}
