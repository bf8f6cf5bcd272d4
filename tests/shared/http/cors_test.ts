/**
 * CORS: the preflight answer, and the headers on every other response.
 */
import assert from "node:assert/strict";
import { cors, corsHeaders } from "../../../supabase/functions/_shared/http/cors.ts";
import { catchErrors, compose, type Handler, HttpError } from "../../../supabase/functions/_shared/http/mod.ts";

const URL_ = "http://functions.test/functions/v1/any";

const EXPECTED = {
  "access-control-allow-origin": "*",
  "access-control-allow-headers": "authorization, x-client-info, apikey, content-type",
  "access-control-allow-methods": "POST, OPTIONS",
  "access-control-max-age": "86400",
  "access-control-expose-headers": "RateLimit, RateLimit-Policy, Retry-After, X-Model, X-Cache",
};

function assertCors(res: Response) {
  for (const [name, value] of Object.entries(EXPECTED)) {
    assert.equal(res.headers.get(name), value, name);
  }
}

Deno.test("corsHeaders are the documented set", () => {
  assert.deepEqual(
    Object.fromEntries(Object.entries(corsHeaders).map(([k, v]) => [k.toLowerCase(), v])),
    EXPECTED,
  );
});

Deno.test("answers the OPTIONS preflight with 204 and the CORS headers, without calling the handler", async () => {
  let called = false;
  const handler = compose(cors, () => {
    called = true;
    return Promise.resolve(new Response("handler"));
  });
  const res = await handler(
    new Request(URL_, {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST" },
    }),
  );
  assert.equal(res.status, 204);
  assertCors(res);
  assert.equal(await res.text(), "");
  assert.equal(called, false);
});

Deno.test("adds the CORS headers to a normal response and keeps its status, headers and body", async () => {
  const handler = compose(cors, () =>
    Promise.resolve(
      new Response("made", {
        status: 201,
        headers: { "content-type": "text/plain", "x-custom": "kept" },
      }),
    ));
  const res = await handler(new Request(URL_, { method: "POST" }));
  assert.equal(res.status, 201);
  assertCors(res);
  assert.equal(res.headers.get("x-custom"), "kept");
  assert.equal(await res.text(), "made");
});

Deno.test("adds the CORS headers to an error answered by catchErrors inside it", async () => {
  const handler = compose(
    cors,
    catchErrors,
    () => Promise.reject(new HttpError(401, "who are you")),
  );
  const res = await handler(new Request(URL_, { method: "POST" }));
  assert.equal(res.status, 401);
  assertCors(res);
  assert.deepEqual(await res.json(), { error: "who are you" });
});

Deno.test("overrides a conflicting CORS header set by the handler", async () => {
  const handler: Handler = compose(
    cors,
    () =>
      Promise.resolve(
        new Response("x", { headers: { "access-control-allow-origin": "https://other" } }),
      ),
  );
  assertCors(await handler(new Request(URL_, { method: "POST" })));
});

Deno.test("copies a response whose headers are immutable (a fetched one) and keeps its body streaming", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      new Response("from upstream", {
        status: 202,
        headers: { "content-type": "text/plain", "x-upstream": "yes" },
      }),
  );
  try {
    const handler = compose(cors, () => fetch(`http://127.0.0.1:${server.addr.port}/`));
    const res = await handler(new Request(URL_, { method: "POST" }));
    assert.equal(res.status, 202);
    assert.equal(res.statusText, "Accepted");
    assertCors(res);
    assert.equal(res.headers.get("x-upstream"), "yes");
    assert.equal(res.headers.get("content-type"), "text/plain");
    assert.equal(await res.text(), "from upstream");
  } finally {
    await server.shutdown();
  }
});

Deno.test("a fetched Response really has immutable headers (the case the copy exists for)", async () => {
  const res = await fetch("data:text/plain,hi");
  assert.throws(() => res.headers.set("x", "y"), TypeError);
  await res.body?.cancel();
});
