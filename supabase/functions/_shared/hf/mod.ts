/**
 * Hugging Face: the client wrapped with timeouts, retries and one error mapping, its configuration,
 * model chains and fallback between them.
 * @module
 */
export {
  type CallOptions,
  type CallTarget,
  CAPTION_PROMPT,
  captionImage,
  type CaptionSource,
  createHf,
  type Hf,
  type HfDeps,
  type HfGate,
  type ImageBytes,
  sendingAsBase64,
  sendingBytes,
  textToImage,
} from "./client.ts";
export { type HfConfig, hfConfigFromEnv } from "./config.ts";
export { runWithFallback } from "./fallback.ts";
export { allowedModels, chooseModels, modelChain } from "./models.ts";
export { sleep } from "./retry.ts";
