/**
 * Database Webhook requests: the shared-secret header and the storage.objects event payload.
 */
import assert from "node:assert/strict";
import { HttpError } from "../../supabase/functions/_shared/http/mod.ts";
import {
  parseStorageObjectEvent,
  verifyWebhookSecret,
  WEBHOOK_SECRET_HEADER,
} from "../../supabase/functions/huggingface-image-captioning/webhook.ts";

const SECRET = "whsec_3f9c2a7d1e8b4c6a";

function withSecret(value?: string): Request {
  const headers: Record<string, string> = value === undefined ? {} : { [WEBHOOK_SECRET_HEADER]: value };
  return new Request("http://functions.test/functions/v1/huggingface-image-captioning", {
    method: "POST",
    headers,
  });
}

/** Runs `fn` and returns the HttpError it throws. */
function httpErrorOf(fn: () => unknown): HttpError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof HttpError, `expected an HttpError, got ${error}`);
    return error;
  }
  assert.fail("expected an HttpError");
}

/** A storage.objects row as the Storage API commits it for an upload of `name`. */
function objectRow(overrides: Record<string, unknown> = {}) {
  return {
    id: "8e2f7c1a-4b3d-4e5f-9a6b-7c8d9e0f1a2b",
    bucket_id: "images",
    name: "uploads/2026/llama.png",
    owner: null,
    owner_id: null,
    created_at: "2026-11-22T10:00:00.000000+00:00",
    updated_at: "2026-11-22T10:00:00.000000+00:00",
    last_accessed_at: "2026-11-22T10:00:00.000000+00:00",
    metadata: {
      eTag: '"9b2cf535f27731c974343645a3985328"',
      size: 5234,
      mimetype: "image/png",
      cacheControl: "max-age=3600",
      lastModified: "2026-11-22T10:00:00.000Z",
      contentLength: 5234,
      httpStatusCode: 200,
    },
    path_tokens: ["uploads", "2026", "llama.png"],
    version: "0f5e6d7c-8b9a-4c3d-2e1f-0a9b8c7d6e5f",
    user_metadata: null,
    ...overrides,
  };
}

function event(overrides: Record<string, unknown> = {}) {
  return {
    type: "INSERT",
    table: "objects",
    schema: "storage",
    record: objectRow(),
    old_record: null,
    ...overrides,
  };
}

/** Asserts `body` is refused with 400 naming `field`. */
function assertRejected(body: unknown, field: string, label = field) {
  const error = httpErrorOf(() => parseStorageObjectEvent(body));
  assert.equal(error.status, 400, label);
  assert.deepEqual(error.details, { field }, label);
  assert.ok(error.message.startsWith(`${field} `), `${label}: ${error.message}`);
}

// --- The shared secret -----------------------------------------------------------------------

Deno.test("verifyWebhookSecret accepts the right secret", () => {
  verifyWebhookSecret(withSecret(SECRET), SECRET);
});

Deno.test("verifyWebhookSecret refuses a missing, wrong, shorter, longer or empty secret with 401", () => {
  for (
    const given of [
      undefined,
      "whsec_3f9c2a7d1e8b4c6b",
      "whsec_3f9c",
      `${SECRET}0`,
      "",
      SECRET.toUpperCase(),
    ]
  ) {
    const error = httpErrorOf(() => verifyWebhookSecret(withSecret(given), SECRET));
    assert.equal(error.status, 401, String(given));
    assert.equal(error.message, "Missing or wrong x-webhook-secret header");
    assert.ok(!error.message.includes(SECRET));
  }
});

Deno.test("the secret header name is case-insensitive on the wire", () => {
  const req = new Request("http://functions.test/", { headers: { "X-Webhook-Secret": SECRET } });
  verifyWebhookSecret(req, SECRET);
});

// --- The payload -----------------------------------------------------------------------------

Deno.test("an INSERT of a storage object is accepted with its record", () => {
  const parsed = parseStorageObjectEvent(event());
  assert.equal(parsed.type, "INSERT");
  assert.equal(parsed.schema, "storage");
  assert.equal(parsed.table, "objects");
  assert.deepEqual(parsed.record, objectRow());
  assert.equal(parsed.record?.metadata?.mimetype, "image/png");
  assert.equal(parsed.old_record, null);
});

Deno.test("an UPDATE (an upsert over the same path) keeps record and old_record", () => {
  const old_record = objectRow({ version: "1a2b3c4d-0000-4000-8000-000000000000" });
  const parsed = parseStorageObjectEvent(event({ type: "UPDATE", old_record }));
  assert.equal(parsed.type, "UPDATE");
  assert.deepEqual(parsed.old_record, old_record);
  assert.equal(parsed.record?.id, old_record.id);
});

Deno.test("a DELETE with record null is accepted, carrying old_record", () => {
  const parsed = parseStorageObjectEvent(
    event({ type: "DELETE", record: null, old_record: objectRow() }),
  );
  assert.equal(parsed.type, "DELETE");
  assert.equal(parsed.record, null);
  assert.deepEqual(parsed.old_record, objectRow());
});

Deno.test("optional fields may be absent or null", () => {
  const { metadata: _m, version: _v, owner_id: _o, ...bare } = objectRow();
  assert.deepEqual(parseStorageObjectEvent(event({ record: bare })).record, bare);
  assert.equal(
    parseStorageObjectEvent(event({ record: objectRow({ metadata: null }) })).record?.metadata,
    null,
  );
  const { old_record: _old, ...withoutOld } = event();
  assert.equal(parseStorageObjectEvent(withoutOld).old_record, null);
  const uppercase = "8E2F7C1A-4B3D-4E5F-9A6B-7C8D9E0F1A2B";
  assert.equal(
    parseStorageObjectEvent(event({ record: objectRow({ id: uppercase }) })).record?.id,
    uppercase,
  );
});

Deno.test("a body that is not a JSON object is refused with 400", () => {
  for (const body of [null, undefined, "INSERT", 42, true, [event()]]) {
    const error = httpErrorOf(() => parseStorageObjectEvent(body));
    assert.equal(error.status, 400, JSON.stringify(body));
    assert.equal(error.message, "Webhook body must be a JSON object");
  }
});

Deno.test("an unexpected top-level key is refused, named", () => {
  assertRejected(event({ extra: 1 }), "extra");
  assertRejected({ ...event(), __proto_pollution: {} }, "__proto_pollution");
});

Deno.test("a bad type, schema or table is refused, named", () => {
  for (const type of ["TRUNCATE", "insert", undefined, 1]) {
    assertRejected(event({ type }), "type", String(type));
  }
  for (const schema of ["public", "Storage", undefined]) {
    assertRejected(event({ schema }), "schema", String(schema));
  }
  for (const table of ["buckets", "object", undefined]) {
    assertRejected(event({ table }), "table", String(table));
  }
});

Deno.test("an old_record that is not an object or null is refused, named", () => {
  for (const old_record of ["row", 1, [objectRow()]]) {
    assertRejected(event({ old_record }), "old_record");
  }
});

Deno.test("an INSERT or UPDATE without an object record is refused, named", () => {
  for (const type of ["INSERT", "UPDATE"]) {
    for (const record of [null, undefined, "row", [objectRow()]]) {
      assertRejected(event({ type, record }), "record", `${type} ${JSON.stringify(record)}`);
    }
  }
});

Deno.test("a record.id that is missing or not a uuid is refused, named", () => {
  for (
    const id of [
      undefined,
      null,
      42,
      "",
      "obj-1",
      "8e2f7c1a4b3d4e5f9a6b7c8d9e0f1a2b",
      "8e2f7c1a-4b3d-4e5f-9a6b-7c8d9e0f1a2",
    ]
  ) {
    assertRejected(event({ record: objectRow({ id }) }), "record.id", String(id));
  }
});

Deno.test("an empty or non-string bucket_id or name is refused, named", () => {
  for (const bucket_id of ["", undefined, 7]) {
    assertRejected(
      event({ record: objectRow({ bucket_id }) }),
      "record.bucket_id",
      String(bucket_id),
    );
  }
  for (const name of ["", undefined, ["a", "b"]]) {
    assertRejected(event({ record: objectRow({ name }) }), "record.name", String(name));
  }
});

Deno.test("metadata that is not an object is refused, named", () => {
  for (const metadata of ["image/png", 5234, ["image/png"]]) {
    assertRejected(
      event({ record: objectRow({ metadata }) }),
      "record.metadata",
      JSON.stringify(metadata),
    );
  }
});

Deno.test("the first problem is the one named", () => {
  assertRejected(event({ extra: 1, type: "TRUNCATE" }), "extra");
  assertRejected(event({ record: objectRow({ id: "x", bucket_id: "" }) }), "record.id");
});
