/**
 * One PostgreSQL connection per API request at a time, from a bounded pool, and transactions on it.
 *
 * postgres.js 3.4.9 crashes the process when a statement is sent on a reserved connection whose
 * backend has died (porsager/postgres#1154, #1208), which `sql.begin()` does by itself (its
 * ROLLBACK) when PostgreSQL restarts mid-transaction. So transactions here are plain BEGIN/COMMIT
 * statements on a one-connection client, and once that connection is lost no further statement
 * is sent: not on the dead socket, and not on a silently reconnected session outside the
 * transaction either.
 *
 * @module
 */
import postgres from "npm:postgres@3.4.9";

/** A statement was refused because the request's connection had been lost. */
export class ConnectionLostError extends Error {
  /** Same code postgres.js uses for a closed connection. */
  readonly code: string = "CONNECTION_CLOSED";
  constructor() {
    super("the database connection was lost during this request");
  }
}

interface Connection {
  client: postgres.Sql;
  guarded: postgres.Sql;
  lost: boolean;
}

/** A bounded pool: at most `size` connections; requests beyond it wait their turn, first come first served. */
interface Pool {
  dbUrl: string;
  size: number;
  open: number;
  // Healthy connections kept between requests: opening one (fork + SCRAM) costs more than most
  // requests. A connection that failed or was lost is never put back.
  idle: Connection[];
  waiters: ((conn: Connection | null) => void)[];
}

const pools = new Map<string, Pool>();

/** Pool options: requests of the same `name` share at most `size` connections (PostgREST's default pool is 10). */
export interface PoolOptions {
  name?: string;
  size?: number;
}

/**
 * Runs fn with a single-connection client of its own from the named pool (reused when healthy).
 * When the pool's connections are all busy, waits for one, like the real services' pools: never
 * more connections than the pool's size, so never "too many connections". Throws what fn throws.
 */
export async function withConnection<T>(
  dbUrl: string,
  fn: (sql: postgres.Sql) => Promise<T>,
  { name = "default", size = 10 }: PoolOptions = {},
): Promise<T> {
  const key = `${name}\n${dbUrl}`;
  let pool = pools.get(key);
  if (!pool) pools.set(key, pool = { dbUrl, size, open: 0, idle: [], waiters: [] });
  const conn = await acquire(pool);
  let healthy = false;
  try {
    const result = await fn(conn.guarded);
    healthy = !conn.lost;
    return result;
  } finally {
    release(pool, conn, healthy);
  }
}

async function acquire(pool: Pool): Promise<Connection> {
  for (;;) {
    const conn = pool.idle.pop();
    if (conn && !conn.lost) return conn;
    if (conn) {
      pool.open--; // closed while idle, e.g. by a restart
      continue;
    }
    if (pool.open < pool.size) {
      pool.open++;
      return connect(pool.dbUrl);
    }
    // Handed a healthy connection by release, or null: a slot freed up, open a new one.
    const handed = await new Promise<Connection | null>((resolve) => pool.waiters.push(resolve));
    if (handed && !handed.lost) return handed;
    if (handed) pool.open--;
    pool.open++;
    return connect(pool.dbUrl);
  }
}

function release(pool: Pool, conn: Connection, healthy: boolean): void {
  const next = pool.waiters.shift();
  if (healthy) {
    if (next) next(conn);
    else pool.idle.push(conn);
    return;
  }
  conn.client.end({ timeout: 0 }).catch(() => {});
  pool.open--;
  next?.(null);
}

/** Closes the idle connections kept for dbUrl (every pool); call it before the database goes away for good. */
export async function closeIdleConnections(dbUrl: string): Promise<void> {
  const closing: Promise<void>[] = [];
  for (const [key, pool] of pools) {
    if (pool.dbUrl !== dbUrl) continue;
    closing.push(...pool.idle.map((conn) => conn.client.end({ timeout: 0 })));
    pool.open -= pool.idle.length;
    pool.idle = [];
    if (pool.open <= 0 && pool.waiters.length === 0) pools.delete(key);
  }
  await Promise.all(closing);
}

function connect(dbUrl: string): Connection {
  const conn = { lost: false } as Connection;
  conn.client = postgres(dbUrl, {
    max: 1,
    // Fail fast while the server is down or restarting, rather than hang a request.
    connect_timeout: 5,
    // Never recycle the connection in the middle of a request.
    max_lifetime: null,
    // The array-type lookup postgres.js runs on connect leaves an unhandled rejection when the
    // server dies during it; callers pass and read arrays as JSON instead.
    fetch_types: false,
    onnotice: () => {},
    onclose: () => {
      conn.lost = true;
      // Settle whatever still waits on the dead connection; the driver does not always do it.
      conn.client.end({ timeout: 0 }).catch(() => {});
    },
  });
  // Every statement and fragment is created through this call, so refusing here is enough.
  conn.guarded = new Proxy(conn.client, {
    apply(target, thisArg, args) {
      if (conn.lost) throw new ConnectionLostError();
      return Reflect.apply(target, thisArg, args);
    },
  });
  return conn;
}

/** Runs fn between BEGIN and COMMIT (ROLLBACK when it throws) on a client from withConnection; throws what fn throws. */
export async function transaction<T>(
  sql: postgres.Sql,
  fn: (tx: postgres.Sql) => Promise<T>,
): Promise<T> {
  await sql`begin`;
  let result: T;
  try {
    result = await fn(sql);
  } catch (e) {
    try {
      await sql`rollback`;
    } catch { /* connection lost: the server has rolled back already */ }
    throw e;
  }
  await sql`commit`;
  return result;
}
