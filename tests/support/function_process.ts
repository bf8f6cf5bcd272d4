/**
 * A function run the way the platform runs it: its own `index.ts` in a process of its own, with
 * only the environment it is given, listening where `DENO_SERVE_ADDRESS` says. Its memory is its
 * own, so its peak RSS is the figure the platform's 256 MB limit applies to.
 * @module
 */
import { freePort } from "../stack/testing.ts";

const FUNCTIONS_DIR = new URL("../../supabase/functions/", import.meta.url);

/** A running function process. */
export interface FunctionProcess {
  /** `http://127.0.0.1:<port>`; the function answers every path under it. */
  url: string;
  pid: number;
  /** Peak resident memory so far, in bytes (VmHWM); NaN where /proc is not there. */
  peakRss(): number;
  /** Lines the function wrote to stderr and stdout. */
  output: string[];
  /** Stops the process (SIGTERM) and waits for it; safe to call twice. */
  stop(): Promise<void>;
}

/** Starts `supabase/functions/<name>/index.ts` with `env` (plus PATH, HOME and DENO_DIR); throws when it does not listen within 30 s. */
export function startFunctionProcess(name: string, env: Record<string, string>): Promise<FunctionProcess> {
  return startServerProcess(new URL(`${name}/index.ts`, FUNCTIONS_DIR), env);
}

/**
 * Starts the module at `entry` (one that calls `Deno.serve` without an address, as an `index.ts`
 * does) the same way, with `v8Flags` if any; throws when it does not listen within 30 s.
 */
export async function startServerProcess(
  entry: URL,
  env: Record<string, string>,
  v8Flags: string[] = [],
): Promise<FunctionProcess> {
  const name = entry.pathname;
  const port = freePort();
  const inherited = Object.fromEntries(
    ["PATH", "HOME", "DENO_DIR", "TMPDIR"].flatMap((k) => (Deno.env.get(k) ? [[k, Deno.env.get(k)!]] : [])),
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...(v8Flags.length ? [`--v8-flags=${v8Flags.join(",")}`] : []), entry.pathname],
    env: { ...inherited, ...env, DENO_SERVE_ADDRESS: `tcp:127.0.0.1:${port}`, NO_COLOR: "1" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  // Decoded by hand: with the web app's DOM types in the same check, TextDecoderStream's types do not line up.
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of stream) {
        output.push(...decoder.decode(chunk, { stream: true }).split("\n").filter(Boolean));
      }
    } catch { /* the process ended */ }
  };
  const drained = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const url = `http://127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already exited */ }
      await child.status;
      await drained;
    })();

  const deadline = Date.now() + 30_000;
  while (!output.some((line) => line.includes("Listening on"))) {
    const exited = await Promise.race([child.status.then(() => true), delay(25).then(() => false)]);
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`function ${name} did not start:\n${output.join("\n")}`);
    }
  }
  return {
    url,
    pid: child.pid,
    output,
    stop,
    peakRss() {
      try {
        const match = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${child.pid}/status`));
        return match ? Number(match[1]) * 1024 : NaN;
      } catch {
        return NaN;
      }
    },
  };
}

function delay(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
