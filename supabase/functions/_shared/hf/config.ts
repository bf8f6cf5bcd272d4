/**
 * The Hugging Face settings every function shares, read from the environment.
 * @module
 */
import { type InferenceProviderOrPolicy, PROVIDERS_OR_POLICIES } from "npm:@huggingface/inference@4.13.30";
import { ConfigError, type Env, envInt, envString, requireEnv } from "../runtime/mod.ts";

/** How a caption is produced: the image-to-text task, or a vision-language model over chat. */
export type CaptionMode = "image-to-text" | "chat";

/** Everything the shared Hugging Face module needs. */
export interface HfConfig {
  accessToken: string;
  /** Passed through to the client as `provider`; ignored when `baseUrl` is set. */
  provider?: InferenceProviderOrPolicy;
  /** When set, every call goes to `{baseUrl}/hf-inference/models/{model}` via `endpointUrl`. */
  baseUrl?: string;
  textToImageModel: string;
  imageToTextModel: string;
  captionMode: CaptionMode;
  /** Timeout of one attempt. */
  timeoutMs: number;
  /** Total time across all attempts and waits. */
  deadlineMs: number;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxDelayMs: number;
  /** How many Hugging Face calls one instance runs at once; more wait their turn. */
  maxConcurrency: number;
}

/** Served today by several providers (the docs' `stable-diffusion-2` was deleted from the Hub). */
export const DEFAULT_TEXT_TO_IMAGE_MODEL = "black-forest-labs/FLUX.1-schnell";
/** A vision-language model served over chat completion, which is how captioning is served today. */
export const DEFAULT_CAPTION_CHAT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct";
/** A classic captioning model, for `CAPTION_MODE=image-to-text` on a dedicated endpoint. */
export const DEFAULT_IMAGE_TO_TEXT_MODEL = "Salesforce/blip-image-captioning-large";

/**
 * Reads {@linkcode HfConfig} from the environment.
 * @throws {ConfigError} when the token is missing or a value is malformed.
 */
export function hfConfigFromEnv(env: Env): HfConfig {
  const captionMode = envString(env, "CAPTION_MODE") ?? "chat";
  if (captionMode !== "chat" && captionMode !== "image-to-text") {
    throw new ConfigError("CAPTION_MODE must be 'chat' or 'image-to-text'");
  }
  const baseUrl = envString(env, "HF_BASE_URL");
  if (baseUrl !== undefined && !/^https?:$/.test(URL.parse(baseUrl)?.protocol ?? "")) {
    throw new ConfigError("HF_BASE_URL must be an absolute http(s) URL");
  }
  const provider = envString(env, "HF_PROVIDER");
  if (provider !== undefined && !(PROVIDERS_OR_POLICIES as readonly string[]).includes(provider)) {
    throw new ConfigError(`HF_PROVIDER must be one of: ${PROVIDERS_OR_POLICIES.join(", ")}`);
  }
  return {
    accessToken: requireEnv(
      env,
      "HUGGING_FACE_ACCESS_TOKEN",
      "HUGGINGFACE_ACCESS_TOKEN",
      "HF_TOKEN",
    ),
    provider: provider as InferenceProviderOrPolicy | undefined,
    baseUrl: baseUrl?.replace(/\/+$/, ""),
    textToImageModel: envString(env, "TEXT_TO_IMAGE_MODEL") ?? DEFAULT_TEXT_TO_IMAGE_MODEL,
    imageToTextModel: envString(env, "IMAGE_TO_TEXT_MODEL") ??
      (captionMode === "chat" ? DEFAULT_CAPTION_CHAT_MODEL : DEFAULT_IMAGE_TO_TEXT_MODEL),
    captionMode,
    timeoutMs: envInt(env, "HF_TIMEOUT_MS", 60_000, { min: 1 }),
    deadlineMs: envInt(env, "HF_DEADLINE_MS", 120_000, { min: 1 }),
    maxAttempts: envInt(env, "HF_MAX_ATTEMPTS", 4, { min: 1, max: 20 }),
    retryBaseMs: envInt(env, "HF_RETRY_BASE_MS", 500),
    retryMaxDelayMs: envInt(env, "HF_RETRY_MAX_DELAY_MS", 20_000),
    maxConcurrency: envInt(env, "HF_MAX_CONCURRENCY", 64, { min: 1, max: 1000 }),
  };
}
