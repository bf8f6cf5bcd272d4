/**
 * A local stand-in for Hugging Face's router, speaking its wire protocol for the `hf-inference`
 * provider (see shared/facts):
 * - `POST /hf-inference/models/{org}/{model}` with JSON `{inputs, parameters}` → image bytes;
 * - the same path with raw image bytes → `{"generated_text"}` or `[{"generated_text"}]`;
 * - `POST …/models/{org}/{model}/v1/chat/completions` (OpenAI body, image as a data URL or an
 *   http(s) URL it fetches, as providers do) → a chat completion;
 * - errors as JSON `{"error": "...", "estimated_time"?: n}` with the upstream's status.
 *
 * Replies can be scripted per call (`enqueue`) or drawn at random (`faults`) to test retries.
 * @module
 */
import { imageInfo, makePng, tinyJpeg } from "./images.ts";

/** What the fake saw of one request. */
export interface SeenRequest {
  task: "text-to-image" | "image-to-text" | "chat";
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
}

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
    const match = /^\/hf-inference\/models\/([^/]+\/[^/]+)(\/v1\/chat\/completions)?\/?$/.exec(url.pathname);
    if (req.method !== "POST" || !match) return hfError(404, `Not Found: ${url.pathname}`);
    if (options.token && req.headers.get("authorization") !== `Bearer ${options.token}`) {
      return hfError(401, "Invalid credentials in Authorization header");
    }
    const type = req.headers.get("content-type") ?? "";
    const task = match[2] ? "chat" : type.startsWith("application/json") ? "text-to-image" : "image-to-text";
    const record: SeenRequest = { task, model: match[1], headers: req.headers };
    if (task === "image-to-text") record.bytes = new Uint8Array(await req.arrayBuffer());
    else record.json = await req.json().catch(() => undefined);
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
    return (reply as Response | undefined) ?? await answer(record, options, captionsAnswered, req.signal);
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

async function answer(
  record: SeenRequest,
  options: FakeHfOptions,
  captionsAnswered: Map<string, number>,
  signal: AbortSignal,
): Promise<Response> {
  const counted = (caption: string) => {
    // A caller that gave up (timed out) never receives this answer, so it is not a caption given.
    if (!signal.aborted) captionsAnswered.set(caption, (captionsAnswered.get(caption) ?? 0) + 1);
    return caption;
  };
  if (record.task === "text-to-image") {
    const prompt = record.json?.inputs;
    if (typeof prompt !== "string" || prompt === "") return hfError(400, "inputs must be a non-empty string");
    const { width = 64, height = 64 } = record.json.parameters ?? {};
    return options.imageType === "jpeg"
      ? new Response(tinyJpeg, { headers: { "content-type": "image/jpeg" } })
      : new Response(await pngOfSize(width, height), { headers: { "content-type": "image/png" } });
  }
  if (record.task === "image-to-text") {
    const caption = await describe(record.bytes!);
    if (!caption) return hfError(400, "cannot identify image file");
    const body = { generated_text: counted(caption) };
    return Response.json(options.captionShape === "array" ? [body] : body);
  }
  const bytes = await imageOf(findImageUrl(record.json));
  const caption = bytes ? await describe(bytes) : undefined;
  if (!caption) return hfError(400, "messages must contain a valid image_url");
  counted(caption);
  return Response.json({
    id: "chatcmpl-fake",
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: record.model,
    choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content: caption } }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  });
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
