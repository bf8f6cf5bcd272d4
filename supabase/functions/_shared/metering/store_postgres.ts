/**
 * A {@linkcode MeterStore} over a direct PostgreSQL connection, for projects that set
 * `INFERENCE_DB_URL` (e.g. the transaction pooler's URL): one statement per reserve instead of an
 * HTTP request through the API gateway and PostgREST, which keeps the quota check within a
 * millisecond or two of the function. The SQL functions are the same as the RPC store's.
 * @module
 */
import postgres from "npm:postgres@3.4.9";
import { type MeterStore, type Reservation, settlementRow } from "./store.ts";

// A reserve that has not answered in this long counts as an outage (answered 503).
const QUERY_TIMEOUT_MS = 5_000;

/** Builds the store; connections open on first use, a few per instance. */
export function createPostgresMeterStore(url: string): MeterStore {
  const sql = postgres(url, {
    max: 4,
    // The transaction pooler does not keep prepared statements across transactions.
    prepare: false,
    fetch_types: false,
    connect_timeout: 5,
    idle_timeout: 60,
    onnotice: () => {},
  });
  return {
    async reserve({ key, userId, tier, task }) {
      const [row] = await withTimeout(
        sql`select public.inference_reserve(${key}, ${userId}, ${tier}, ${task}) as r`,
        "inference_reserve",
      );
      return row.r as Reservation;
    },
    async settle(settlements) {
      const rows = JSON.stringify(settlements.map(settlementRow));
      await withTimeout(sql`select public.inference_settle_many(${rows}::text::jsonb)`, "inference_settle_many");
    },
  };
}

async function withTimeout<T>(query: Promise<T>, name: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} timed out`)), QUERY_TIMEOUT_MS);
  });
  try {
    return await Promise.race([query, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
