/**
 * Hugging Face settings read from an injected environment.
 */
import assert from "node:assert/strict";
import { ConfigError, type Env } from "../../../supabase/functions/_shared/runtime/env.ts";
import {
  DEFAULT_CAPTION_CHAT_MODEL,
  DEFAULT_IMAGE_TO_TEXT_MODEL,
  DEFAULT_TEXT_TO_IMAGE_MODEL,
  hfConfigFromEnv,
} from "../../../supabase/functions/_shared/hf/config.ts";

const TOKEN = "hf_config_test_secret_value";

/** The config for a minimal environment (just a token) plus `extra`. */
const configWith = (extra: Env = {}) => hfConfigFromEnv({ HUGGING_FACE_ACCESS_TOKEN: TOKEN, ...extra });

/** Asserts `env` is refused with a ConfigError whose message matches `pattern` and holds no token. */
function assertRefused(env: Env, pattern: RegExp) {
  assert.throws(() => hfConfigFromEnv({ HUGGING_FACE_ACCESS_TOKEN: TOKEN, ...env }), (error) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.match(error.message, pattern);
    assert.ok(!error.message.includes(TOKEN));
    return true;
  });
}

Deno.test("defaults: chat captioning with a vision-language model, bounded retries, no base URL", () => {
  assert.deepEqual(configWith(), {
    accessToken: TOKEN,
    provider: undefined,
    baseUrl: undefined,
    textToImageModel: DEFAULT_TEXT_TO_IMAGE_MODEL,
    imageToTextModel: DEFAULT_CAPTION_CHAT_MODEL,
    captionMode: "chat",
    timeoutMs: 60_000,
    deadlineMs: 120_000,
    maxAttempts: 4,
    retryBaseMs: 500,
    retryMaxDelayMs: 20_000,
    maxConcurrency: 64,
  });
  assert.equal(DEFAULT_TEXT_TO_IMAGE_MODEL, "black-forest-labs/FLUX.1-schnell");
  assert.equal(DEFAULT_CAPTION_CHAT_MODEL, "Qwen/Qwen2.5-VL-7B-Instruct");
});

Deno.test("the token falls back through HUGGING_FACE_ACCESS_TOKEN, HUGGINGFACE_ACCESS_TOKEN, HF_TOKEN", () => {
  const all = {
    HUGGING_FACE_ACCESS_TOKEN: "hf_one",
    HUGGINGFACE_ACCESS_TOKEN: "hf_two",
    HF_TOKEN: "hf_three",
  };
  assert.equal(hfConfigFromEnv(all).accessToken, "hf_one");
  assert.equal(
    hfConfigFromEnv({ ...all, HUGGING_FACE_ACCESS_TOKEN: undefined }).accessToken,
    "hf_two",
  );
  assert.equal(
    hfConfigFromEnv({ ...all, HUGGING_FACE_ACCESS_TOKEN: " ", HUGGINGFACE_ACCESS_TOKEN: "" })
      .accessToken,
    "hf_three",
  );
  assert.equal(hfConfigFromEnv({ HF_TOKEN: "  hf_trimmed \n" }).accessToken, "hf_trimmed");
});

Deno.test("a missing token is a ConfigError naming all three variables", () => {
  assert.throws(
    () => hfConfigFromEnv({ HF_BASE_URL: "http://127.0.0.1:8787" }),
    (error) =>
      error instanceof ConfigError &&
      error.message ===
        "HUGGING_FACE_ACCESS_TOKEN or HUGGINGFACE_ACCESS_TOKEN or HF_TOKEN is not set",
  );
});

Deno.test("HF_BASE_URL keeps its path and loses its trailing slashes", () => {
  assert.equal(
    configWith({ HF_BASE_URL: "http://127.0.0.1:8787" }).baseUrl,
    "http://127.0.0.1:8787",
  );
  assert.equal(
    configWith({ HF_BASE_URL: "http://127.0.0.1:8787/" }).baseUrl,
    "http://127.0.0.1:8787",
  );
  assert.equal(
    configWith({ HF_BASE_URL: " https://hf.example/router/// " }).baseUrl,
    "https://hf.example/router",
  );
});

Deno.test("an HF_BASE_URL that is not an absolute URL is refused", () => {
  for (const value of ["/relative/path", "not a url", "127.0.0.1:8787", "://missing-scheme"]) {
    assertRefused({ HF_BASE_URL: value }, /^HF_BASE_URL must be an absolute http\(s\) URL$/);
  }
});

Deno.test({
  // URL.canParse accepts any scheme: `localhost:8787` would otherwise pass as a URL.
  name: "an HF_BASE_URL that is not http(s) is refused",
  fn() {
    for (const value of ["localhost:8787", "ftp://hf.example", "mailto:ops@hf.example"]) {
      assertRefused({ HF_BASE_URL: value }, /HF_BASE_URL/);
    }
  },
});

Deno.test("HF_PROVIDER accepts the client's providers and policies", () => {
  for (const provider of ["hf-inference", "fal-ai", "together", "auto"]) {
    assert.equal(configWith({ HF_PROVIDER: provider }).provider, provider);
  }
  assert.equal(configWith({ HF_PROVIDER: " nscale " }).provider, "nscale");
});

Deno.test("an unknown HF_PROVIDER is refused with the list of valid ones", () => {
  assertRefused(
    { HF_PROVIDER: "huggingface" },
    /^HF_PROVIDER must be one of: .*hf-inference.*auto$/,
  );
  assertRefused({ HF_PROVIDER: "HF-INFERENCE" }, /HF_PROVIDER/);
});

Deno.test("CAPTION_MODE picks the default caption model for its mode", () => {
  const chat = configWith({ CAPTION_MODE: "chat" });
  assert.equal(chat.captionMode, "chat");
  assert.equal(chat.imageToTextModel, DEFAULT_CAPTION_CHAT_MODEL);
  const task = configWith({ CAPTION_MODE: "image-to-text" });
  assert.equal(task.captionMode, "image-to-text");
  assert.equal(task.imageToTextModel, DEFAULT_IMAGE_TO_TEXT_MODEL);
  assert.equal(DEFAULT_IMAGE_TO_TEXT_MODEL, "Salesforce/blip-image-captioning-large");
});

Deno.test("IMAGE_TO_TEXT_MODEL and TEXT_TO_IMAGE_MODEL override the defaults in either mode", () => {
  for (const mode of ["chat", "image-to-text"]) {
    const config = configWith({
      CAPTION_MODE: mode,
      IMAGE_TO_TEXT_MODEL: "google/gemma-3-27b-it",
      TEXT_TO_IMAGE_MODEL: " stabilityai/stable-diffusion-3-medium-diffusers ",
    });
    assert.equal(config.imageToTextModel, "google/gemma-3-27b-it");
    assert.equal(config.textToImageModel, "stabilityai/stable-diffusion-3-medium-diffusers");
  }
});

Deno.test("an unknown CAPTION_MODE is refused", () => {
  for (const mode of ["Chat", "image_to_text", "vlm"]) {
    assertRefused({ CAPTION_MODE: mode }, /^CAPTION_MODE must be 'chat' or 'image-to-text'$/);
  }
});

Deno.test("numeric settings are read, and refused out of range naming the variable", () => {
  const config = configWith({
    HF_TIMEOUT_MS: "100",
    HF_DEADLINE_MS: "300",
    HF_MAX_ATTEMPTS: "20",
    HF_RETRY_BASE_MS: "0",
    HF_RETRY_MAX_DELAY_MS: "50",
    HF_MAX_CONCURRENCY: "1000",
  });
  assert.deepEqual(
    [
      config.timeoutMs,
      config.deadlineMs,
      config.maxAttempts,
      config.retryBaseMs,
      config.retryMaxDelayMs,
    ],
    [100, 300, 20, 0, 50],
  );
  assert.equal(config.maxConcurrency, 1000);
  for (
    const [name, value] of [
      ["HF_TIMEOUT_MS", "0"],
      ["HF_DEADLINE_MS", "-1"],
      ["HF_MAX_ATTEMPTS", "0"],
      ["HF_MAX_ATTEMPTS", "21"],
      ["HF_RETRY_BASE_MS", "fast"],
      ["HF_MAX_CONCURRENCY", "1001"],
      ["HF_MAX_CONCURRENCY", "0"],
    ]
  ) {
    assertRefused({ [name]: value }, new RegExp(`^${name} must be an integer`));
  }
});
