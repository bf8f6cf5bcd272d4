/**
 * Classifying what a Hugging Face call throws, and mapping it to the caller's HTTP answer.
 * The errors are the client's own classes, built as the client builds them.
 */
import assert from "node:assert/strict";
import {
  InferenceClientHubApiError,
  InferenceClientInputError,
  InferenceClientProviderApiError,
  InferenceClientProviderOutputError,
} from "npm:@huggingface/inference@4.13.30";
import { classifyHfError, type HfFailure, mapHfError } from "../../../supabase/functions/_shared/hf/errors.ts";

const TOKEN = "hf_secret_token_for_error_tests";
const MODEL = "black-forest-labs/FLUX.1-schnell";
const CONTEXT = { model: MODEL, redact: [TOKEN] };

const request = () => ({
  url: `https://router.huggingface.co/hf-inference/models/${MODEL}`,
  method: "POST",
  headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
  body: { inputs: "a cat" },
});

/** A provider error as the client throws it for an upstream answer of `status` with `body`. */
function providerError(status: number, body: Record<string, unknown> | string = {}) {
  const text = typeof body === "string" ? body : String(body.error ?? "an HTTP error occurred");
  return new InferenceClientProviderApiError(`Failed to perform inference: ${text}`, request(), {
    requestId: "req-1",
    status,
    body: body as never,
  });
}

function hubError(status: number, body: Record<string, unknown> | string = {}) {
  return new InferenceClientHubApiError("Failed to fetch inference provider mapping", request(), {
    requestId: "req-2",
    status,
    body: body as never,
  });
}

/** Classifies and maps in one step, as `Hf.run` does. */
function mapped(error: unknown, headers?: HeadersInit) {
  const failure = classifyHfError(error, headers ? new Headers(headers) : undefined);
  return { failure, http: mapHfError(error, failure, CONTEXT) };
}

const headerOf = (http: { headers: HeadersInit }, name: string) => new Headers(http.headers).get(name);

Deno.test("the client redacts the token from the error's own request headers", () => {
  const error = providerError(500);
  assert.equal(error.httpRequest.headers?.Authorization, "Bearer [redacted]");
  assert.ok(!JSON.stringify(error).includes(TOKEN));
});

Deno.test("classifyHfError: only upstream 5xx answers are retryable", () => {
  for (const status of [500, 502, 503, 504, 599]) {
    assert.equal(classifyHfError(providerError(status)).retryable, true, String(status));
    assert.equal(classifyHfError(hubError(status)).retryable, true, `hub ${status}`);
  }
  for (const status of [400, 401, 402, 403, 404, 410, 413, 422, 429]) {
    const failure = classifyHfError(providerError(status));
    assert.equal(failure.retryable, false, String(status));
    assert.equal(failure.upstreamStatus, status);
    assert.equal(failure.timedOut, false);
  }
});

Deno.test("classifyHfError: errors without an upstream answer are not retryable", () => {
  const cases: [unknown, boolean][] = [
    [new DOMException("Timed out", "TimeoutError"), true],
    [new DOMException("aborted", "AbortError"), false],
    [new TypeError("error sending request: connection refused"), false],
    [new InferenceClientInputError("bad input"), false],
    [new InferenceClientProviderOutputError("not an image"), false],
    [new Error("something else"), false],
    ["a string", false],
  ];
  for (const [error, timedOut] of cases) {
    assert.deepEqual(classifyHfError(error), { retryable: false, timedOut }, String(error));
  }
});

Deno.test("classifyHfError: estimated_time in the body becomes the retry hint", () => {
  const loading = providerError(503, {
    error: "Model X is currently loading",
    estimated_time: 20.0,
  });
  assert.deepEqual(classifyHfError(loading), {
    upstreamStatus: 503,
    retryable: true,
    retryAfterMs: 20_000,
    timedOut: false,
  });
  assert.equal(
    classifyHfError(providerError(503, { error: "x", estimated_time: 0.0125 })).retryAfterMs,
    13,
  );
});

Deno.test("classifyHfError: a Retry-After header beats estimated_time", () => {
  const loading = providerError(503, { error: "loading", estimated_time: 20 });
  assert.equal(classifyHfError(loading, new Headers({ "Retry-After": "3" })).retryAfterMs, 3_000);
  // An unparseable header falls back to the body's hint.
  assert.equal(
    classifyHfError(loading, new Headers({ "Retry-After": "soon" })).retryAfterMs,
    20_000,
  );
});

Deno.test("classifyHfError: no hint when neither header nor a usable estimated_time is there", () => {
  for (
    const body of [{}, { estimated_time: "20" }, { estimated_time: -1 }, "Service Unavailable"]
  ) {
    assert.equal(
      classifyHfError(providerError(503, body)).retryAfterMs,
      undefined,
      JSON.stringify(body),
    );
  }
  assert.equal(classifyHfError(providerError(503), new Headers()).retryAfterMs, undefined);
});

Deno.test("mapHfError: an upstream 400/413/422 is the caller's 400, with the upstream reason", () => {
  for (const status of [400, 413, 422]) {
    const { http } = mapped(providerError(status, { error: "width must be a multiple of 16" }));
    assert.equal(http.status, 400, String(status));
    assert.equal(http.message, "Hugging Face rejected the input: width must be a multiple of 16");
  }
  assert.equal(mapped(providerError(400, "")).http.message, "Hugging Face rejected the input");
});

Deno.test("mapHfError: a client input error is a 400 carrying its message", () => {
  const { http } = mapped(
    new InferenceClientInputError("Specifying both endpointUrl and provider is not supported."),
  );
  assert.equal(http.status, 400);
  assert.match(http.message, /^Invalid request for Hugging Face: Specifying both endpointUrl/);
});

Deno.test("mapHfError: a 429 passes through with the upstream's Retry-After", () => {
  const { http } = mapped(providerError(429, { error: "Rate limit reached" }), {
    "Retry-After": "17",
  });
  assert.equal(http.status, 429);
  assert.equal(http.message, "Hugging Face rate limit reached; retry later");
  assert.equal(headerOf(http, "retry-after"), "17");
});

Deno.test("mapHfError: a 429 without Retry-After gets a default of 10 seconds", () => {
  const { http } = mapped(providerError(429, { error: "Rate limit reached" }));
  assert.equal(http.status, 429);
  assert.equal(headerOf(http, "retry-after"), "10");
});

Deno.test("mapHfError: a 503 says the model is loading, with Retry-After from estimated_time (rounded up)", () => {
  const { http } = mapped(
    providerError(503, { error: "Model X is currently loading", estimated_time: 20.3 }),
  );
  assert.equal(http.status, 503);
  assert.equal(
    http.message,
    `Model ${MODEL} is loading or unavailable; retry later (Model X is currently loading)`,
  );
  assert.equal(headerOf(http, "retry-after"), "21");
  assert.equal(headerOf(mapped(providerError(503, {})).http, "retry-after"), "10");
});

Deno.test("mapHfError: a timeout is a 504, whatever else is known", () => {
  const { http } = mapped(new DOMException("Timed out", "TimeoutError"));
  assert.equal(http.status, 504);
  assert.equal(http.message, `Hugging Face did not answer in time (model ${MODEL})`);
  const forced: HfFailure = { upstreamStatus: 503, retryable: true, timedOut: true };
  assert.equal(mapHfError(providerError(503), forced, CONTEXT).status, 504);
});

Deno.test("mapHfError: upstream auth, billing, routing and server failures are 502 with a cause", () => {
  const cases: [unknown, RegExp][] = [
    [
      providerError(401, { error: "Invalid credentials in Authorization header" }),
      /rejected the access token/,
    ],
    [providerError(403, { error: "forbidden" }), /rejected the access token/],
    [
      providerError(402, { error: "You have exceeded your monthly included credits" }),
      /credits are exhausted/,
    ],
    [providerError(404, { error: "Not Found" }), new RegExp(`Model ${MODEL} is not served`)],
    [
      providerError(410, { error: "api-inference.huggingface.co is no longer supported" }),
      /gone \(410\)/,
    ],
    [providerError(500, { error: "Internal Server Error" }), /answered 500/],
    [hubError(500, "oops"), /answered 500/],
    [new InferenceClientProviderOutputError("expected a Blob"), /unexpected response/],
    [
      new TypeError("error sending request for url: Connection refused"),
      /^Could not reach Hugging Face$/,
    ],
    [new Error("something else"), /^Hugging Face call failed/],
  ];
  for (const [error, pattern] of cases) {
    const { http } = mapped(error);
    assert.equal(http.status, 502, String(error));
    assert.match(http.message, pattern);
    assert.equal(headerOf(http, "retry-after"), null);
  }
});

Deno.test("mapHfError: every upstream status becomes 400, 429, 502 or 503, and no answer carries the token", () => {
  for (const status of [400, 401, 402, 403, 404, 410, 413, 422, 429, 500, 502, 503, 504]) {
    const { http } = mapped(providerError(status, { error: `upstream says ${status}` }));
    assert.ok([400, 429, 502, 503].includes(http.status), `${status} → ${http.status}`);
    assert.ok(
      !JSON.stringify({ m: http.message, d: http.details, h: http.headers }).includes(TOKEN),
    );
  }
});

Deno.test("mapHfError: the redact list removes a secret the upstream echoes in its message", () => {
  const echoed = `Authorization header "Bearer ${TOKEN}" is not valid for ${TOKEN.slice(0, 3)}`;
  for (const status of [400, 503]) {
    const { http } = mapped(providerError(status, { error: echoed }));
    assert.ok(!http.message.includes(TOKEN), http.message);
    assert.match(http.message, /Bearer \[redacted\]/);
  }
  const input = mapHfError(
    new InferenceClientInputError(`token ${TOKEN} twice ${TOKEN}`),
    classifyHfError(null),
    CONTEXT,
  );
  assert.equal(
    input.message,
    "Invalid request for Hugging Face: token [redacted] twice [redacted]",
  );
});

Deno.test("mapHfError: an empty redact entry is ignored", () => {
  const http = mapHfError(
    providerError(400, { error: "bad width" }),
    classifyHfError(providerError(400)),
    {
      model: MODEL,
      redact: [""],
    },
  );
  assert.equal(http.message, "Hugging Face rejected the input: bad width");
});

Deno.test("mapHfError: a long upstream message is cut to 300 characters", () => {
  const { http } = mapped(providerError(400, { error: "y".repeat(5000) }));
  assert.equal(http.message, `Hugging Face rejected the input: ${"y".repeat(300)}`);
});
