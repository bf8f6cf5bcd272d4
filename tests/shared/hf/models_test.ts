import assert from "node:assert/strict";
import { ConfigError } from "../../../supabase/functions/_shared/runtime/env.ts";
import { HttpError } from "../../../supabase/functions/_shared/http/mod.ts";
import { allowedModels, chooseModels, envSuffix, modelChain } from "../../../supabase/functions/_shared/hf/models.ts";

Deno.test("modelChain: HF_MODEL_<TASK>, then the legacy variable, then the defaults", () => {
  assert.equal(envSuffix("automatic-speech-recognition"), "AUTOMATIC_SPEECH_RECOGNITION");
  assert.deepEqual(modelChain({}, "summarization", ["d/1"]), ["d/1"]);
  assert.deepEqual(modelChain({ HF_MODEL_SUMMARIZATION: " a/1 , b/2,, " }, "summarization", ["d/1"]), ["a/1", "b/2"]);
  assert.deepEqual(modelChain({ TEXT_TO_IMAGE_MODEL: "x/y" }, "text-to-image", ["d/1"], "TEXT_TO_IMAGE_MODEL"), [
    "x/y",
  ]);
  assert.deepEqual(
    modelChain(
      { TEXT_TO_IMAGE_MODEL: "x/y", HF_MODEL_TEXT_TO_IMAGE: "z/w" },
      "text-to-image",
      ["d"],
      "TEXT_TO_IMAGE_MODEL",
    ),
    ["z/w"],
  );
  assert.throws(
    () => modelChain({ HF_MODEL_SUMMARIZATION: "https://evil.example/x" }, "summarization", []),
    ConfigError,
  );
  assert.throws(() => allowedModels({ HF_ALLOWED_MODELS_SUMMARIZATION: "a/../b" }, "summarization"), ConfigError);
});

Deno.test("chooseModels: the caller's model only from the allowlist", () => {
  assert.deepEqual(chooseModels(undefined, ["a/1", "b/2"], []), ["a/1", "b/2"]);
  assert.deepEqual(chooseModels("c/3", ["a/1"], ["c/3"]), ["c/3"]);
  for (const [requested, allowed] of [["c/3", []], ["d/4", ["c/3"]], [42, ["c/3"]]] as const) {
    assert.throws(() => chooseModels(requested, ["a/1"], [...allowed]), (e: unknown) => {
      assert.ok(e instanceof HttpError);
      assert.equal(e.status, 400);
      assert.equal(e.details.field, "model");
      return true;
    });
  }
});
