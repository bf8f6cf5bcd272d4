/**
 * A whole local Supabase (as `deno task dev` runs it) with the fake Hugging Face behind it, for
 * end-to-end tests.
 * @module
 */
import { createClient, type SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import { type Dev, startDev } from "../stack/dev.ts";
import { signUserToken } from "../stack/keys.ts";
import { waitFor } from "../stack/testing.ts";
import { type FakeHf, type FakeHfOptions, startFakeHf } from "./fake_hf.ts";

export const HF_TOKEN = "hf_e2e_secret_token_value";

/** A running local Supabase with its fake upstream. */
export interface Local {
  dev: Dev;
  fake: FakeHf;
  /** supabase-js with the service key. */
  admin: SupabaseClient;
  /** supabase-js signed in as a user (a JWT with that `sub`). */
  userClient(sub: string): Promise<SupabaseClient>;
  /** Polls `query` until it returns a truthy value, or fails after `timeoutMs`. */
  waitFor<T>(what: string, query: () => Promise<T> | T, timeoutMs?: number): Promise<NonNullable<T>>;
}

/** Starts everything, runs `fn`, and stops everything, whatever happens. */
export async function withLocal(
  fn: (local: Local) => Promise<void>,
  opts: {
    fake?: FakeHfOptions;
    env?: Record<string, string>;
    sweepIntervalMs?: number;
    intercept?: (req: Request) => Response | undefined | Promise<Response | undefined>;
    /** captioning.settings to apply before the test, e.g. short retry delays. */
    settings?: Record<string, string>;
  } = {},
): Promise<void> {
  const fake = startFakeHf({ token: HF_TOKEN, ...opts.fake });
  let dev: Dev | undefined;
  try {
    dev = await startDev({
      apiPort: 0,
      dbPort: 0,
      sweepIntervalMs: opts.sweepIntervalMs ?? 200,
      intercept: opts.intercept,
      env: {
        HUGGING_FACE_ACCESS_TOKEN: HF_TOKEN,
        HF_BASE_URL: fake.url,
        HF_RETRY_BASE_MS: "10",
        HF_RETRY_MAX_DELAY_MS: "50",
        ...opts.env,
      },
    });
    const d = dev;
    for (const [key, value] of Object.entries(opts.settings ?? {})) {
      await d.stack.sql`update captioning.settings set value = ${value} where key = ${key}`;
    }
    const clientOptions = { auth: { persistSession: false, autoRefreshToken: false } };
    await fn({
      dev: d,
      fake,
      admin: createClient(d.apiUrl, d.stack.serviceRoleKey, clientOptions),
      async userClient(sub) {
        const token = await signUserToken({ sub }, d.stack.jwtSecret);
        return createClient(d.apiUrl, d.stack.anonKey, {
          ...clientOptions,
          global: { headers: { Authorization: `Bearer ${token}` } },
        });
      },
      waitFor,
    });
  } finally {
    await dev?.stop();
    await fake.stop();
  }
}

/** Settings that make retries and re-sends happen within a test's patience. */
export const FAST_RETRIES: Record<string, string> = {
  retry_base_seconds: "0.1",
  retry_max_seconds: "1",
  redispatch_seconds: "0.5",
  lease_seconds: "5",
  max_attempts: "10",
};
