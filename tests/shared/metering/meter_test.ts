/**
 * The metering middleware with an in-memory store: who gets through, the refusals and their
 * headers, and how each outcome is settled (after the body, never before).
 */
import assert from "node:assert/strict";
import { catchErrors, compose, type Handler, HttpError } from "../../../supabase/functions/_shared/http/mod.ts";
import { createIdentify } from "../../../supabase/functions/_shared/identity/mod.ts";
import { createMeter, rateLimitHeaders } from "../../../supabase/functions/_shared/metering/meter.ts";
import { createMemoryMeterStore } from "../../support/memory_meter.ts";
import { LOCAL_JWT_SECRET, signHs256, userToken } from "../../support/tokens.ts";
import { signKey } from "../../stack/keys.ts";

const URL_ = "http://functions.test/functions/v1/text-to-image";
const ENV = { SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET, SUPABASE_SECRET_KEYS: '{"default":"sb_secret_right"}' };

function setup(handler: Handler, env: Record<string, string> = {}) {
  const store = createMemoryMeterStore();
  const background: Promise<unknown>[] = [];
  const meter = createMeter({ ...ENV, ...env }, { meterStore: store, waitUntil: (p) => void background.push(p) });
  return {
    store,
    fn: compose(catchErrors, createIdentify({ ...ENV, ...env }), meter("text-to-image"), handler),
    settledAll: () => Promise.all(background),
  };
}

const image: Handler = () =>
  Promise.resolve(new Response(new Uint8Array(1234), { headers: { "content-type": "image/png", "x-model": "m/1" } }));

async function post(fn: Handler, token?: string, headers: Record<string, string> = {}) {
  return await fn(
    new Request(URL_, {
      method: "POST",
      body: '{"prompt":"a cat"}',
      headers: {
        "content-type": "application/json",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
    }),
  );
}

Deno.test("the anon key, the publishable key, no token and bad tokens get 401 'Sign in' and reserve nothing", async () => {
  const { fn, store } = setup(image);
  const cases: [string, Record<string, string>][] = [
    ["anon JWT", { authorization: `Bearer ${await signKey("anon")}` }],
    ["anon apikey only", { apikey: await signKey("anon") }],
    ["publishable key", { apikey: "sb_publishable_abc", authorization: "Bearer sb_publishable_abc" }],
    ["nothing", {}],
    ["expired", { authorization: `Bearer ${await userToken(undefined, LOCAL_JWT_SECRET, -120)}` }],
    ["forged", { authorization: `Bearer ${await userToken(undefined, "another-secret-another-secret-1234")}` }],
    ["unknown secret key", { authorization: "Bearer sb_secret_wrong" }],
    ["not bearer", { authorization: "Basic abc" }],
  ];
  for (const [label, headers] of cases) {
    const res = await post(fn, undefined, headers);
    assert.equal(res.status, 401, label);
    const body = await res.json();
    assert.equal(body.error, "Sign in to use this function", label);
  }
  assert.equal(store.reserved.length, 0);
});

Deno.test("a signed-in user is served with RateLimit headers; usage is settled when the body ends", async () => {
  const { fn, store, settledAll } = setup(image);
  const sub = crypto.randomUUID();
  const res = await post(fn, await userToken(sub), { "content-length": "18" });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("ratelimit-policy"), '"requests_per_minute";q=20;w=60, "units_per_day";q=1000;w=86400');
  assert.equal(res.headers.get("ratelimit"), '"requests_per_minute";r=19;t=42, "units_per_day";r=990;t=3600');
  assert.deepEqual(store.reserved, [{ key: `user:${sub}`, userId: sub, tier: "authenticated", task: "text-to-image" }]);
  assert.equal(store.settled.length, 0, "settled before the body was sent");
  assert.equal((await res.arrayBuffer()).byteLength, 1234);
  await settledAll();
  const [s] = store.settled;
  assert.equal(s.charge, true);
  assert.equal(s.reserved, 10);
  assert.equal(s.status, 200);
  assert.equal(s.model, "m/1");
  assert.equal(s.outputBytes, 1234);
  assert.equal(s.inputBytes, 18);
  assert.equal(s.cache, null);
  assert.equal(s.userId, sub);
});

Deno.test("an anonymous sign-in is a caller on the anonymous tier", async () => {
  const { fn, store } = setup(image);
  const sub = crypto.randomUUID();
  const token = await signHs256({ sub, role: "authenticated", aud: "authenticated", is_anonymous: true });
  const res = await post(fn, token);
  assert.equal(res.status, 200);
  await res.body?.cancel();
  assert.equal(store.reserved[0].tier, "anonymous");
  assert.match(res.headers.get("ratelimit-policy")!, /q=5;w=60/);
});

Deno.test("INFERENCE_ALLOW_ANON keys public callers on x-forwarded-for's first entry", async () => {
  const { fn, store } = setup(image, { INFERENCE_ALLOW_ANON: "true" });
  const res = await post(fn, await signKey("anon"), { "x-forwarded-for": "203.0.113.7, 10.0.0.1" });
  assert.equal(res.status, 200);
  await res.body?.cancel();
  const res2 = await post(fn, undefined, { apikey: "sb_publishable_x", "x-forwarded-for": "198.51.100.2" });
  assert.equal(res2.status, 200);
  await res2.body?.cancel();
  assert.deepEqual(store.reserved.map((r) => [r.key, r.userId, r.tier]), [
    ["ip:203.0.113.7", null, "anonymous"],
    ["ip:198.51.100.2", null, "anonymous"],
  ]);
});

Deno.test("the service role (legacy JWT or sb_secret key) is never limited, and its calls are still logged", async () => {
  const { fn, store, settledAll } = setup(image);
  store.tiers.authenticated.requests_per_minute = 0;
  for (const token of [await signKey("service_role"), "sb_secret_right"]) {
    const res = await post(fn, token);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("ratelimit"), null);
    await res.arrayBuffer();
  }
  await settledAll();
  assert.equal(store.reserved.length, 0);
  assert.deepEqual(store.settled.map((s) => [s.caller, s.reserved, s.charge]), [
    ["service_role", 0, true],
    ["service_role", 0, true],
  ]);
});

Deno.test("429 at the per-minute limit: Retry-After, RateLimit headers, JSON limit and retry_after_seconds", async () => {
  const { fn, store, settledAll } = setup(image);
  store.tiers.authenticated.requests_per_minute = 2;
  const token = await userToken();
  for (let i = 0; i < 2; i++) await (await post(fn, token)).arrayBuffer();
  const res = await post(fn, token);
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "42");
  assert.equal(res.headers.get("ratelimit"), '"requests_per_minute";r=0;t=42, "units_per_day";r=980;t=3600');
  assert.ok(res.headers.get("ratelimit-policy"));
  const body = await res.json();
  assert.deepEqual({ limit: body.limit, retry: body.retry_after_seconds }, { limit: "requests_per_minute", retry: 42 });
  assert.match(body.error, /2 requests per minute/);
  await settledAll();
  assert.deepEqual(store.settled.map((s) => [s.status, s.charge]), [[200, true], [200, true], [429, false]]);
});

Deno.test("429 at the daily units limit; 503 at the project ceiling, both before the handler runs", async () => {
  let calls = 0;
  const { fn, store } = setup(() => (calls++, image(new Request(URL_))));
  store.tiers.authenticated.units_per_day = 10;
  const token = await userToken();
  await (await post(fn, token)).arrayBuffer();
  const daily = await post(fn, token);
  assert.equal(daily.status, 429);
  assert.equal(daily.headers.get("retry-after"), "3600");
  assert.equal((await daily.json()).limit, "units_per_day");
  store.ceiling = 10;
  const ceiling = await post(fn, await userToken());
  assert.equal(ceiling.status, 503);
  assert.equal(ceiling.headers.get("retry-after"), "3600");
  assert.deepEqual(await ceiling.json(), {
    error: "The project's daily inference budget is used up; it resets at midnight UTC",
    limit: "project_units_per_day",
    retry_after_seconds: 3600,
  });
  assert.equal(calls, 1);
});

Deno.test("a thrown 400 is charged nothing, a 5xx is refunded, both keep their status and get RateLimit headers", async () => {
  for (const status of [400, 502, 504]) {
    const { fn, store, settledAll } = setup(() => Promise.reject(new HttpError(status, "nope", { field: "prompt" })));
    const res = await post(fn, await userToken());
    assert.equal(res.status, status);
    assert.ok(res.headers.get("ratelimit"));
    assert.deepEqual(await res.json(), { error: "nope", field: "prompt" });
    await settledAll();
    assert.deepEqual(store.settled.map((s) => [s.status, s.reserved, s.charge]), [[status, 10, false]]);
    assert.equal(store.counters.get("project")!.units, 0, `status ${status} left units taken`);
  }
});

Deno.test("an unexpected error is refunded and rethrown to catchErrors as a 500", async () => {
  const { fn, store, settledAll } = setup(() => Promise.reject(new Error("boom")));
  const res = await post(fn, await userToken());
  assert.equal(res.status, 500);
  await settledAll();
  assert.deepEqual(store.settled.map((s) => [s.status, s.charge]), [[500, false]]);
});

Deno.test("X-Cache: HIT costs nothing and is logged as cache 'hit'", async () => {
  const { fn, store, settledAll } = setup(() => Promise.resolve(new Response("{}", { headers: { "x-cache": "HIT" } })));
  await (await post(fn, await userToken())).arrayBuffer();
  await settledAll();
  assert.deepEqual(store.settled.map((s) => [s.charge, s.cache]), [[false, "hit"]]);
});

Deno.test("a body the upstream cuts short is refunded; a caller hanging up is charged", async () => {
  let sent = 0;
  const broken: Handler = () =>
    Promise.resolve(
      new Response(
        new ReadableStream({
          pull(c) {
            if (sent++) c.error(new TypeError("connection reset"));
            else c.enqueue(new Uint8Array(10));
          },
        }),
      ),
    );
  const { fn, store, settledAll } = setup(broken);
  await assert.rejects((await post(fn, await userToken())).arrayBuffer());
  await settledAll();
  assert.deepEqual(store.settled.map((s) => [s.charge, s.outputBytes]), [[false, 10]]);

  const endless: Handler = () =>
    Promise.resolve(new Response(new ReadableStream({ pull: (c) => c.enqueue(new Uint8Array(100)) })));
  const second = setup(endless);
  const res = await post(second.fn, await userToken());
  const reader = res.body!.getReader();
  await reader.read();
  await reader.cancel();
  await second.settledAll();
  assert.equal(second.store.settled[0].charge, true);
});

Deno.test("a database that cannot be reached gives 503 with Retry-After, and the handler never runs", async () => {
  let calls = 0;
  const { fn, store } = setup(() => (calls++, image(new Request(URL_))));
  store.down = true;
  const res = await post(fn, await userToken());
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("retry-after"), "5");
  assert.match((await res.json()).error, /quotas cannot be checked/);
  assert.equal(calls, 0);
});

Deno.test("without SUPABASE_URL the meter is a 500 naming the variable, never free service", async () => {
  let calls = 0;
  const env = { SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET };
  const fn = compose(
    catchErrors,
    createIdentify(env),
    createMeter(env)("text-to-image"),
    () => (calls++, image(new Request(URL_))),
  );
  const res = await post(fn, await userToken());
  assert.equal(res.status, 500);
  assert.match((await res.json()).error, /SUPABASE_URL/);
  assert.equal(calls, 0);
});

Deno.test("a meter with no caller identified before it is a 500, and the handler never runs", async () => {
  let calls = 0;
  const meter = createMeter(ENV, { meterStore: createMemoryMeterStore() });
  const fn = compose(catchErrors, meter("text-to-image"), () => (calls++, image(new Request(URL_))));
  const res = await post(fn, await userToken());
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), { error: "Internal error" });
  assert.equal(calls, 0);
});

Deno.test("rateLimitHeaders names only the limits a tier has", () => {
  const base = {
    granted: true,
    refused: null,
    units: 1,
    tier: "t",
    day: "2026-12-01",
    minute_reset: 5,
    day_reset: 7,
  };
  assert.deepEqual(
    rateLimitHeaders({
      ...base,
      requests_per_minute: null,
      requests_remaining: null,
      units_per_day: null,
      units_remaining: null,
    }),
    {},
  );
  assert.deepEqual(
    rateLimitHeaders({
      ...base,
      requests_per_minute: 3,
      requests_remaining: 1,
      units_per_day: null,
      units_remaining: null,
    }),
    { "RateLimit-Policy": '"requests_per_minute";q=3;w=60', "RateLimit": '"requests_per_minute";r=1;t=5' },
  );
});

Deno.test("a body of declared length passes through untouched and is settled at that size as it starts", async () => {
  const upstream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new Uint8Array(300));
      c.close();
    },
  });
  const { fn, store, settledAll } = setup(() =>
    Promise.resolve(new Response(upstream, { headers: { "content-length": "300", "x-model": "m/2" } }))
  );
  const res = await post(fn, await userToken());
  assert.equal(res.body, upstream, "the stream was wrapped");
  await settledAll();
  assert.deepEqual(store.settled.map((s) => [s.charge, s.outputBytes, s.model]), [[true, 300, "m/2"]]);
  assert.equal((await res.arrayBuffer()).byteLength, 300);
});
