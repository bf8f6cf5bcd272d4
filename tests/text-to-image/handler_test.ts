/**
 * The text-to-image handler called directly, with an injected environment and the fake
 * Hugging Face server over real HTTP.
 */
import assert from "node:assert/strict";
import { createHandler } from "../../supabase/functions/text-to-image/handler.ts";
import { MAX_PROMPT_LENGTH } from "../../supabase/functions/_shared/tasks/table.ts";
import { type FakeHf, hfError, startFakeHf } from "../support/fake_hf.ts";
import { imageInfo } from "../support/images.ts";
import { createMemoryMeterStore } from "../support/memory_meter.ts";
import { LOCAL_JWT_SECRET, makeSigningKey, signHs256, userToken } from "../support/tokens.ts";

const HF_TOKEN = "hf_test_secret_token_value";
const ENDPOINT = "http://functions.test/functions/v1/text-to-image";

function envFor(fake: FakeHf, extra: Record<string, string> = {}) {
  return {
    HUGGING_FACE_ACCESS_TOKEN: HF_TOKEN,
    HF_BASE_URL: fake.url,
    SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
    HF_RETRY_BASE_MS: "5",
    HF_RETRY_MAX_DELAY_MS: "20",
    ...extra,
  };
}

async function post(handler: (r: Request) => Promise<Response>, body: unknown, init: RequestInit = {}) {
  const headers = new Headers(init.headers);
  if (!headers.has("authorization")) headers.set("authorization", `Bearer ${await userToken()}`);
  if (!headers.has("content-type")) headers.set("content-type", "application/json");
  return handler(
    new Request(ENDPOINT, {
      method: "POST",
      ...init,
      headers,
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
  );
}

/** Runs `fn` with a fresh fake and handler, and stops the fake afterwards. */
function withFake(
  name: string,
  fn: (ctx: { fake: FakeHf; handler: (r: Request) => Promise<Response> }) => Promise<void>,
  options: Parameters<typeof startFakeHf>[0] = {},
  extraEnv: Record<string, string> = {},
) {
  Deno.test(name, async () => {
    const fake = startFakeHf({ token: HF_TOKEN, ...options });
    try {
      await fn({ fake, handler: createHandler(envFor(fake, extraEnv), { meterStore: createMemoryMeterStore() }) });
    } finally {
      await fake.stop();
    }
  });
}

async function errorOf(res: Response) {
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  const body = await res.json();
  assert.equal(typeof body.error, "string");
  assert.ok(!JSON.stringify(body).includes(HF_TOKEN), "token leaked into an error body");
  return body;
}

withFake("returns a PNG with the upstream content type, no-store and CORS", async ({ fake, handler }) => {
  const res = await post(handler, { prompt: "Llama wearing sunglasses", width: 128, height: 96, seed: 7 });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "image/png");
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.deepEqual(imageInfo(bytes), { type: "png", width: 128, height: 96 });
  assert.equal(res.headers.get("content-length"), String(bytes.byteLength));
  // The wire request is the router's: JSON {inputs, parameters}, bearer token, model in the path.
  const [seen] = fake.seen;
  assert.equal(seen.model, "black-forest-labs/FLUX.1-schnell");
  assert.deepEqual(seen.json, { inputs: "Llama wearing sunglasses", parameters: { width: 128, height: 96, seed: 7 } });
  assert.equal(seen.headers.get("authorization"), `Bearer ${HF_TOKEN}`);
});

withFake("returns a JPEG as image/jpeg", async ({ handler }) => {
  const res = await post(handler, { prompt: "a cat" });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "image/jpeg");
  assert.equal(imageInfo(new Uint8Array(await res.arrayBuffer()))?.type, "jpeg");
}, { imageType: "jpeg" });

withFake(
  "uses TEXT_TO_IMAGE_MODEL",
  async ({ fake, handler }) => {
    assert.equal((await post(handler, { prompt: "x" })).status, 200);
    assert.equal(fake.seen[0].model, "stabilityai/stable-diffusion-3-medium-diffusers");
  },
  {},
  { TEXT_TO_IMAGE_MODEL: "stabilityai/stable-diffusion-3-medium-diffusers" },
);

withFake("retries a 503 then succeeds", async ({ fake, handler }) => {
  fake.enqueue(hfError(503, "Model is currently loading", 0.01));
  const res = await post(handler, { prompt: "a cat" });
  assert.equal(res.status, 200);
  await res.body?.cancel();
  assert.equal(fake.seen.length, 2);
});

withFake(
  "bounds the attempts against an always-503 upstream",
  async ({ fake, handler }) => {
    fake.options.down = true; // answers 503 {"estimated_time": 5}, ignored here by a short deadline
    const started = Date.now();
    const res = await post(handler, { prompt: "a cat" });
    assert.equal(res.status, 503);
    assert.ok(Number(res.headers.get("retry-after")) > 0);
    assert.match((await errorOf(res)).error, /loading or unavailable/);
    // estimated_time (5 s) exceeds what is left of the 300 ms deadline, so it gives up at once.
    assert.equal(fake.seen.length, 1);
    assert.ok(Date.now() - started < 1000);
  },
  {},
  { HF_DEADLINE_MS: "300" },
);

withFake(
  "stops after HF_MAX_ATTEMPTS 5xx answers",
  async ({ fake, handler }) => {
    for (let i = 0; i < 10; i++) fake.enqueue(hfError(503, "overloaded"));
    const res = await post(handler, { prompt: "a cat" });
    assert.equal(res.status, 503);
    assert.equal(fake.seen.length, 3);
    await errorOf(res);
  },
  {},
  { HF_MAX_ATTEMPTS: "3" },
);

withFake("passes 429 through with Retry-After and does not retry it", async ({ fake, handler }) => {
  fake.enqueue(hfError(429, "Rate limit reached", undefined, { "Retry-After": "17" }));
  const res = await post(handler, { prompt: "a cat" });
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "17");
  await errorOf(res);
  assert.equal(fake.seen.length, 1);
});

withFake("gives a 429 without Retry-After a default one", async ({ fake, handler }) => {
  fake.enqueue(hfError(429, "Rate limit reached"));
  const res = await post(handler, { prompt: "a cat" });
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "10");
  await errorOf(res);
});

withFake(
  "answers 504 when the upstream hangs past the timeout",
  async ({ fake, handler }) => {
    fake.enqueue("hang", "hang");
    const res = await post(handler, { prompt: "a cat" });
    assert.equal(res.status, 504);
    await errorOf(res);
  },
  {},
  { HF_TIMEOUT_MS: "100", HF_DEADLINE_MS: "150" },
);

for (
  const [status, pattern] of [
    [401, /access token/],
    [402, /credits/],
    [404, /not served/],
    [410, /gone/],
    [500, /answered 500/],
  ] as const
) {
  withFake(
    `maps an upstream ${status} to 502`,
    async ({ fake, handler }) => {
      for (let i = 0; i < 5; i++) fake.enqueue(hfError(status, `upstream says ${status}`));
      const res = await post(handler, { prompt: "a cat" });
      assert.equal(res.status, 502);
      assert.match((await errorOf(res)).error, pattern);
    },
    {},
    { HF_MAX_ATTEMPTS: "2" },
  );
}

withFake("maps an upstream 400 to 400 with its reason", async ({ fake, handler }) => {
  fake.enqueue(hfError(400, "width must be a multiple of 16"));
  const res = await post(handler, { prompt: "a cat", width: 72 });
  assert.equal(res.status, 400);
  assert.match((await errorOf(res)).error, /multiple of 16/);
});

withFake("maps a non-image 200 to 502", async ({ fake, handler }) => {
  fake.enqueue(new Response("<html>proxy</html>", { headers: { "content-type": "text/html" } }));
  const res = await post(handler, { prompt: "a cat" });
  assert.equal(res.status, 502);
  await errorOf(res);
});

Deno.test("maps an unreachable upstream to 502", async () => {
  const fake = startFakeHf();
  await fake.stop(); // its port is now closed
  const res = await post(createHandler(envFor(fake), { meterStore: createMemoryMeterStore() }), { prompt: "a cat" });
  assert.equal(res.status, 502);
  assert.match((await errorOf(res)).error, /Could not reach/);
});

Deno.test("answers 500 naming the missing token variable, not its value", async () => {
  const res = await post(
    createHandler({ SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET }, { meterStore: createMemoryMeterStore() }),
    { prompt: "a cat" },
  );
  assert.equal(res.status, 500);
  assert.match((await errorOf(res)).error, /HUGGING_FACE_ACCESS_TOKEN/);
});

withFake("answers the CORS preflight", async ({ handler, fake }) => {
  const res = await handler(new Request(ENDPOINT, { method: "OPTIONS" }));
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  assert.equal(res.headers.get("access-control-allow-headers"), "authorization, x-client-info, apikey, content-type");
  assert.equal(fake.seen.length, 0);
});

withFake("rejects other methods with 405 and CORS headers", async ({ handler }) => {
  const res = await handler(new Request(ENDPOINT, { method: "GET" }));
  assert.equal(res.status, 405);
  assert.equal(res.headers.get("allow"), "POST");
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  await errorOf(res);
});

withFake("rejects missing, malformed, expired and wrongly signed JWTs with 401", async ({ handler, fake }) => {
  const cases: [string, string | undefined][] = [
    ["missing", undefined],
    ["not bearer", "Basic abc"],
    ["garbage", "Bearer not-a-jwt"],
    ["expired", `Bearer ${await userToken(undefined, undefined, -60)}`],
    ["wrong secret", `Bearer ${await userToken(undefined, "another-secret-that-is-at-least-32-chars!!")}`],
    ["unknown kid", `Bearer ${await (await makeSigningKey()).sign({ sub: "x", role: "authenticated" })}`],
  ];
  for (const [label, authorization] of cases) {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (authorization) headers.authorization = authorization;
    const res = await handler(new Request(ENDPOINT, { method: "POST", headers, body: '{"prompt":"a cat"}' }));
    assert.equal(res.status, 401, label);
    assert.equal(res.headers.get("access-control-allow-origin"), "*", label);
    await errorOf(res);
  }
  assert.equal(fake.seen.length, 0, "no call reaches Hugging Face without a valid JWT");
});

Deno.test("accepts a token signed with a JWT signing key from SUPABASE_JWKS", async () => {
  const fake = startFakeHf({ token: HF_TOKEN });
  try {
    const key = await makeSigningKey("ES256");
    const handler = createHandler(envFor(fake, { SUPABASE_JWKS: JSON.stringify(key.jwks) }), {
      meterStore: createMemoryMeterStore(),
    });
    const token = await key.sign({ sub: crypto.randomUUID(), role: "authenticated" });
    const res = await post(handler, { prompt: "a cat" }, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    // An HS256 token forged with the public key's kid must not pass.
    const forged = await signHs256({ sub: "x", role: "authenticated" }, "guess-the-secret-guess-the-secret-123");
    const bad = await post(handler, { prompt: "a cat" }, { headers: { authorization: `Bearer ${forged}x` } });
    assert.equal(bad.status, 401);
    await bad.body?.cancel();
  } finally {
    await fake.stop();
  }
});

withFake(
  "refuses the CLI's well-known local anon key: it is public, not a signed-in user",
  async ({ handler, fake }) => {
    const anonKey = await signHs256({ iss: "supabase-demo", role: "anon" }, LOCAL_JWT_SECRET);
    const res = await post(handler, { prompt: "a cat" }, { headers: { authorization: `Bearer ${anonKey}` } });
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { error: "Sign in to use this function" });
    assert.equal(fake.seen.length, 0);
  },
);

withFake(
  "serves the anon key with INFERENCE_ALLOW_ANON=true, and names the model in X-Model",
  async ({ handler }) => {
    const anonKey = await signHs256({ iss: "supabase-demo", role: "anon" }, LOCAL_JWT_SECRET);
    const res = await post(handler, { prompt: "a cat" }, { headers: { authorization: `Bearer ${anonKey}` } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-model"), "black-forest-labs/FLUX.1-schnell");
    assert.match(res.headers.get("ratelimit-policy")!, /"requests_per_minute";q=5;w=60/);
    await res.body?.cancel();
  },
  {},
  { INFERENCE_ALLOW_ANON: "true" },
);

withFake("rejects bad bodies with 400 naming the field", async ({ handler, fake }) => {
  const cases: [unknown, number, string | undefined][] = [
    ["{not json", 400, undefined],
    [[1, 2], 400, undefined],
    [{}, 400, "prompt"],
    [{ prompt: "" }, 400, "prompt"],
    [{ prompt: "   " }, 400, "prompt"],
    [{ prompt: 42 }, 400, "prompt"],
    [{ prompt: "x".repeat(MAX_PROMPT_LENGTH + 1) }, 400, "prompt"],
    [{ prompt: "a", width: 100.5 }, 400, "width"],
    [{ prompt: "a", height: 4096 }, 400, "height"],
    [{ prompt: "a", num_inference_steps: 0 }, 400, "num_inference_steps"],
    [{ prompt: "a", guidance_scale: "high" }, 400, "guidance_scale"],
    [{ prompt: "a", seed: -1 }, 400, "seed"],
    [{ prompt: "a", use_cache: false }, 400, "use_cache"],
  ];
  for (const [body, status, field] of cases) {
    const res = await post(handler, body);
    assert.equal(res.status, status, JSON.stringify(body).slice(0, 80));
    assert.equal((await errorOf(res)).field, field);
  }
  assert.equal(fake.seen.length, 0);
});

withFake("rejects a non-JSON content type with 415 and an oversized body with 413", async ({ handler }) => {
  const form = await post(handler, "prompt=a", { headers: { "content-type": "application/x-www-form-urlencoded" } });
  assert.equal(form.status, 415);
  await errorOf(form);
  const huge = await post(handler, JSON.stringify({ prompt: "a", negative_prompt: "x".repeat(100_000) }));
  assert.equal(huge.status, 413);
  await errorOf(huge);
});
