/**
 * Pieces a benchmark scenario shares: a server in its own process, CPU time from /proc, the median
 * run, and a plain-text table.
 * @module
 */

/** A server started by {@linkcode spawnServer}. */
export interface Spawned {
  url: string;
  pid: number;
  /** What it printed up to "ready". */
  output: string;
  stop(): Promise<void>;
}

/** Runs `deno run -A <script> ...args` and waits until it prints "ready"; it must listen on `port`. */
export async function spawnServer(script: URL, port: number, ...args: string[]): Promise<Spawned> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script.pathname, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${script.pathname} ${args.join(" ")} exited before it was ready`);
    seen += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    output: seen,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** CPU time (user + system) a process has used, from /proc; NaN where /proc is not there. */
export function cpuSeconds(pid: number): number {
  try {
    const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks, 100 per second on Linux
  } catch {
    return NaN;
  }
}

/** The run with the median value of `key`. */
export function medianBy<T>(runs: T[], key: (run: T) => number): T {
  return [...runs].sort((a, b) => key(a) - key(b))[Math.floor(runs.length / 2)];
}

/** Prints rows under a header, columns padded. */
export function printTable(header: string[], rows: string[][]) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of rows) console.log(line(row));
}
