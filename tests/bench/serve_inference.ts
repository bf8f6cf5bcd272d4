/**
 * Server processes for the `inference` benchmark scenario:
 *   deno run -A serve_inference.ts fake-hf <port> <latencyMs> <streamChunkDelayMs>
 *   deno run -A serve_inference.ts proxy <port> <upstreamBaseUrl>
 *   deno run -A serve_inference.ts inference <port> <upstreamBaseUrl>
 * @module
 */
import { createHandler } from "../../supabase/functions/huggingface-inference/handler.ts";
import { unmeteredStore } from "./unmetered.ts";
import { startFakeHf } from "../support/fake_hf.ts";
import { LOCAL_JWT_SECRET } from "../support/tokens.ts";

const [mode, port, arg, arg2] = Deno.args;
const listen = { hostname: "127.0.0.1", port: Number(port), onListen() {} };

if (mode === "fake-hf") {
  startFakeHf({ latencyMs: Number(arg), streamChunkDelayMs: Number(arg2 ?? 0) }, Number(port));
} else if (mode === "proxy") {
  // The floor to compare against: forward the body to the same upstream path, stream the answer back.
  Deno.serve(listen, async (req) => {
    const res = await fetch(`${arg}${new URL(req.url).pathname}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer hf_bench" },
      body: req.body,
    });
    return new Response(res.body, { status: res.status, headers: res.headers });
  });
} else if (mode === "inference") {
  Deno.serve(
    listen,
    // Quotas off here, as in the text-to-image scenario; `deno task bench quotas` measures them.
    createHandler({ HUGGING_FACE_ACCESS_TOKEN: "hf_bench", HF_BASE_URL: arg, SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET }, {
      meterStore: unmeteredStore,
    }),
  );
} else {
  throw new Error(`unknown mode ${mode}`);
}
console.log("ready");
