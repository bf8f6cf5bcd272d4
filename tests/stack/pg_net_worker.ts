/**
 * Stand-in for pg_net's background worker: takes committed rows from `net.http_request_queue` in
 * batches, sends the requests of a batch in parallel (a slow one still holds up the next batch, as
 * in pg_net), follows redirects as libcurl does, and records each outcome in `net._http_response`.
 *
 * @module
 */
import postgres from "npm:postgres@3.4.9";

/** Options for {@linkcode startPgNetWorker}. */
export interface PgNetWorkerOptions {
  /** Poll interval in ms, the fallback for missed notifications (default 100). */
  pollMs?: number;
  /** Rows taken from the queue per round (pg_net's default batch size is 200). */
  batchSize?: number;
  /** Where reconnect and delivery problems are reported (default: console.warn). */
  log?: (message: string) => void;
}

/** A running worker. */
export interface PgNetWorker {
  /** Stops polling, aborts a request in flight and closes the connections; safe to call twice. */
  stop(): Promise<void>;
}

/** What pg_net sends in `user-agent`. */
export const PG_NET_USER_AGENT = "pg_net/0.20.4";
const CHANNEL = "pg_net_queue";

/** A row taken from `net.http_request_queue`. */
interface QueuedRequest {
  id: string;
  method: string;
  url: string;
  headers: Record<string, unknown> | null;
  body: Uint8Array | null;
  timeout_milliseconds: number;
}

/** The row pg_net writes to `net._http_response` for one request. */
interface HttpOutcome {
  status_code: number | null;
  content_type: string | null;
  headers: Record<string, string> | null;
  content: string | null;
  timed_out: boolean;
  error_msg: string | null;
}

/** Starts the worker against dbUrl; it never throws afterwards, it reconnects with backoff instead. */
export function startPgNetWorker(dbUrl: string, opts: PgNetWorkerOptions = {}): PgNetWorker {
  const pollMs = opts.pollMs ?? 100;
  const batchSize = opts.batchSize ?? 200;
  const log = opts.log ?? ((m: string) => console.warn(`pg_net worker: ${m}`));
  const connect = (): postgres.Sql => {
    const client = postgres(dbUrl, {
      max: 1,
      connect_timeout: 5,
      fetch_types: false,
      onnotice: () => {},
      // A lost connection ends the client, so nothing waits on it forever; the loop makes a new one.
      onclose: () => void client.end({ timeout: 0 }).catch(() => {}),
    });
    return client;
  };
  const db = renewable(connect);
  const stopping = new AbortController();
  let listener: postgres.Sql | null = null;
  let wake: (() => void) | null = null;
  let pending = false;

  const wakeUp = () => {
    pending = true;
    wake?.();
  };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (pending || stopping.signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      wake = done;
      function done() {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
    });
  const dropListener = () => {
    listener?.end({ timeout: 0 }).catch(() => {});
    listener = null;
  };

  const loop = (async () => {
    let backoff = 0;
    let lastError = "";
    while (!stopping.signal.aborted) {
      try {
        // LISTEN only speeds delivery up (polling is the fallback), so it is never waited for. A fresh
        // client per LISTEN: after a failed LISTEN, postgres.js cannot listen on that instance again.
        if (!listener) {
          const l = listener = connect();
          l.listen(CHANNEL, wakeUp).catch(() => void (listener === l && dropListener()));
        }
        pending = false;
        const taken = await drainOnce(db, batchSize, stopping.signal, log);
        if (backoff) log("reconnected");
        backoff = 0;
        lastError = "";
        if (taken === batchSize) continue;
        await sleep(pollMs);
      } catch (e) {
        if (stopping.signal.aborted) break;
        dropListener();
        db.renew();
        backoff = Math.min(backoff ? backoff * 2 : 100, 2000);
        const message = (e as Error).message;
        if (message !== lastError) log(`database unavailable (${message}); retrying`);
        lastError = message;
        await sleep(backoff);
      }
    }
  })();

  let stopped: Promise<void> | null = null;
  return {
    stop() {
      stopped ??= (async () => {
        stopping.abort();
        wake?.();
        await loop;
        dropListener();
        await db.current.end({ timeout: 1 });
      })();
      return stopped;
    },
  };
}

/** Takes one batch in id order and delivers its requests in parallel; returns how many rows it took, throws on database errors. */
async function drainOnce(
  db: Renewable,
  batchSize: number,
  stop: AbortSignal,
  log: (m: string) => void,
): Promise<number> {
  // Like pg_net: the rows leave the queue first, so a crash mid-batch loses them rather than sending twice.
  const rows = await db.current<QueuedRequest[]>`
    delete from net.http_request_queue q
     using (select id from net.http_request_queue order by id limit ${batchSize} for update skip locked) pick
     where q.id = pick.id
    returning q.id, q.method, q.url, q.headers, q.body, q.timeout_milliseconds`;
  rows.sort((a, b) => Number(a.id) - Number(b.id));
  await Promise.all(rows.map(async (req) => {
    const outcome = await send(req, stop);
    if (outcome) await recordOutcome(db, req.id, outcome, stop, log);
  }));
  return rows.length;
}

// libcurl's default is to follow any number; a loop ends at pg_net's timeout anyway.
const MAX_REDIRECTS = 20;

/**
 * Sends one queued request with its own timeout, following redirects as libcurl does (a 301, 302
 * or 303 turns a POST into a GET without a body); records the final answer with the first
 * response's headers, as pg_net does. Returns null only when the worker is stopping, never throws.
 */
async function send(req: QueuedRequest, stop: AbortSignal): Promise<HttpOutcome | null> {
  const headers = new Headers({ "user-agent": PG_NET_USER_AGENT });
  for (const [k, v] of Object.entries(req.headers ?? {})) headers.set(k, String(v));
  const started = performance.now();
  const signal = AbortSignal.any([AbortSignal.timeout(req.timeout_milliseconds), stop]);
  let method = req.method;
  let body = req.body && req.method !== "GET" ? new Uint8Array(req.body) : undefined;
  let url = req.url;
  let first: Headers | undefined;
  try {
    for (let hops = 0;; hops++) {
      const res = await fetch(url, { method, headers, body, signal, redirect: "manual" });
      first ??= res.headers;
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location && hops < MAX_REDIRECTS) {
        await res.body?.cancel();
        url = new URL(location, url).href;
        if ([301, 302, 303].includes(res.status) && method !== "GET" && method !== "HEAD") {
          method = "GET";
          body = undefined;
        }
        continue;
      }
      const content = (await res.text()).replaceAll("\u0000", "");
      return {
        status_code: res.status,
        content_type: res.headers.get("content-type"),
        headers: Object.fromEntries(first),
        content,
        timed_out: false,
        error_msg: null,
      };
    }
  } catch (e) {
    if (stop.aborted) return null;
    const elapsed = (performance.now() - started).toFixed(6);
    if ((e as Error).name === "TimeoutError") {
      // pg_net's wording, with libcurl's phases; fetch does not expose DNS and connect times separately.
      return failure(
        `Timeout of ${req.timeout_milliseconds} ms reached. Total time: ${elapsed} ms (DNS time: 0.000000 ms, TCP/SSL handshake time: 0.000000 ms, HTTP Request/Response time: ${elapsed} ms)`,
        true,
      );
    }
    return failure(curlStyleMessage(e as Error), false);
  }
}

/** Maps a fetch failure to the libcurl wording pg_net records; throws nothing. */
function curlStyleMessage(e: Error): string {
  const text = `${e.message} ${(e.cause as Error | undefined)?.message ?? ""}`;
  if (/connection refused|tcp connect error/i.test(text)) return "Couldn't connect to server";
  if (/dns error|failed to lookup|name or service not known/i.test(text)) {
    return "Couldn't resolve host name";
  }
  if (/invalid url|relative url|url parse/i.test(text)) {
    return "URL using bad/illegal format or missing URL";
  }
  return e.message;
}

/** An outcome without a response. */
function failure(error_msg: string, timed_out: boolean): HttpOutcome {
  return {
    status_code: null,
    content_type: null,
    headers: null,
    content: null,
    timed_out,
    error_msg,
  };
}

/** Inserts the outcome, retrying on a fresh client through a database restart for up to ~10 s; throws nothing. */
async function recordOutcome(
  db: Renewable,
  id: string,
  o: HttpOutcome,
  stop: AbortSignal,
  log: (m: string) => void,
): Promise<void> {
  for (let attempt = 0; attempt < 20 && !stop.aborted; attempt++) {
    const sql = db.current;
    const headers = o.headers ? sql.json(o.headers) : null;
    try {
      await sql`
        insert into net._http_response (id, status_code, content_type, headers, content, timed_out, error_msg)
        values (${id}, ${o.status_code}, ${o.content_type}, ${headers}, ${o.content}, ${o.timed_out}, ${o.error_msg})`;
      return;
    } catch (e) {
      if (attempt === 0) log(`could not record response ${id} (${(e as Error).message}); retrying`);
      db.renew();
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  log(`dropped response ${id}`);
}

/** A client that can be swapped for a fresh one. */
interface Renewable {
  current: postgres.Sql;
  /** Ends the current client (without waiting) and makes a new one. */
  renew(): void;
}

/** Holds a client made by connect and replaces it on demand; throws nothing. */
function renewable(connect: () => postgres.Sql): Renewable {
  const holder: Renewable = {
    current: connect(),
    renew() {
      // postgres.js can leave a broken connection behind after a server restart: never reuse it.
      holder.current.end({ timeout: 0 }).catch(() => {});
      holder.current = connect();
    },
  };
  return holder;
}
