/**
 * One PostgreSQL connection per API request at a time, and transactions on it.
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

// Healthy connections kept between requests: opening one (fork + SCRAM) costs more than most
// requests. A connection that failed or was lost is never put back.
const idle = new Map<string, Connection[]>();
const MAX_IDLE = 16;

/** Runs fn with a single-connection client of its own (reused when healthy); throws what fn throws. */
export async function withConnection<T>(
  dbUrl: string,
  fn: (sql: postgres.Sql) => Promise<T>,
): Promise<T> {
  let conn = idle.get(dbUrl)?.pop();
  while (conn?.lost) conn = idle.get(dbUrl)?.pop(); // closed while idle, e.g. by a restart
  conn ??= connect(dbUrl);
  let healthy = false;
  try {
    const result = await fn(conn.guarded);
    healthy = !conn.lost;
    return result;
  } finally {
    const pool = idle.get(dbUrl) ?? [];
    if (healthy && pool.length < MAX_IDLE) idle.set(dbUrl, [...pool, conn]);
    else await conn.client.end({ timeout: 0 });
  }
}

/** Closes the connections kept for dbUrl; call it before the database goes away for good. */
export async function closeIdleConnections(dbUrl: string): Promise<void> {
  const pool = idle.get(dbUrl) ?? [];
  idle.delete(dbUrl);
  await Promise.all(pool.map((conn) => conn.client.end({ timeout: 0 })));
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
