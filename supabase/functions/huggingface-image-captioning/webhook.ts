/**
 * Database Webhook requests: the shared-secret check and the standard payload
 * `{type, table, schema, record, old_record}`.
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { HttpError } from "../_shared/http/mod.ts";

/** The header the webhook's trigger sends its shared secret in. */
export const WEBHOOK_SECRET_HEADER = "x-webhook-secret";

/** A Database Webhook event for a row of `schema.table`. */
export interface WebhookEvent<R> {
  type: "INSERT" | "UPDATE" | "DELETE";
  table: string;
  schema: string;
  record: R | null;
  old_record: Record<string, unknown> | null;
}

/** The `storage.objects` fields the pipeline reads. */
export interface StorageObjectRecord {
  id: string;
  bucket_id: string;
  name: string;
  version?: string | null;
  owner_id?: string | null;
  metadata?: { mimetype?: string; size?: number; [key: string]: unknown } | null;
}

/**
 * Checks the webhook secret header in constant time.
 * @throws {HttpError} 401 when it is missing or wrong.
 */
export function verifyWebhookSecret(req: Request, expected: string): void {
  const given = req.headers.get(WEBHOOK_SECRET_HEADER);
  // Comparing digests keeps the comparison constant-time whatever the lengths.
  const digest = (value: string) => createHash("sha256").update(value).digest();
  if (given === null || !timingSafeEqual(digest(given), digest(expected))) {
    throw new HttpError(401, `Missing or wrong ${WEBHOOK_SECRET_HEADER} header`);
  }
}

const EVENT_KEYS = new Set(["type", "table", "schema", "record", "old_record"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Validates a parsed body as a webhook event on `storage.objects`.
 * @throws {HttpError} 400 naming the first malformed or unexpected field.
 */
export function parseStorageObjectEvent(body: unknown): WebhookEvent<StorageObjectRecord> {
  const invalid = (field: string, problem: string) => new HttpError(400, `${field} ${problem}`, { field });
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, "Webhook body must be a JSON object");
  }
  const event = body as Record<string, unknown>;
  for (const key of Object.keys(event)) {
    if (!EVENT_KEYS.has(key)) throw invalid(key, "is not a webhook payload field");
  }
  if (event.type !== "INSERT" && event.type !== "UPDATE" && event.type !== "DELETE") {
    throw invalid("type", "must be INSERT, UPDATE or DELETE");
  }
  if (event.schema !== "storage") throw invalid("schema", "must be 'storage'");
  if (event.table !== "objects") throw invalid("table", "must be 'objects'");
  if (event.old_record !== undefined && event.old_record !== null && !isObject(event.old_record)) {
    throw invalid("old_record", "must be an object or null");
  }
  const old_record = (event.old_record ?? null) as Record<string, unknown> | null;
  if (event.type === "DELETE") {
    return { type: event.type, schema: "storage", table: "objects", record: null, old_record };
  }
  if (!isObject(event.record)) throw invalid("record", "must be an object");
  const record = event.record as Record<string, unknown>;
  if (typeof record.id !== "string" || !UUID.test(record.id)) throw invalid("record.id", "must be a uuid");
  if (typeof record.bucket_id !== "string" || record.bucket_id === "") {
    throw invalid("record.bucket_id", "must be a non-empty string");
  }
  if (typeof record.name !== "string" || record.name === "") throw invalid("record.name", "must be a non-empty string");
  if (record.metadata !== undefined && record.metadata !== null && !isObject(record.metadata)) {
    throw invalid("record.metadata", "must be an object or null");
  }
  return {
    type: event.type,
    schema: "storage",
    table: "objects",
    record: record as unknown as StorageObjectRecord,
    old_record,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
