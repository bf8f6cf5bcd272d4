/**
 * One server process for the benchmark, so the load generator, the server under test and the
 * upstream do not share a JavaScript thread:
 *   deno run -A serve.ts fake-hf <port> <latencyMs>
 *   deno run -A serve.ts proxy <port> <upstreamUrl>
 *   deno run -A serve.ts text-to-image <port> <upstreamUrl>
 * @module
 */
import { createHandler } from "../../supabase/functions/text-to-image/handler.ts";
import { startFakeHf } from "../support/fake_hf.ts";
import { LOCAL_JWT_SECRET } from "../support/tokens.ts";
import { unmeteredStore } from "./unmetered.ts";

const [mode, port, arg] = Deno.args;
const listen = { hostname: "127.0.0.1", port: Number(port), onListen() {} };

if (mode === "fake-hf") {
  startFakeHf({ latencyMs: Number(arg) }, Number(port));
} else if (mode === "proxy") {
  // The floor to compare against: forward the request, stream the answer back, nothing else.
  Deno.serve(listen, async (req) => {
    const model = "black-forest-labs/FLUX.1-schnell";
    const res = await fetch(`${arg}/hf-inference/models/${model}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer hf_bench" },
      body: req.body,
    });
    return new Response(res.body, { status: res.status, headers: res.headers });
  });
} else if (mode === "text-to-image") {
  Deno.serve(
    listen,
    createHandler({
      HUGGING_FACE_ACCESS_TOKEN: "hf_bench",
      HF_BASE_URL: arg,
      SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
    }, { meterStore: unmeteredStore }), // quotas off here; `deno task bench quotas` measures them
  );
} else {
  throw new Error(`unknown mode ${mode}`);
}
console.log("ready");
