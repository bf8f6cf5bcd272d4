/**
 * `text-to-image`: POST a prompt, get the image back.
 * @module
 */
import { cors } from "../_shared/cors.ts";
import { configured, type Env } from "../_shared/env.ts";
import { hfConfigFromEnv } from "../_shared/hf_config.ts";
import { allowMethods, catchErrors, compose, type Handler, readJson } from "../_shared/http.ts";
import { createHf, type HfDeps, textToImage } from "../_shared/huggingface.ts";
import { createMeter, type MeterDeps } from "../_shared/metering.ts";
import { parseTextToImageRequest } from "./request.ts";

// A prompt is at most a few KB; anything far larger is not a prompt.
const MAX_BODY_BYTES = 64 * 1024;

/** Builds the handler from an environment; `deps.fetch` replaces the upstream and `deps.meterStore` the database in tests. */
export function createHandler(env: Env, deps: HfDeps & MeterDeps = {}): Handler {
  const meter = createMeter(env, deps);
  const hf = configured(() => createHf(hfConfigFromEnv(env), deps));

  // meter: only signed-in callers, within their quota; settled from the answer.
  return compose(cors, catchErrors, allowMethods("POST"), meter("text-to-image"), async (req) => {
    const input = parseTextToImageRequest(await readJson(req, MAX_BODY_BYTES));
    // Not tied to req.signal: Deno.serve aborts it once the response starts, which would cut the
    // image stream short.
    const image = await textToImage(hf(), input);
    const headers = new Headers({
      "Content-Type": image.contentType,
      "Cache-Control": "no-store",
      "X-Model": hf().config.textToImageModel,
    });
    const length = image.body instanceof Blob ? image.body.size : image.contentLength;
    if (length !== undefined) headers.set("Content-Length", String(length));
    return new Response(image.body, { headers });
  });
}
