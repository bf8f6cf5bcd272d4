/**
 * `text-to-image`: POST a prompt, get the image back.
 * @module
 */
import { authConfigFromEnv, createBearerVerifier } from "../_shared/auth.ts";
import { cors } from "../_shared/cors.ts";
import { configured, type Env } from "../_shared/env.ts";
import { hfConfigFromEnv } from "../_shared/hf_config.ts";
import { allowMethods, catchErrors, compose, type Handler, readJson } from "../_shared/http.ts";
import { createHf, type HfDeps, textToImage } from "../_shared/huggingface.ts";
import { parseTextToImageRequest } from "./request.ts";

// A prompt is at most a few KB; anything far larger is not a prompt.
const MAX_BODY_BYTES = 64 * 1024;

/** Builds the handler from an environment; `deps.fetch` replaces the upstream in tests. */
export function createHandler(env: Env, deps: HfDeps = {}): Handler {
  const verifyBearer = configured(() => createBearerVerifier(authConfigFromEnv(env)));
  const hf = configured(() => createHf(hfConfigFromEnv(env), deps));

  return compose(cors, catchErrors, allowMethods("POST"), async (req) => {
    await verifyBearer()(req);
    const input = parseTextToImageRequest(await readJson(req, MAX_BODY_BYTES));
    // Not tied to req.signal: Deno.serve aborts it once the response starts, which would cut the
    // image stream short.
    const image = await textToImage(hf(), input);
    return new Response(image.body, {
      headers: { "Content-Type": image.contentType, "Cache-Control": "no-store" },
    });
  });
}
