/**
 * Server processes for the quotas benchmark, each in its own process like `serve.ts`:
 *   deno run -A quotas_serve.ts stack <port>                         local Supabase API (PostgREST stand-in) on a fresh PostgreSQL
 *   deno run -A quotas_serve.ts text-to-image <port> <hf url> <api url> on|direct|off [db url]
 * `on` meters through supabase-js RPCs, `direct` through INFERENCE_DB_URL, and `off` is
 * text-to-image with a meter whose store grants everything without a database.
 * @module
 */
import { createHandler } from "../../supabase/functions/text-to-image/handler.ts";
import { LOCAL_JWT_SECRET, signKey } from "../stack/keys.ts";
import { startStack } from "../stack/stack.ts";
import { freePort } from "../stack/testing.ts";
import { BENCH_USERS } from "./quotas.ts";
import { unmeteredStore } from "./unmetered.ts";

const [mode, port, ...args] = Deno.args;
const listen = { hostname: "127.0.0.1", port: Number(port), onListen() {} };

if (mode === "stack") {
  const stack = await startStack({ apiPort: Number(port), dbPort: freePort() });
  // Unlimited tiers for the bench users and no ceiling: every request takes the full reserve path.
  await stack.sql`insert into inference.tiers values ('bench', null, null)`;
  for (const id of BENCH_USERS) await stack.sql`insert into inference.user_tiers values (${id}, 'bench')`;
  await stack.sql`update inference.settings set value = null where key = 'project_units_per_day'`;
  console.log(`db ${stack.dbUrl}`);
  const server = Deno.serve(listen, async (req) => (await stack.handleApi(req)) ?? new Response(null, { status: 404 }));
  Deno.addSignalListener("SIGTERM", async () => {
    await server.shutdown();
    await stack.stop();
    Deno.exit(0);
  });
} else if (mode === "text-to-image") {
  const [hfUrl, apiUrl, quotas, dbUrl] = args;
  Deno.serve(
    listen,
    createHandler({
      HUGGING_FACE_ACCESS_TOKEN: "hf_bench",
      HF_BASE_URL: hfUrl,
      SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
      SUPABASE_URL: apiUrl,
      SUPABASE_SERVICE_ROLE_KEY: await signKey("service_role"),
      ...(quotas === "direct" ? { INFERENCE_DB_URL: dbUrl } : {}),
    }, quotas === "off" ? { meterStore: unmeteredStore } : {}),
  );
} else {
  throw new Error(`unknown mode ${mode}`);
}
console.log("ready");
