/**
 * Helpers shared by the stack's tests: free ports, serving `handleApi`, bounded polling.
 *
 * @module
 */
import { createClient, type SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import { signUserToken } from "./keys.ts";
import type { Stack } from "./stack.ts";

// Ports are picked below Linux's ephemeral range (32768-60999): a port the kernel hands out for
// `port: 0` can be given next to an outgoing connection as its source port, and then the server
// that was meant to bind it seconds later fails with AddrInUse (seen under load).
const PORT_RANGE = { from: 20_000, to: 32_000 };
const taken = new Set<number>();

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago, picked at random below the ephemeral
 * range and never twice in one process.
 * @throws {Error} when no free port is found in 200 tries.
 */
export function freePort(): number {
  for (let tries = 0; tries < 200; tries++) {
    const port = PORT_RANGE.from + Math.floor(Math.random() * (PORT_RANGE.to - PORT_RANGE.from));
    if (taken.has(port)) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) continue;
      throw error;
    }
    taken.add(port);
    return port;
  }
  throw new Error("no free TCP port found on 127.0.0.1");
}

/** Serves stack.handleApi on 127.0.0.1:port (404 for other paths); throws if the port is taken. */
export function serveApi(stack: Stack, port: number): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    async (req) => (await stack.handleApi(req)) ?? new Response("not found", { status: 404 }),
  );
}

/** A supabase-js client for url with an API key, optionally acting as a user via their access token. */
export function client(url: string, apiKey: string, userToken?: string): SupabaseClient {
  return createClient(url, apiKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    ...(userToken ? { accessToken: () => Promise.resolve(userToken) } : {}),
  });
}

/** The clients the API tests act as: the service role, anon, and two signed-in users. */
export async function clientsOf(stack: Stack, users: { alice: string; bob: string }) {
  const asUser = async (sub: string) =>
    client(stack.apiUrl, stack.anonKey, await signUserToken({ sub }, stack.jwtSecret));
  return {
    admin: client(stack.apiUrl, stack.serviceRoleKey),
    anon: client(stack.apiUrl, stack.anonKey),
    alice: await asUser(users.alice),
    bob: await asUser(users.bob),
  };
}

/** Polls fn until it returns a truthy value; throws with label after timeoutMs. */
export async function waitFor<T>(
  label: string,
  fn: () => Promise<T> | T,
  timeoutMs = 10_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}${last ? `: ${last}` : ""}`);
}

/** Resolves like promise, or throws naming label after ms (so a hang fails the test instead). */
export async function withDeadline<T>(
  label: string,
  promise: PromiseLike<T>,
  ms = 30_000,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${label}: no answer after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Writes a throwaway `supabase/` dir with the given migrations (file name → SQL) and optional seed; throws on I/O errors. */
export async function supabaseDirWith(
  migrations: Record<string, string>,
  seed?: string,
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "supa-stack-test-" });
  await Deno.mkdir(`${dir}/migrations`);
  for (const [name, text] of Object.entries(migrations)) {
    await Deno.writeTextFile(`${dir}/migrations/${name}`, text);
  }
  if (seed !== undefined) await Deno.writeTextFile(`${dir}/seed.sql`, seed);
  return dir;
}

/** True when some process's command line contains needle (pgrep -f). */
export async function processRunning(needle: string): Promise<boolean> {
  const out = await new Deno.Command("pgrep", {
    args: ["-f", needle],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.code === 0;
}

/** True when the path exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
