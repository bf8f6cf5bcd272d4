/**
 * The shared HTTP vocabulary: composition, error shape, method filtering and body reading.
 */
import assert from "node:assert/strict";
import {
  allowMethods,
  catchErrors,
  compose,
  type Handler,
  HttpError,
  type Middleware,
  readJson,
} from "../../../supabase/functions/_shared/http/mod.ts";

const URL_ = "http://functions.test/functions/v1/any";
const ok: Handler = () => Promise.resolve(new Response("ok"));

/** A POST with the given body and headers (JSON unless told otherwise). */
function post(
  body: BodyInit | null,
  headers: HeadersInit = { "content-type": "application/json" },
): Request {
  return new Request(URL_, { method: "POST", body, headers });
}

/** A request body that arrives in `chunks` pieces of `size` bytes, with no Content-Length. */
function chunkedBody(
  chunks: number,
  size: number,
): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent === chunks) return controller.close();
      sent++;
      controller.enqueue(new TextEncoder().encode("x".repeat(size)));
    },
  });
  return { stream, pulled: () => sent };
}

/** Awaits `promise` and returns the HttpError it rejects with. */
async function httpErrorOf(promise: Promise<unknown>): Promise<HttpError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof HttpError, `expected an HttpError, got ${error}`);
    return error;
  }
  assert.fail("expected an HttpError");
}

Deno.test("compose runs the first middleware outermost and the handler last", async () => {
  const trace: string[] = [];
  const tracing = (label: string): Middleware => async (req, next) => {
    trace.push(`${label} in`);
    const res = await next(req);
    trace.push(`${label} out`);
    return res;
  };
  const handler = compose(tracing("a"), tracing("b"), () => {
    trace.push("handler");
    return Promise.resolve(new Response("done"));
  });
  assert.equal(await (await handler(new Request(URL_))).text(), "done");
  assert.deepEqual(trace, ["a in", "b in", "handler", "b out", "a out"]);
});

Deno.test("compose lets a middleware answer without calling the handler", async () => {
  let called = false;
  const handler = compose(() => Promise.resolve(new Response("short", { status: 418 })), () => {
    called = true;
    return Promise.resolve(new Response("handler"));
  });
  assert.equal((await handler(new Request(URL_))).status, 418);
  assert.equal(called, false);
});

Deno.test("compose with only a handler is that handler", async () => {
  assert.equal(await (await compose(ok)(new Request(URL_))).text(), "ok");
});

Deno.test("catchErrors turns an HttpError into JSON {error, ...details} with its status and headers", async () => {
  const handler = compose(catchErrors, () => {
    throw new HttpError(429, "slow down", { field: "prompt", retry: true }, { "Retry-After": "7" });
  });
  const res = await handler(new Request(URL_));
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "7");
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(await res.json(), { error: "slow down", field: "prompt", retry: true });
});

Deno.test("catchErrors catches a rejected promise as well as a synchronous throw", async () => {
  const handler = compose(catchErrors, () => Promise.reject(new HttpError(404, "nope")));
  const res = await handler(new Request(URL_));
  assert.equal(res.status, 404);
  assert.deepEqual(await res.json(), { error: "nope" });
});

Deno.test("catchErrors answers any other error with a 500 that reveals nothing of it", async () => {
  const secret = "postgres://admin:hunter2@db.internal:5432";
  const originalError = console.error;
  const logged: unknown[][] = [];
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    for (
      const thrown of [new Error(`cannot connect to ${secret}`), new TypeError(secret), secret]
    ) {
      const res = await compose(catchErrors, () => Promise.reject(thrown))(new Request(URL_));
      assert.equal(res.status, 500);
      const text = await res.text();
      assert.deepEqual(JSON.parse(text), { error: "Internal error" });
      assert.ok(!text.includes("hunter2"));
    }
  } finally {
    console.error = originalError;
  }
  assert.ok(
    !JSON.stringify(logged).includes("hunter2"),
    "the log names the error type, not its message",
  );
});

Deno.test("catchErrors passes successful responses through untouched", async () => {
  const res = await compose(catchErrors, ok)(new Request(URL_));
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "ok");
});

Deno.test("allowMethods passes listed methods and answers others 405 with Allow", async () => {
  const handler = compose(allowMethods("POST", "PUT"), ok);
  assert.equal((await handler(new Request(URL_, { method: "POST" }))).status, 200);
  assert.equal((await handler(new Request(URL_, { method: "PUT" }))).status, 200);
  for (const method of ["GET", "DELETE", "OPTIONS"]) {
    const res = await handler(new Request(URL_, { method }));
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.get("allow"), "POST, PUT");
    assert.deepEqual(await res.json(), { error: `Method ${method} is not allowed; use POST, PUT` });
  }
});

Deno.test("readJson parses a JSON body", async () => {
  assert.deepEqual(await readJson(post('{"prompt":"a cat","n":[1,2]}'), 1024), {
    prompt: "a cat",
    n: [1, 2],
  });
});

Deno.test("readJson accepts JSON content types with parameters or a +json suffix, and none at all", async () => {
  for (
    const type of [
      "application/json",
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
      "application/vnd.x+json",
    ]
  ) {
    assert.deepEqual(
      await readJson(post('{"a":1}', { "content-type": type }), 1024),
      { a: 1 },
      type,
    );
  }
  const untyped = new Request(URL_, {
    method: "POST",
    body: new Uint8Array(new TextEncoder().encode('{"a":2}')),
  });
  assert.equal(untyped.headers.get("content-type"), null);
  assert.deepEqual(await readJson(untyped, 1024), { a: 2 });
});

Deno.test("readJson rejects a non-JSON content type with 415", async () => {
  for (
    const type of [
      "text/plain",
      "application/x-www-form-urlencoded",
      "application/jsonp",
      "text/json",
    ]
  ) {
    const error = await httpErrorOf(readJson(post('{"a":1}', { "content-type": type }), 1024));
    assert.equal(error.status, 415, type);
  }
});

Deno.test("readJson rejects invalid JSON and an empty body with 400", async () => {
  for (const body of ["{not json", '{"a":', ""]) {
    const error = await httpErrorOf(
      readJson(post(body, { "content-type": "application/json" }), 1024),
    );
    assert.equal(error.status, 400, JSON.stringify(body));
    assert.equal(error.message, "Request body is not valid JSON");
  }
});

Deno.test("readJson rejects a declared Content-Length over the limit with 413", async () => {
  const body = JSON.stringify({ prompt: "x".repeat(200) });
  const req = post(body, {
    "content-type": "application/json",
    "content-length": String(body.length),
  });
  const error = await httpErrorOf(readJson(req, 100));
  assert.equal(error.status, 413);
  assert.equal(error.message, "Request body is larger than 100 bytes");
  assert.equal(req.bodyUsed, false, "the body is refused without being read");
});

Deno.test("readJson accepts a body of exactly the limit", async () => {
  const body = JSON.stringify({ p: "x".repeat(50) });
  const req = post(body, {
    "content-type": "application/json",
    "content-length": String(body.length),
  });
  assert.deepEqual(await readJson(req, body.length), { p: "x".repeat(50) });
});

Deno.test("readJson rejects a chunked body that streams past the limit with 413, without reading it all", async () => {
  const { stream, pulled } = chunkedBody(1000, 64);
  const req = post(stream, { "content-type": "application/json" });
  assert.equal(req.headers.get("content-length"), null);
  const error = await httpErrorOf(readJson(req, 1000));
  assert.equal(error.status, 413);
  assert.ok(pulled() < 100, `read ${pulled()} chunks of 1000 for a 1000-byte limit`);
});

Deno.test("readJson reassembles a chunked body under the limit", async () => {
  const parts = ['{"prompt":', '"a ', 'cat"}'];
  const stream = ReadableStream.from(parts.map((p) => new TextEncoder().encode(p)));
  assert.deepEqual(await readJson(post(stream, { "content-type": "application/json" }), 1024), {
    prompt: "a cat",
  });
});
