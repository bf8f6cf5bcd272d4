/**
 * The captioning function as the platform runs it: several instances, each a process of its own,
 * behind a gateway that spreads the webhooks across them, against one local Supabase (PostgreSQL,
 * Storage, PostgREST, pg_net stand-ins) and one Hugging Face stand-in.
 * @module
 */
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import { type Stack, startStack } from "../stack/stack.ts";
import { client, freePort } from "../stack/testing.ts";
import { type FakeHf, type FakeHfOptions, startFakeHf } from "./fake_hf.ts";
import { type FunctionProcess, startFunctionProcess } from "./function_process.ts";

const FUNCTION = "huggingface-image-captioning";
export const FLEET_HF_TOKEN = "hf_fleet_secret_token";

/** What {@linkcode withFleet} sets up. */
export interface FleetOptions {
  /** Function processes (default 1). */
  instances?: number;
  /** Extra environment for every instance. */
  env?: Record<string, string>;
  /** captioning.settings to apply before the instances start. */
  settings?: Record<string, string>;
  fake?: FakeHfOptions;
  /** Puts something between the instances and the fake (e.g. a recording proxy); returns its base URL. */
  upstream?: (fake: FakeHf) => string;
  /** How often the sweeper runs, as pg_cron would (default 200 ms). */
  sweepIntervalMs?: number;
}

/** A running fleet. */
export interface Fleet {
  stack: Stack;
  fake: FakeHf;
  instances: FunctionProcess[];
  /** supabase-js with the service key. */
  admin: SupabaseClient;
  /** Webhooks each instance was handed by the gateway. */
  delivered: number[];
}

/** Starts everything, runs `fn`, then stops everything whatever happens. */
export async function withFleet<T>(opts: FleetOptions, fn: (fleet: Fleet) => Promise<T>): Promise<T> {
  const apiPort = freePort();
  const stack = await startStack({ apiPort, dbPort: freePort() });
  const fake = startFakeHf({ token: FLEET_HF_TOKEN, ...opts.fake });
  const instances: FunctionProcess[] = [];
  const delivered: number[] = [];
  let server: Deno.HttpServer | undefined;
  let sweeper: ReturnType<typeof setInterval> | undefined;
  try {
    const { sql } = stack;
    for (const [key, value] of Object.entries(opts.settings ?? {})) {
      await sql`update captioning.settings set value = ${value} where key = ${key}`;
    }
    await sql`select vault.update_secret(id, ${stack.apiUrl}) from vault.secrets where name = 'project_url'`;
    const [{ decrypted_secret: webhookSecret }] =
      await sql`select decrypted_secret from vault.decrypted_secrets where name = 'caption_webhook_secret'`;

    const env = {
      SUPABASE_URL: stack.apiUrl,
      SUPABASE_SERVICE_ROLE_KEY: stack.serviceRoleKey,
      CAPTION_WEBHOOK_SECRET: webhookSecret,
      HUGGING_FACE_ACCESS_TOKEN: FLEET_HF_TOKEN,
      HF_BASE_URL: opts.upstream?.(fake) ?? fake.url,
      ...opts.env,
    };
    for (let i = 0; i < (opts.instances ?? 1); i++) {
      instances.push(await startFunctionProcess(FUNCTION, env));
      delivered.push(0);
    }

    // The gateway: each webhook goes to the next instance in turn.
    let next = 0;
    server = Deno.serve({ hostname: "127.0.0.1", port: apiPort, onListen() {} }, async (req) => {
      const url = new URL(req.url);
      if (url.pathname.startsWith(`/functions/v1/${FUNCTION}`)) {
        const i = next++ % instances.length;
        delivered[i]++;
        return await fetch(instances[i].url + url.pathname, {
          method: req.method,
          headers: req.headers,
          body: req.body ? await req.arrayBuffer() : undefined,
          signal: req.signal,
        });
      }
      return (await stack.handleApi(req)) ?? Response.json({ error: "Not found" }, { status: 404 });
    });
    sweeper = setInterval(() => void sql`select captioning.sweep()`.catch(() => {}), opts.sweepIntervalMs ?? 200);

    return await fn({ stack, fake, instances, admin: client(stack.apiUrl, stack.serviceRoleKey), delivered });
  } finally {
    clearInterval(sweeper);
    await server?.shutdown();
    await Promise.all(instances.map((instance) => instance.stop()));
    await fake.stop();
    await stack.stop();
  }
}

/** Polls until every listed object has a finished job; returns the jobs' states. Throws after timeoutMs. */
export async function waitForJobs(
  stack: Stack,
  ids: string[],
  timeoutMs: number,
): Promise<{ done: number; failed: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await stack.sql`
      select count(*) filter (where status = 'done')::int as done,
             count(*) filter (where status = 'failed')::int as failed
        from captioning.jobs where object_id = any(${ids}::uuid[])`;
    if (row.done + row.failed >= ids.length) return { done: row.done, failed: row.failed };
    if (Date.now() > deadline) {
      throw new Error(`after ${timeoutMs} ms: ${row.done} done, ${row.failed} failed of ${ids.length}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
