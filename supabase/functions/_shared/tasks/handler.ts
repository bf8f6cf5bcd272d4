/**
 * A task over HTTP: read and check its input (JSON, a raw media body, or a Storage reference),
 * choose its models, run the fallback chain through the result cache, answer with `X-Model` (and
 * `X-Cache` when the call is cacheable); and describe it for `GET`. The same code serves every row
 * of `table.ts`, `text-to-image` included.
 * @module
 */
import {
  type ByteBudget,
  configured,
  createByteBudget,
  type Env,
  envInt,
  envString,
  requireEnv,
} from "../runtime/mod.ts";
import { cachedInference, type ResultCache } from "../cache/mod.ts";
import {
  allowedModels,
  chooseModels,
  createHf,
  type Hf,
  hfConfigFromEnv,
  type HfDeps,
  modelChain,
  runWithFallback,
} from "../hf/mod.ts";
import {
  ACCEPTED_TYPES,
  canonicalType,
  checkFields,
  checkMedia,
  compose,
  describeRules,
  type Handler,
  HttpError,
  type MediaKind,
  type Middleware,
  object,
  readJson,
  readLimited,
  requestValue,
  type Rules,
  text,
} from "../http/mod.ts";
import { readStorageObject, type StorageAccess } from "./storage_ref.ts";
import { type CacheDeps, cachePartsOf, resultCacheFromEnv } from "./cache.ts";
import type { TaskAnswer, TaskDescriptor, TaskInput } from "./table.ts";

/** A JSON body larger than this is not a task request. */
const MAX_JSON_BYTES = 256 * 1024;

/**
 * Media bytes one instance holds at once by default: one maximum-size audio body, or two images.
 * Each byte held costs several in memory (the body, the copy sent upstream), see docs/gateway.md's figures.
 */
const DEFAULT_MEDIA_MEMORY_BYTES = 20 * 1024 * 1024;

/** What running tasks needs, built lazily from the environment (a bad variable is a 500 naming it). */
export interface TaskContext {
  hf(): Hf;
  storage(): StorageAccess;
  /** The result cache, or undefined when none is configured (calls then go straight upstream). */
  cache: ResultCache | undefined;
  maxMediaBytes(kind: MediaKind): number;
  /** The instance's budget of media bytes held in memory at once (`HF_MEDIA_MEMORY_BYTES`). */
  mediaBudget(): ByteBudget;
  /** The models to try for `task`, and those a caller may pick. */
  models(task: TaskDescriptor): { chain: string[]; allowed: string[] };
}

/**
 * Builds a {@linkcode TaskContext}; `deps.fetch` replaces the Hugging Face upstream in tests, and
 * `deps.resultCache` the cache the environment describes (see `cache.ts`).
 */
export function createTaskContext(env: Env, deps: HfDeps & CacheDeps = {}): TaskContext {
  const hf = configured(() => createHf(hfConfigFromEnv(env), deps));
  const storage = configured((): StorageAccess => ({
    supabaseUrl: requireEnv(env, "SUPABASE_URL"),
    anonKey: envString(env, "SUPABASE_ANON_KEY"),
  }));
  const limits = configured(() => ({
    image: envInt(env, "HF_MAX_IMAGE_BYTES", 10 * 1024 * 1024, { min: 1 }),
    audio: envInt(env, "HF_MAX_AUDIO_BYTES", 10 * 1024 * 1024, { min: 1 }),
  }));
  const mediaBudget = configured(() =>
    createByteBudget(envInt(env, "HF_MEDIA_MEMORY_BYTES", DEFAULT_MEDIA_MEMORY_BYTES, { min: 1 }), {
      waitMs: envInt(env, "HF_MEDIA_WAIT_MS", 5000, { min: 0 }),
    })
  );
  const models = new Map<string, () => { chain: string[]; allowed: string[] }>();
  return {
    hf,
    storage,
    cache: resultCacheFromEnv(env, deps),
    maxMediaBytes: (kind) => limits()[kind],
    mediaBudget,
    models(task) {
      if (!models.has(task.id)) {
        models.set(
          task.id,
          configured(() => ({
            chain: modelChain(env, task.id, task.defaultModels, task.legacyModelEnv),
            allowed: allowedModels(env, task.id),
          })),
        );
      }
      return models.get(task.id)!();
    },
  };
}

/** Headers of every task answer, a cache hit's included: answers are per caller, never for shared HTTP caches. */
const ANSWER_HEADERS = { "Cache-Control": "no-store" };

/** A task request's input, read and checked by {@linkcode parseTask}: what {@linkcode runTask} runs. */
export interface ParsedTask {
  input: TaskInput;
  /** The models to try, in order: the caller's pick (an allowed one), or the task's chain. */
  models: string[];
  /** The media's bytes, for the cache key. */
  mediaBytes?: Uint8Array;
}

/** The input {@linkcode parseTask} read, for the pieces after it (the meter, {@linkcode runTask}). */
export const parsedTaskOf = requestValue<ParsedTask>("parsed task input");

/**
 * The middleware that reads and checks a task's input before anything is paid for: a bad request
 * is answered 4xx here, before the quota meter. It holds the instance's media budget for the
 * media's bytes until the pieces after it have answered.
 * @throws {HttpError} 501 for an unavailable task; what {@linkcode readTaskInput} throws; 400 for a
 * model the caller may not pick; 503 when the media budget stays full.
 */
export function parseTask(task: TaskDescriptor, ctx: TaskContext): Middleware {
  return async (req, next) => {
    if (task.unavailable) throw new HttpError(501, task.unavailable);
    const release = await reserveMedia(task, req, ctx);
    try {
      const { input, model, mediaBytes } = await readTaskInput(task, req, ctx);
      const { chain, allowed } = ctx.models(task);
      parsedTaskOf.set(req, { input, models: chooseModels(model, chain, allowed), mediaBytes });
      return await next(req);
    } finally {
      release();
    }
  };
}

/**
 * The handler that runs a task on the input {@linkcode parseTask} kept: answer from the result cache
 * when the policy allows it (keyed for the first model of the chain, the one that will answer), else
 * run the chain and respond.
 */
export function runTask(task: TaskDescriptor, ctx: TaskContext): Handler {
  return (req) => answer(task, req, ctx, parsedTaskOf.get(req));
}

/** A task's POST with nothing between parsing and running (no quota): {@linkcode parseTask}, then {@linkcode runTask}. */
export function taskHandler(task: TaskDescriptor, ctx: TaskContext): Handler {
  return compose(parseTask(task, ctx), runTask(task, ctx));
}

/**
 * Reserves, before a media body is read, the bytes it will hold until its upstream call ends: its
 * declared length, or the kind's maximum for a Storage reference or an undeclared length. JSON tasks
 * reserve nothing.
 * @throws {HttpError} 503 with `Retry-After` when the instance's budget stays full.
 */
function reserveMedia(task: TaskDescriptor, req: Request, ctx: TaskContext): Promise<() => void> {
  if (task.input.type !== "media") return Promise.resolve(() => {});
  const limit = ctx.maxMediaBytes(task.input.media);
  const declared = Number(req.headers.get("content-length") ?? NaN);
  const isRef = /json/.test(canonicalType(req.headers.get("content-type")));
  const bytes = !isRef && Number.isFinite(declared) ? Math.min(declared, limit) : limit;
  return ctx.mediaBudget().reserve(bytes, req.signal);
}

/** Answers from the cache or the model chain. */
async function answer(task: TaskDescriptor, req: Request, ctx: TaskContext, parsed: ParsedTask): Promise<Response> {
  const { input, models, mediaBytes } = parsed;
  const produce = async () => {
    const { value, model } = await runWithFallback(models, (m) => task.run(ctx.hf(), m, input));
    return respond(value, model);
  };
  if (!ctx.cache) return await produce();
  const { parameters, input: keyInput } = cachePartsOf(input, mediaBytes);
  return await cachedInference(
    ctx.cache,
    {
      task: task.id,
      model: models[0],
      parameters,
      input: keyInput,
      headers: req.headers,
      hitHeaders: ANSWER_HEADERS,
      signal: req.signal,
    },
    produce,
  );
}

/** A task's answer as a response, naming the model that gave it. */
function respond(answer: TaskAnswer, model: string): Response {
  const headers = { "X-Model": model, ...ANSWER_HEADERS };
  if ("json" in answer) return Response.json(answer.json, { headers });
  const length = answer.body instanceof Blob ? answer.body.size : answer.contentLength;
  const mediaHeaders = new Headers({ ...headers, "Content-Type": answer.contentType });
  // A known length lets the meter settle as the answer starts instead of counting the stream.
  if (length !== undefined) mediaHeaders.set("Content-Length", String(length));
  return new Response(answer.body, { headers: mediaHeaders });
}

/**
 * Reads a task's input from the request, checked against the task's rules: a JSON body, a Storage
 * reference (JSON to a media task), or a raw media body.
 * @throws {HttpError} 400 naming a bad field, 413 for a body or file over its limit, 415 for a
 * media type that is not the task's or does not match the bytes, Storage's status for a reference.
 */
export function readTaskInput(
  task: TaskDescriptor,
  req: Request,
  ctx: TaskContext,
): Promise<{ input: TaskInput; model?: unknown; mediaBytes?: Uint8Array }> {
  const spec = task.input;
  if (spec.type === "none") throw new HttpError(501, task.unavailable ?? `${task.id} is not available`);
  if (spec.type === "json") return readJsonInput(spec, req, task.maxJsonBytes ?? MAX_JSON_BYTES);
  const limit = ctx.maxMediaBytes(spec.media);
  return /^application\/([\w.+-]*\+)?json$/.test(canonicalType(req.headers.get("content-type")))
    ? readStorageInput(spec, req, ctx, limit)
    : readMediaBody(spec, req, limit);
}

type JsonSpec = Extract<TaskDescriptor["input"], { type: "json" }>;
type MediaSpec = Extract<TaskDescriptor["input"], { type: "media" }>;

async function readJsonInput(spec: JsonSpec, req: Request, maxBytes: number) {
  const { model, ...body } = asObject(await readJson(req, maxBytes));
  const fields = checkFields(spec.fields, body);
  for (const name of spec.required ?? []) {
    if (fields[name] === undefined) throw new HttpError(400, `${name} is required`, { field: name });
  }
  spec.check?.(fields);
  return { input: { kind: "json", fields } as TaskInput, model };
}

/** `{"inputs": {"storage": {bucket, path}}, "parameters"?, "model"?}`: a file read as the caller. */
async function readStorageInput(spec: MediaSpec, req: Request, ctx: TaskContext, limit: number) {
  const { model, ...body } = asObject(await readJson(req, MAX_JSON_BYTES));
  const fields = checkFields(storageRules(spec.parameters), body);
  const ref = (fields.inputs as { storage?: { bucket?: string; path?: string } } | undefined)?.storage;
  if (!ref?.bucket || !ref.path) {
    throw new HttpError(400, "inputs.storage.bucket and inputs.storage.path are required", { field: "inputs.storage" });
  }
  const file = await readStorageObject(ctx.storage(), req, { bucket: ref.bucket, path: ref.path }, limit);
  const type = checkMedia(spec.media, file.contentType, file.bytes);
  const parameters = (fields.parameters ?? {}) as Record<string, unknown>;
  return {
    input: { kind: "media", media: { bytes: file.bytes, type }, parameters } as TaskInput,
    model,
    mediaBytes: file.bytes,
  };
}

/** The media itself as the body; only `?model=` may come with it. */
async function readMediaBody(spec: MediaSpec, req: Request, limit: number) {
  const query = new URL(req.url).searchParams;
  for (const name of query.keys()) {
    if (name !== "model") throw new HttpError(400, `${name} is not a known query parameter`, { field: name });
  }
  const bytes = await readLimited(req, limit);
  const type = checkMedia(spec.media, req.headers.get("content-type"), bytes);
  return {
    input: { kind: "media", media: { bytes, type }, parameters: {} } as TaskInput,
    model: query.get("model") ?? undefined,
    mediaBytes: bytes,
  };
}

const storageRef = object({ bucket: text(100, { required: true }), path: text(1024, { required: true }) });

function storageRules(parameters: Rules) {
  return { inputs: object({ storage: storageRef }), parameters: object(parameters) };
}

function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, "Request body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/** Describes a task for `GET`: input, output, models, cost; a frontend can build itself from it. */
export function describeTask(task: TaskDescriptor, ctx: TaskContext, path: string): Record<string, unknown> {
  const base = { task: task.id, path, summary: task.summary };
  if (task.unavailable) return { ...base, available: false, reason: task.unavailable };
  const spec = task.input;
  const input = spec.type === "json"
    ? {
      type: "json",
      fields: { ...describeRules(spec.fields), model: "string, one of allowed_models" },
      example: spec.example,
    }
    : spec.type === "media"
    ? {
      type: "media",
      media: spec.media,
      content_types: ACCEPTED_TYPES[spec.media],
      max_bytes: ctx.maxMediaBytes(spec.media),
      body: `the raw ${spec.media} (Content-Type: ${spec.media}/*), ?model= to pick an allowed model`,
      or_json: {
        inputs: { storage: { bucket: "string", path: "string" } },
        ...(Object.keys(spec.parameters).length ? { parameters: describeRules(spec.parameters) } : {}),
        model: "string, one of allowed_models",
      },
    }
    : { type: "none" };
  const { chain, allowed } = ctx.models(task);
  return {
    ...base,
    available: true,
    method: "POST",
    input,
    output: task.output,
    models: chain,
    allowed_models: allowed,
    cost_units: task.cost,
  };
}
