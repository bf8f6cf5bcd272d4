/**
 * `deno task dev`: a local Supabase without Docker. PostgreSQL with the migrations, the pg_net and
 * pg_cron stand-ins, Storage and PostgREST subsets, and every function under
 * `http://127.0.0.1:$API_PORT/functions/v1/<name>`, as `supabase start` + `supabase functions serve`.
 *
 * Environment: `.env.local` when it exists, overridden by the process environment.
 * @module
 */
import { type Env, envString } from "../../supabase/functions/_shared/runtime/env.ts";
import {
  DEFAULT_CAPTION_CHAT_MODEL,
  DEFAULT_IMAGE_TO_TEXT_MODEL,
  DEFAULT_TEXT_TO_IMAGE_MODEL,
} from "../../supabase/functions/_shared/hf/config.ts";
import { type FakeHf, startFakeHf } from "../support/fake_hf.ts";
import { createFunctionsRouter, loadFunctions } from "./functions.ts";
import { type Stack, startStack } from "./stack.ts";
import { freePort } from "./testing.ts";
import { startWebHost } from "./web_host.ts";

/** The token the functions get when none is set: the local stand-in (or an HF_BASE_URL server) takes any. */
export const STAND_IN_HF_TOKEN = "hf_local_stand_in";

/** What {@linkcode startDev} needs; ports 0 pick free ones. */
export interface DevOptions {
  apiPort: number;
  dbPort: number;
  databaseUrl?: string;
  /** The environment the functions see, before the stack's own variables are added. */
  env: Env;
  /** How often to run `captioning.sweep()` when pg_cron cannot run it every few seconds. */
  sweepIntervalMs?: number;
  /** Fault injection for tests: a response here replaces the real one. */
  intercept?: (req: Request) => Response | undefined | Promise<Response | undefined>;
}

/** A running local Supabase. */
export interface Dev {
  apiUrl: string;
  stack: Stack;
  /** The environment the functions were given. */
  functionsEnv: Env;
  /** The local Hugging Face stand-in started because no token was set, else null. */
  hfStandIn: FakeHf | null;
  /** While true, `/functions/v1/*` answers 503, as if the functions runtime were down. */
  setFunctionsDown(down: boolean): void;
  stop(): Promise<void>;
}

/** Starts the stack and serves it with the functions on one port. */
export async function startDev(opts: DevOptions): Promise<Dev> {
  const apiPort = opts.apiPort || freePort();
  const stack = await startStack({
    apiPort,
    dbPort: opts.dbPort || freePort(),
    databaseUrl: opts.databaseUrl,
    // One secret for every part: REST, Storage, the printed keys and the functions.
    jwtSecret: envString(opts.env, "SUPABASE_JWT_SECRET", "JWT_SECRET"),
  });
  let server: Deno.HttpServer | undefined;
  let sweeper: ReturnType<typeof setInterval> | undefined;
  // Without a token (and no HF_BASE_URL of the user's own), the functions talk to a local stand-in.
  const hfStandIn = hfToken(opts.env) || envString(opts.env, "HF_BASE_URL") ? null : startFakeHf();
  try {
    const webhookSecret = await syncVaultSecrets(stack, opts.env.CAPTION_WEBHOOK_SECRET);
    const functionsEnv: Env = {
      ...opts.env,
      ...(hfToken(opts.env) ? {} : { HUGGING_FACE_ACCESS_TOKEN: STAND_IN_HF_TOKEN }),
      ...(hfStandIn ? { HF_BASE_URL: hfStandIn.url } : {}),
      SUPABASE_URL: stack.apiUrl,
      SUPABASE_ANON_KEY: stack.anonKey,
      SUPABASE_SERVICE_ROLE_KEY: stack.serviceRoleKey,
      SUPABASE_DB_URL: stack.dbUrl,
      SUPABASE_JWT_SECRET: stack.jwtSecret,
      CAPTION_WEBHOOK_SECRET: webhookSecret,
    };
    const routeFunction = createFunctionsRouter(await loadFunctions(functionsEnv), functionsEnv);
    let functionsDown = false;

    server = Deno.serve({ hostname: "127.0.0.1", port: apiPort, onListen() {} }, async (req) => {
      if (functionsDown && new URL(req.url).pathname.startsWith("/functions/")) {
        return Response.json({ error: "functions runtime is down" }, { status: 503 });
      }
      const injected = await opts.intercept?.(req);
      if (injected) return injected;
      return (await routeFunction(req)) ?? (await stack.handleApi(req)) ??
        Response.json({ error: "Not found" }, { status: 404 });
    });

    if (!(await cronSweepsOften(stack))) {
      // pg_cron older than 1.5 (Debian's) schedules by the minute at best; sweep here instead.
      const interval = opts.sweepIntervalMs ?? 5000;
      sweeper = setInterval(() => {
        stack.sql`select captioning.sweep()`.catch(() => {});
      }, interval);
    }

    return {
      apiUrl: stack.apiUrl,
      stack,
      functionsEnv,
      hfStandIn,
      setFunctionsDown: (down) => void (functionsDown = down),
      async stop() {
        clearInterval(sweeper);
        await server?.shutdown();
        await hfStandIn?.stop();
        await stack.stop();
      },
    };
  } catch (error) {
    clearInterval(sweeper);
    await server?.shutdown();
    await hfStandIn?.stop();
    await stack.stop();
    throw error;
  }
}

/** The Hugging Face token of env under any of the names the functions accept; undefined when none. */
function hfToken(env: Env): string | undefined {
  return envString(env, "HUGGING_FACE_ACCESS_TOKEN", "HUGGINGFACE_ACCESS_TOKEN", "HF_TOKEN");
}

/** Says where Hugging Face calls go: the local stand-in, or which endpoint and models; throws nothing. */
export function describeHuggingFace(dev: Dev): string {
  if (dev.hfStandIn) {
    return `local stand-in (no token set); images and captions are placeholders (${dev.hfStandIn.url})`;
  }
  const env = dev.functionsEnv;
  const chat = (envString(env, "CAPTION_MODE") ?? "chat") === "chat";
  const captionModel = envString(env, "IMAGE_TO_TEXT_MODEL") ??
    (chat ? DEFAULT_CAPTION_CHAT_MODEL : DEFAULT_IMAGE_TO_TEXT_MODEL);
  const where = envString(env, "HF_BASE_URL") ??
    `Hugging Face router (provider ${envString(env, "HF_PROVIDER") ?? "auto"})`;
  const token = env.HUGGING_FACE_ACCESS_TOKEN === STAND_IN_HF_TOKEN ? " (no token set: a placeholder is sent)" : "";
  return `${where}${token}; text-to-image ${envString(env, "TEXT_TO_IMAGE_MODEL") ?? DEFAULT_TEXT_TO_IMAGE_MODEL}, ` +
    `captions ${captionModel}`;
}

/** The banner `deno task dev` prints, like `supabase status`; throws nothing. */
export function devBanner(dev: Dev, webUrl?: string): string {
  return `
Local Supabase stand-in is running.
${webUrl ? `\n         Web app: ${webUrl}` : ""}
         API URL: ${dev.apiUrl}
   Functions URL: ${dev.apiUrl}/functions/v1/<name>
          DB URL: ${dev.stack.dbUrl}
      JWT secret: ${dev.stack.jwtSecret}
        anon key: ${dev.stack.anonKey}
service_role key: ${dev.stack.serviceRoleKey}
    Hugging Face: ${describeHuggingFace(dev)}

Press Ctrl-C to stop.`;
}

/** Points the webhook at this server and makes the vault's secret and the function's agree. */
async function syncVaultSecrets(stack: Stack, webhookSecret: string | undefined): Promise<string> {
  await stack.sql`select vault.update_secret(id, ${stack.apiUrl}) from vault.secrets where name = 'project_url'`;
  if (webhookSecret) {
    await stack
      .sql`select vault.update_secret(id, ${webhookSecret}) from vault.secrets where name = 'caption_webhook_secret'`;
    return webhookSecret;
  }
  const [row] = await stack
    .sql`select decrypted_secret from vault.decrypted_secrets where name = 'caption_webhook_secret'`;
  return row.decrypted_secret;
}

async function cronSweepsOften(stack: Stack): Promise<boolean> {
  const [row] = await stack.sql`
    select exists (select 1 from pg_extension where extname = 'pg_cron') as has_cron`;
  if (!row.has_cron) return false;
  const [job] = await stack.sql`select schedule from cron.job where jobname = 'captioning-sweep'`;
  return job?.schedule?.includes("second") ?? false;
}

/** Parses `.env`-style text: `KEY=value` lines, `#` comments, optional quotes. */
export function parseDotenv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!match || line.trimStart().startsWith("#")) continue;
    let value = match[2];
    const quoted = /^(['"])(.*)\1$/.exec(value);
    if (quoted) value = quoted[2];
    else value = value.replace(/\s+#.*$/, "");
    env[match[1]] = value;
  }
  return env;
}

async function main() {
  let fileEnv: Record<string, string> = {};
  try {
    fileEnv = parseDotenv(await Deno.readTextFile(new URL("../../.env.local", import.meta.url)));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const env: Env = { ...fileEnv, ...Deno.env.toObject() };
  const dev = await startDev({
    apiPort: Number(env.API_PORT ?? 54321),
    dbPort: Number(env.DB_PORT ?? 54322),
    databaseUrl: env.DATABASE_URL,
    env,
  });
  // The web app (web/), on its own origin like any static host.
  const web = await startWebHost({
    port: Number(env.WEB_PORT ?? 3000),
    orFreePort: env.WEB_PORT === undefined,
    supabaseUrl: dev.apiUrl,
    supabaseKey: dev.stack.anonKey,
  }).catch(async (error) => {
    await dev.stop();
    throw error;
  });
  console.log(devBanner(dev, web.url));
  const stop = async () => {
    await web.stop();
    await dev.stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) await main();
