/**
 * A throwaway PostgreSQL 15 cluster for tests: initdb in a temp dir, listen on
 * 127.0.0.1 only, durability switched off for speed.
 *
 * @module
 */

/** Options for {@linkcode startPostgres}. */
export interface PostgresOptions {
  /** TCP port on 127.0.0.1. */
  port: number;
  /** Directory holding initdb, pg_ctl and postgres. */
  binDir?: string;
  /** Seconds to wait for start and stop. */
  timeoutSeconds?: number;
  /** Parent of the cluster's temp dir (default: the system temp dir); must be traversable by `nobody`. */
  tempRoot?: string;
  /** Start from a copy of this stopped cluster's data directory instead of running initdb (see stack_template.ts). */
  fromDataDir?: string;
}

/** A running cluster. */
export interface PostgresInstance {
  /** `postgres://postgres:postgres@127.0.0.1:<port>/postgres` */
  url: string;
  /** Cluster data directory (it appears in the postmaster's command line). */
  dataDir: string;
  /** Root temp dir (data, socket, log); removed by `stop()`. */
  tempDir: string;
  /** Stops the server ("fast" or "immediate", i.e. crash-like) and starts it again on the same port. */
  restart(mode: "fast" | "immediate"): Promise<void>;
  /** Stops the server cleanly, copies its data directory to dest (which must not exist), and starts it again. */
  snapshot(dest: string): Promise<void>;
  /** Stops the server and removes the temp dir; safe to call more than once. */
  stop(): Promise<void>;
}

const DEFAULT_BIN = "/usr/lib/postgresql/15/bin";
const EXTENSION_DIR = "/usr/share/postgresql/15/extension";
const PASSWORD = "postgres";

/** Starts a fresh cluster on 127.0.0.1:port; throws if the port is taken or the server does not come up in time. */
export async function startPostgres(opts: PostgresOptions): Promise<PostgresInstance> {
  const binDir = opts.binDir ?? DEFAULT_BIN;
  const timeout = opts.timeoutSeconds ?? 30;
  assertPortFree(opts.port);

  const tempDir = await Deno.makeTempDir({ prefix: "supa-stack-pg-", dir: opts.tempRoot });
  const dataDir = `${tempDir}/data`;
  const logFile = `${tempDir}/postgres.log`;
  const owner = Deno.uid() === 0 ? unprivilegedUser() : null;
  let started = false;
  try {
    // The temp dir lives under /tmp (world-traversable), so the unprivileged user can reach it once it owns it.
    if (owner) await Deno.chown(tempDir, owner.uid, owner.gid);
    await Deno.chmod(tempDir, 0o700);
    const pwFile = `${tempDir}/pwfile`;
    await Deno.writeTextFile(pwFile, `${PASSWORD}\n`);
    if (owner) await Deno.chown(pwFile, owner.uid, owner.gid);

    if (opts.fromDataDir) {
      await run(null, "cp", ["-a", opts.fromDataDir, dataDir]);
      if (owner) await run(null, "chown", ["-R", `${owner.uid}:${owner.gid}`, dataDir]);
    } else {
      await run(owner, `${binDir}/initdb`, [
        "-D",
        dataDir,
        "-U",
        "postgres",
        "--pwfile",
        pwFile,
        "-E",
        "UTF8",
        "--locale=C",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--no-sync",
        "--no-instructions",
      ]);
    }
    await Deno.remove(pwFile);
    await Deno.writeTextFile(`${dataDir}/postgresql.conf`, serverSettings(opts.port, tempDir), {
      append: true,
    });

    await pgCtlStart(owner, binDir, dataDir, logFile, timeout);
    started = true;
  } catch (err) {
    await Deno.remove(tempDir, { recursive: true }).catch(() => {});
    throw err;
  }

  // Last-resort cleanup if the process exits without calling stop(): unload handlers must be synchronous.
  const onUnload = () => {
    const pid = postmasterPid(dataDir);
    if (pid && isPostmaster(pid, dataDir)) {
      tryKill(pid, "SIGQUIT");
      const deadline = Date.now() + 2000;
      while (Date.now() < deadline && fileExists(`/proc/${pid}`)) { /* wait for it to go */ }
      if (isPostmaster(pid, dataDir)) tryKill(pid, "SIGKILL");
    }
    try {
      Deno.removeSync(tempDir, { recursive: true });
    } catch { /* best effort */ }
  };
  globalThis.addEventListener("unload", onUnload);

  let stopping: Promise<void> | null = null;
  return {
    url: `postgres://postgres:${PASSWORD}@127.0.0.1:${opts.port}/postgres`,
    dataDir,
    tempDir,
    async restart(mode) {
      if (stopping) throw new Error("postgres: restart after stop()");
      await pgCtlStop(owner, binDir, dataDir, mode, timeout);
      await pgCtlStart(owner, binDir, dataDir, logFile, timeout);
    },
    async snapshot(dest) {
      if (stopping) throw new Error("postgres: snapshot after stop()");
      await pgCtlStop(owner, binDir, dataDir, "fast", timeout);
      try {
        await run(null, "cp", ["-a", dataDir, dest]);
      } finally {
        await pgCtlStart(owner, binDir, dataDir, logFile, timeout);
      }
    },
    stop() {
      stopping ??= (async () => {
        globalThis.removeEventListener("unload", onUnload);
        if (started) {
          try {
            await pgCtlStop(owner, binDir, dataDir, "fast", timeout);
          } catch {
            // Not running (e.g. a failed restart) or stuck: make sure nothing survives.
            await killAndWait(dataDir, timeout);
          }
        }
        await Deno.remove(tempDir, { recursive: true }).catch((e) => {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        });
      })();
      return stopping;
    },
  };
}

/** Returns the postgresql.conf lines for a fast, loopback-only throwaway server; throws nothing. */
function serverSettings(port: number, socketDir: string): string {
  const lines = [
    "",
    "# tests/stack: throwaway cluster",
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    `unix_socket_directories = '${socketDir}'`,
    "fsync = off",
    // A committed upload must survive an immediate (crash-like) restart, as on the platform.
    "synchronous_commit = on",
    "full_page_writes = off",
    "max_connections = 100",
  ];
  // pg_cron (and the real pg_net, when installed) run background workers, which need preloading.
  const preload = ["pg_cron", "pg_net"].filter((ext) => fileExists(`${EXTENSION_DIR}/${ext}.control`));
  if (preload.length) lines.push(`shared_preload_libraries = '${preload.join(",")}'`);
  if (preload.includes("pg_cron")) lines.push("cron.database_name = 'postgres'");
  return lines.join("\n") + "\n";
}

/** Throws a clear error when something already listens on 127.0.0.1:port. */
function assertPortFree(port: number): void {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new Error(`postgres: port ${port} on 127.0.0.1 is already in use`);
    }
    throw e;
  }
}

interface Owner {
  user: string;
  uid: number;
  gid: number;
}

/** Looks up `nobody` in /etc/passwd; throws if it is missing. */
function unprivilegedUser(): Owner {
  const line = Deno.readTextFileSync("/etc/passwd").split("\n").find((l) => l.startsWith("nobody:"));
  if (!line) {
    throw new Error("postgres: running as root but there is no `nobody` user to run PostgreSQL as");
  }
  const [user, , uid, gid] = line.split(":");
  return { user, uid: Number(uid), gid: Number(gid) };
}

/** Runs a PostgreSQL binary (as `owner` when given); throws with its output when it fails. */
async function run(owner: Owner | null, cmd: string, args: string[]): Promise<string> {
  const [exe, argv] = owner ? ["runuser", ["-u", owner.user, "--", cmd, ...args]] : [cmd, args];
  const out = await new Deno.Command(exe, {
    args: argv,
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", LANG: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) {
    throw new Error(
      `postgres: ${cmd.split("/").pop()} ${args[0]} failed (exit ${out.code}):\n${text}`,
    );
  }
  return text;
}

/** Starts the server and waits until it accepts connections; throws with the server log tail otherwise. */
async function pgCtlStart(
  owner: Owner | null,
  binDir: string,
  dataDir: string,
  logFile: string,
  timeout: number,
) {
  try {
    await run(owner, `${binDir}/pg_ctl`, [
      "start",
      "-D",
      dataDir,
      "-l",
      logFile,
      "-w",
      "-t",
      String(timeout),
    ]);
  } catch (e) {
    const log = await Deno.readTextFile(logFile).catch(() => "");
    await killAndWait(dataDir, timeout);
    throw new Error(
      `${(e as Error).message}\n--- server log (tail) ---\n${log.split("\n").slice(-20).join("\n")}`,
    );
  }
}

/** Stops the server with pg_ctl and waits for the postmaster to exit; throws if pg_ctl fails. */
async function pgCtlStop(
  owner: Owner | null,
  binDir: string,
  dataDir: string,
  mode: string,
  timeout: number,
) {
  await run(owner, `${binDir}/pg_ctl`, [
    "stop",
    "-D",
    dataDir,
    "-m",
    mode,
    "-w",
    "-t",
    String(timeout),
  ]);
}

/** Reads the postmaster's pid from postmaster.pid; returns null when there is none. */
function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(Deno.readTextFileSync(`${dataDir}/postmaster.pid`).split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** SIGKILLs the postmaster (children exit when it dies) and waits for it to go; throws nothing. */
async function killAndWait(dataDir: string, timeout: number): Promise<void> {
  const pid = postmasterPid(dataDir);
  if (!pid || !isPostmaster(pid, dataDir)) return;
  tryKill(pid, "SIGKILL");
  const deadline = Date.now() + timeout * 1000;
  while (Date.now() < deadline && fileExists(`/proc/${pid}`)) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** True when pid is still this cluster's postmaster (pids get reused). */
function isPostmaster(pid: number, dataDir: string): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes(dataDir);
  } catch {
    return false;
  }
}

/** Sends a signal, ignoring a process that is already gone. */
function tryKill(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch { /* already gone */ }
}

/** True when the path exists. */
function fileExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
