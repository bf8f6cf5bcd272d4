/**
 * Where cached answers live: the `inference_cache_*` RPCs of the result-cache migration (JSON in
 * `cache.entries`) and the private Storage bucket `inference-cache` (binary answers), reached
 * with supabase-js and the service key.
 * @module
 */
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";

/** The private bucket the migration creates for binary answers. */
export const CACHE_BUCKET = "inference-cache";

/** A stored answer. */
export interface CachedAnswer {
  task: string;
  model: string;
  contentType: string;
  body: Uint8Array<ArrayBuffer> | Blob;
  byteSize: number;
  hits: number;
  createdAt: Date;
}

/** An answer to store. */
export interface AnswerToStore {
  key: string;
  task: string;
  model: string;
  contentType: string;
  bytes: Uint8Array;
}

/** The outcome of a claim: produce it (and keep the token), read it, or wait for another producer. */
export type Claim = { outcome: "claimed"; token: string } | { outcome: "ready" | "pending" };

/** The operations the result cache needs; every one throws when the database or Storage fails. */
export interface CacheStore {
  /** Returns the fresh answer stored under `key` (counting the hit), or null. */
  lookup(key: string): Promise<CachedAnswer | null>;
  /** Claims the right to produce the answer for `key` for `leaseSeconds`. */
  claim(key: string, task: string, model: string, leaseSeconds: number): Promise<Claim>;
  /** Stores an answer, replacing what the key held (and ending its claim). */
  save(answer: AnswerToStore): Promise<void>;
  /** Gives up a claim, so that waiters stop waiting. */
  release(key: string, token: string): Promise<void>;
  /** Evicts (TTL, size cap) and deletes up to `limit` evicted objects from Storage; returns how many. */
  sweep(limit?: number): Promise<number>;
}

/** Thrown when the database or Storage fails; the message names the operation, never a secret. */
export class CacheStoreError extends Error {
  override name = "CacheStoreError";
}

/** Builds a {@linkcode CacheStore} on a supabase-js client that holds the service key. */
export function createSupabaseCacheStore(db: SupabaseClient, { bucket = CACHE_BUCKET } = {}): CacheStore {
  const rpc = async <T>(name: string, args: Record<string, unknown>): Promise<T> => {
    const { data, error } = await db.rpc(name, args);
    if (error) throw new CacheStoreError(`${name} failed: ${error.message}`);
    return data as T;
  };

  return {
    async lookup(key) {
      const rows = await rpc<LookupRow[]>("inference_cache_lookup", { cache_key: key });
      const row = rows?.[0];
      if (!row) return null;
      let body: Uint8Array<ArrayBuffer> | Blob;
      if (row.object_path !== null) {
        const { data, error } = await db.storage.from(bucket).download(row.object_path);
        // An entry whose object is gone is a miss; the next store replaces it.
        if (error || !data) return null;
        body = data;
      } else {
        body = new TextEncoder().encode(row.body ?? "");
      }
      return {
        task: row.task,
        model: row.model,
        contentType: row.content_type,
        body,
        byteSize: Number(row.byte_size),
        hits: Number(row.hits),
        createdAt: new Date(row.created_at),
      };
    },

    async claim(key, task, model, leaseSeconds) {
      const rows = await rpc<{ outcome: Claim["outcome"]; lease_token: string | null }[]>("inference_cache_claim", {
        cache_key: key,
        task,
        model,
        lease_seconds: leaseSeconds,
      });
      const row = rows?.[0];
      if (!row) throw new CacheStoreError("inference_cache_claim returned nothing");
      return row.outcome === "claimed" ? { outcome: "claimed", token: row.lease_token! } : { outcome: row.outcome };
    },

    async save({ key, task, model, contentType, bytes }) {
      const json = jsonText(contentType, bytes);
      if (json !== undefined) {
        await rpc("inference_cache_put", {
          cache_key: key,
          task,
          model,
          content_type: contentType,
          body: json,
          byte_size: bytes.byteLength,
        });
        return;
      }
      // A fresh path per store, so a replaced entry's queued deletion never hits the new object.
      const path = `${task}/${key.slice(0, 2)}/${key}-${crypto.randomUUID()}`;
      const { error } = await db.storage.from(bucket).upload(path, bytes, { contentType, upsert: false });
      if (error) throw new CacheStoreError(`cache object upload failed: ${error.message}`);
      try {
        await rpc("inference_cache_put", {
          cache_key: key,
          task,
          model,
          content_type: contentType,
          object_path: path,
          byte_size: bytes.byteLength,
        });
      } catch (error) {
        await db.storage.from(bucket).remove([path]).catch(() => {});
        throw error;
      }
    },

    async release(key, token) {
      await rpc("inference_cache_release", { cache_key: key, lease_token: token });
    },

    async sweep(limit = 100) {
      const rows = await rpc<{ path: string }[]>("inference_cache_evict", { max_objects: limit });
      const paths = (rows ?? []).map((r) => r.path);
      if (paths.length === 0) return 0;
      const { error } = await db.storage.from(bucket).remove(paths);
      if (error) throw new CacheStoreError(`cache object removal failed: ${error.message}`);
      return await rpc<number>("inference_cache_forget_objects", { paths: paths.join("\n") });
    },
  };
}

interface LookupRow {
  task: string;
  model: string;
  content_type: string;
  body: string | null;
  object_path: string | null;
  byte_size: number | string;
  hits: number | string;
  created_at: string;
}

/** The body as text when it is a JSON answer the table can hold, else undefined (it goes to Storage). */
function jsonText(contentType: string, bytes: Uint8Array): string | undefined {
  if (!/^application\/([\w.+-]*\+)?json\b/i.test(contentType)) return undefined;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    JSON.parse(text);
    // PostgreSQL's json type refuses the NUL character (\u0000) in text; such an answer goes to Storage.
    return text.includes("\\u0000") ? undefined : text;
  } catch {
    return undefined;
  }
}
