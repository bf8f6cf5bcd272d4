/**
 * The shared Hugging Face module driven through the real client, with an injected `fetch` that
 * scripts the upstream's answers and records each request (no network).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { HfConfig } from "../../../supabase/functions/_shared/hf/config.ts";
import { HttpError } from "../../../supabase/functions/_shared/http/mod.ts";
import {
  CAPTION_PROMPT,
  captionImage,
  createHf,
  type HfDeps,
  textToImage,
} from "../../../supabase/functions/_shared/hf/client.ts";
import { hfError } from "../../support/fake_hf.ts";
import { makePng } from "../../support/images.ts";

const TOKEN = "hf_unit_test_secret_token";
const BASE = "http://hf.test/router";
const T2I_MODEL = "org/text-to-image";
const CAPTION_MODEL = "org/captioner";

function configFor(overrides: Partial<HfConfig> = {}): HfConfig {
  return {
    accessToken: TOKEN,
    baseUrl: BASE,
    textToImageModel: T2I_MODEL,
    imageToTextModel: CAPTION_MODEL,
    captionMode: "chat",
    timeoutMs: 2_000,
    deadlineMs: 5_000,
    maxAttempts: 4,
    retryBaseMs: 1,
    retryMaxDelayMs: 5,
    maxConcurrency: 8,
    ...overrides,
  };
}

/** One upstream answer, built per call (a Response can be read only once). */
type Reply = (req: Request, signal?: AbortSignal | null) => Response | Promise<Response>;

/** What the upstream saw of one call. */
interface Seen {
  url: string;
  method: string;
  headers: Headers;
  body: Uint8Array;
  /** Date.now() when the call arrived. */
  at: number;
}

/** A fetch answering call n with `replies[n]` (the last reply repeats), recording every call. */
function scriptedFetch(...replies: Reply[]) {
  const seen: Seen[] = [];
  const fetch: typeof globalThis.fetch = async (input, init) => {
    // Like a real fetch: yield to the event loop (so timers fire) and honour an aborted signal, so
    // that even a runaway retry loop ends at the attempt timeout instead of spinning forever.
    await new Promise((resolve) => setTimeout(resolve, 0));
    init?.signal?.throwIfAborted();
    const at = Date.now();
    const req = new Request(input, init);
    const reply = replies[Math.min(seen.length, replies.length - 1)];
    seen.push({
      url: req.url,
      method: req.method,
      headers: req.headers,
      body: new Uint8Array(await req.clone().arrayBuffer()),
      at,
    });
    return await reply(req, init?.signal);
  };
  return { fetch, seen };
}

// Replies.
const image = (bytes: Uint8Array, type = "image/png"): Reply => () =>
  new Response(bytes as BodyInit, { headers: { "content-type": type } });
const error = (status: number, message: string, estimatedTime?: number, headers?: HeadersInit): Reply => () =>
  hfError(status, message, estimatedTime, headers);
const json = (body: unknown): Reply => () => Response.json(body);
const chat = (content: string | null): Reply =>
  json({
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1_790_000_000,
    model: CAPTION_MODEL,
    choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content } }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  });
/** Never answers; rejects with the signal's reason once the caller aborts. */
const hang: Reply = (_req, signal) =>
  new Promise((_resolve, reject) => {
    if (!signal) return reject(new Error("no signal was passed to fetch"));
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });

/**
 * A test with console.warn captured (the retry loop logs each failure): `warnings` holds the lines,
 * and no line may contain the token.
 */
function hfTest(name: string, fn: (warnings: string[]) => Promise<void>) {
  Deno.test(name, async () => {
    const warnings: string[] = [];
    const original = console.warn;
    console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(" "));
    try {
      await fn(warnings);
    } finally {
      console.warn = original;
    }
    assert.ok(!warnings.some((line) => line.includes(TOKEN)), "the token was logged");
  });
}

function hfWith(
  upstream: { fetch: typeof fetch },
  overrides: Partial<HfConfig> = {},
  deps: HfDeps = {},
) {
  return createHf(configFor(overrides), { fetch: upstream.fetch, random: () => 0, ...deps });
}

/** Awaits `promise` and returns the HttpError it rejects with. */
async function httpErrorOf(promise: Promise<unknown>): Promise<HttpError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof HttpError, `expected an HttpError, got ${error}`);
    assert.ok(!error.message.includes(TOKEN));
    return error;
  }
  assert.fail("expected an HttpError");
}

const bytesOf = async (body: ReadableStream<Uint8Array> | Blob) =>
  new Uint8Array(await new Response(body).arrayBuffer());
/** Polls `condition` every few ms, failing after `ms`. */
async function waitFor(condition: () => boolean, what: string, ms = 2_000) {
  for (const start = Date.now(); !condition(); await new Promise((r) => setTimeout(r, 2))) {
    if (Date.now() - start > ms) assert.fail(`timed out waiting for ${what}`);
  }
}
const textOf = (seen: Seen) => new TextDecoder().decode(seen.body);
const png = await makePng(8, 6);
const pngBlob = () => new Blob([png], { type: "image/png" });

// --- Requests on the wire -------------------------------------------------------------------

hfTest(
  "textToImage posts {inputs, parameters} to {baseUrl}/hf-inference/models/{model} with the bearer token",
  async () => {
    const upstream = scriptedFetch(image(png));
    const result = await textToImage(hfWith(upstream), {
      prompt: "a cat",
      parameters: { width: 64, seed: 7 },
    });
    await bytesOf(result.body);
    const [call] = upstream.seen;
    assert.equal(call.url, `${BASE}/hf-inference/models/${T2I_MODEL}`);
    assert.equal(call.method, "POST");
    assert.equal(call.headers.get("authorization"), `Bearer ${TOKEN}`);
    assert.deepEqual(JSON.parse(textOf(call)), {
      inputs: "a cat",
      parameters: { width: 64, seed: 7 },
    });
  },
);

hfTest(
  "without a base URL, chat captioning goes to the Hugging Face router with the model in the body",
  async () => {
    const upstream = scriptedFetch(chat("a cat"));
    assert.equal(await captionImage(hfWith(upstream, { baseUrl: undefined }), pngBlob()), "a cat");
    assert.equal(upstream.seen[0].url, "https://router.huggingface.co/v1/chat/completions");
    assert.equal(JSON.parse(textOf(upstream.seen[0])).model, CAPTION_MODEL);
  },
);

hfTest(
  "each attempt gets retry_on_error false, an abort signal and an observing fetch",
  async () => {
    const hf = hfWith(scriptedFetch(image(png)));
    const seen = await hf.run("org/any", (_client, target, options) =>
      Promise.resolve({
        target,
        retryOnError: options.retry_on_error,
        signal: options.signal instanceof AbortSignal,
        fetch: typeof options.fetch,
      }));
    assert.deepEqual(seen, {
      target: { model: "org/any", endpointUrl: `${BASE}/hf-inference/models/org/any` },
      retryOnError: false,
      signal: true,
      fetch: "function",
    });
  },
);

hfTest(
  "without a base URL the target carries the configured provider instead of an endpoint",
  async () => {
    const hf = hfWith(scriptedFetch(image(png)), { baseUrl: undefined, provider: "fal-ai" });
    assert.deepEqual(await hf.run("org/any", (_c, target) => Promise.resolve(target)), {
      model: "org/any",
      provider: "fal-ai",
    });
  },
);

// --- textToImage ------------------------------------------------------------------------------

hfTest(
  "textToImage streams the upstream body: it returns before the upstream has finished sending",
  async () => {
    const half = Math.floor(png.length / 2);
    let finish!: () => void;
    const rest = new Promise<void>((resolve) => (finish = resolve));
    // Sends the second half when told to, or after 1 s so that a buffering implementation
    // finishes (and fails the check below) instead of hanging.
    const fallback = setTimeout(() => finish(), 1_000);
    let secondHalfSent = false;
    const streaming: Reply = () =>
      new Response(
        new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(png.slice(0, half));
            await rest;
            secondHalfSent = true;
            controller.enqueue(png.slice(half));
            controller.close();
          },
        }),
        { headers: { "content-type": "image/jpeg" } },
      );
    try {
      const result = await textToImage(hfWith(scriptedFetch(streaming)), { prompt: "a cat" });
      assert.equal(secondHalfSent, false, "textToImage waited for the whole upstream body");
      assert.ok(
        result.body instanceof ReadableStream,
        "the body is a Blob, not the upstream stream",
      );
      assert.equal(result.contentType, "image/jpeg");
      finish();
      assert.deepEqual(await bytesOf(result.body), png);
    } finally {
      clearTimeout(fallback);
    }
  },
);

hfTest("textToImage rejects a 200 that is not an image with 502", async () => {
  for (
    const reply of [
      () => new Response("<html>proxy login</html>", { headers: { "content-type": "text/html" } }),
      json({ unexpected: true }),
    ]
  ) {
    const upstream = scriptedFetch(reply);
    const error = await httpErrorOf(textToImage(hfWith(upstream), { prompt: "a cat" }));
    assert.equal(error.status, 502);
    assert.match(error.message, /unexpected response/);
    assert.equal(upstream.seen.length, 1, "an unexpected answer is not retried");
  }
});

// --- Retries ----------------------------------------------------------------------------------

hfTest("a 503 is retried and the next success returned", async (warnings) => {
  const upstream = scriptedFetch(error(503, "Model is currently loading"), image(png));
  const result = await textToImage(hfWith(upstream), { prompt: "a cat" });
  assert.deepEqual(await bytesOf(result.body), png);
  assert.equal(upstream.seen.length, 2);
  assert.deepEqual(warnings, [`hf ${T2I_MODEL}: attempt 1 failed with 503, retrying`]);
});

hfTest("a 503's estimated_time is waited before the retry", async () => {
  const upstream = scriptedFetch(error(503, "Model is currently loading", 0.15), image(png));
  await bytesOf((await textToImage(hfWith(upstream), { prompt: "a cat" })).body);
  assert.equal(upstream.seen.length, 2);
  const waited = upstream.seen[1].at - upstream.seen[0].at;
  assert.ok(waited >= 140, `retried after ${waited} ms, before the 150 ms estimated_time`);
});

hfTest("retry_on_error is off: one 503 answer is exactly one upstream call", async () => {
  const upstream = scriptedFetch(error(503, "Model is currently loading"));
  const error503 = await httpErrorOf(
    textToImage(hfWith(upstream, { maxAttempts: 1 }), { prompt: "a cat" }),
  );
  assert.equal(upstream.seen.length, 1, "the client retried the 503 on its own");
  assert.equal(error503.status, 503);
});

hfTest("an always-503 upstream is called exactly maxAttempts times", async (warnings) => {
  const upstream = scriptedFetch(error(503, "overloaded"));
  const failure = await httpErrorOf(
    textToImage(hfWith(upstream, { maxAttempts: 3 }), { prompt: "a cat" }),
  );
  assert.equal(upstream.seen.length, 3);
  assert.equal(failure.status, 503);
  assert.equal(new Headers(failure.headers).get("retry-after"), "10");
  assert.equal(warnings.length, 3);
  assert.match(warnings[2], /attempt 3 failed with 503, giving up$/);
});

hfTest("an always-503 upstream is given up on at the deadline, before maxAttempts", async () => {
  const upstream = scriptedFetch(error(503, "overloaded"));
  // Every backoff is its ceiling, 50 ms (random → 1), so at most 8 calls fit in 400 ms; a retry
  // also needs room for its own attempt (here the 100 ms timeout) before the deadline.
  const hf = hfWith(upstream, {
    maxAttempts: 20,
    deadlineMs: 400,
    timeoutMs: 100,
    retryBaseMs: 50,
    retryMaxDelayMs: 50,
  }, {
    random: () => 1,
  });
  const started = Date.now();
  const failure = await httpErrorOf(textToImage(hf, { prompt: "a cat" }));
  const elapsed = Date.now() - started;
  assert.equal(failure.status, 503);
  assert.ok(
    upstream.seen.length >= 2 && upstream.seen.length <= 8,
    `${upstream.seen.length} calls`,
  );
  assert.ok(elapsed < 400 + 1_000, `took ${elapsed} ms for a 400 ms deadline`);
  for (let i = 1; i < upstream.seen.length; i++) {
    assert.ok(upstream.seen[i].at - upstream.seen[i - 1].at >= 45, "the backoff was not waited");
  }
});

hfTest(
  "a 503 whose estimated_time exceeds the remaining deadline is given up on at once",
  async () => {
    const upstream = scriptedFetch(error(503, "Model is currently loading", 5));
    const started = Date.now();
    const failure = await httpErrorOf(
      textToImage(hfWith(upstream, { deadlineMs: 300 }), { prompt: "a cat" }),
    );
    assert.equal(upstream.seen.length, 1);
    assert.ok(Date.now() - started < 2_000, "it waited for the model instead of giving up");
    assert.equal(failure.status, 503);
    assert.equal(new Headers(failure.headers).get("retry-after"), "5");
    assert.match(
      failure.message,
      /loading or unavailable; retry later \(Model is currently loading\)/,
    );
  },
);

hfTest("other upstream errors are not retried", async () => {
  for (const [status, expected] of [[400, 400], [401, 502], [402, 502], [404, 502], [429, 429]]) {
    const upstream = scriptedFetch(error(status, `upstream says ${status}`));
    const failure = await httpErrorOf(textToImage(hfWith(upstream), { prompt: "a cat" }));
    assert.equal(failure.status, expected, String(status));
    assert.equal(upstream.seen.length, 1, String(status));
  }
});

hfTest("a 500 is retried like any 5xx, then mapped to 502", async () => {
  const upstream = scriptedFetch(error(500, "Internal Server Error"));
  const failure = await httpErrorOf(
    textToImage(hfWith(upstream, { maxAttempts: 2 }), { prompt: "a cat" }),
  );
  assert.equal(failure.status, 502);
  assert.equal(upstream.seen.length, 2);
});

hfTest("a 429 is not retried, and its Retry-After pauses the next run", async () => {
  const upstream = scriptedFetch(
    error(429, "Rate limit reached", undefined, { "Retry-After": "0.3" }),
    image(png),
  );
  const hf = hfWith(upstream);
  const limited = await httpErrorOf(textToImage(hf, { prompt: "first" }));
  assert.equal(limited.status, 429);
  assert.equal(new Headers(limited.headers).get("retry-after"), "1"); // whole seconds, rounded up
  assert.equal(upstream.seen.length, 1);

  await bytesOf((await textToImage(hf, { prompt: "second" })).body);
  assert.equal(upstream.seen.length, 2);
  const paused = upstream.seen[1].at - upstream.seen[0].at;
  assert.ok(
    paused >= 280,
    `the next call went out ${paused} ms after the 429, inside its 300 ms Retry-After`,
  );
});

hfTest("the pause is shared: a run for another model waits for it too", async () => {
  const upstream = scriptedFetch(
    error(429, "Rate limit reached", undefined, { "Retry-After": "0.2" }),
    chat("ok"),
  );
  const hf = hfWith(upstream);
  await httpErrorOf(textToImage(hf, { prompt: "first" }));
  assert.equal(await captionImage(hf, pngBlob()), "ok");
  assert.ok(upstream.seen[1].at - upstream.seen[0].at >= 180);
});

// --- Timeouts and aborts -----------------------------------------------------------------------

hfTest(
  "an attempt that outlives timeoutMs is aborted and answered 504, without a retry",
  async (warnings) => {
    const upstream = scriptedFetch(hang);
    const started = Date.now();
    const failure = await httpErrorOf(
      textToImage(hfWith(upstream, { timeoutMs: 50 }), { prompt: "a cat" }),
    );
    assert.equal(failure.status, 504);
    assert.equal(failure.message, `Hugging Face did not answer in time (model ${T2I_MODEL})`);
    assert.equal(upstream.seen.length, 1);
    assert.ok(Date.now() - started < 2_000);
    assert.match(warnings[0], /attempt 1 failed by timeout, giving up$/);
  },
);

hfTest("the deadline caps the attempt timeout", async () => {
  const upstream = scriptedFetch(hang);
  const started = Date.now();
  const hf = hfWith(upstream, { timeoutMs: 5_000, deadlineMs: 80 });
  assert.equal((await httpErrorOf(textToImage(hf, { prompt: "a cat" }))).status, 504);
  assert.ok(Date.now() - started < 2_000);
});

hfTest("the caller's abort cancels the upstream call and is not retried", async () => {
  const upstream = scriptedFetch(hang);
  const controller = new AbortController();
  const running = textToImage(hfWith(upstream), { prompt: "a cat" }, controller.signal);
  await waitFor(() => upstream.seen.length === 1, "the upstream call");
  controller.abort(new DOMException("client went away", "AbortError"));
  await assert.rejects(running);
  assert.equal(upstream.seen.length, 1);
});

hfTest("the caller's abort ends the wait between attempts", async () => {
  const upstream = scriptedFetch(error(503, "Model is currently loading", 30));
  const controller = new AbortController();
  const reason = new DOMException("client went away", "AbortError");
  const hf = hfWith(upstream, { deadlineMs: 120_000 });
  const running = textToImage(hf, { prompt: "a cat" }, controller.signal);
  await waitFor(() => upstream.seen.length === 1, "the upstream call");
  setTimeout(() => controller.abort(reason), 20);
  await assert.rejects(running, (error) => error === reason);
  assert.equal(upstream.seen.length, 1);
});

// --- Concurrency ------------------------------------------------------------------------------

hfTest("no more than maxConcurrency calls are in flight; the rest wait their turn", async () => {
  let inFlight = 0;
  let maxInFlight = 0;
  const held: (() => void)[] = [];
  const gated: Reply = () =>
    new Promise((resolve) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      held.push(() => {
        inFlight--;
        resolve(image(png)(new Request(BASE)));
      });
    });
  const upstream = scriptedFetch(gated);
  const hf = hfWith(upstream, { maxConcurrency: 2 });
  const runs = Array.from({ length: 6 }, (_, i) => textToImage(hf, { prompt: `image ${i}` }));

  for (let released = 0; released < 6; released++) {
    const expected = Math.min(2, 6 - released);
    await waitFor(() => held.length >= expected, `${expected} calls in flight`);
    await new Promise((r) => setTimeout(r, 10)); // a broken limit would let more through by now
    assert.ok(inFlight <= 2, `${inFlight} calls in flight`);
    held.shift()!();
  }
  const results = await Promise.all(runs);
  assert.equal(maxInFlight, 2);
  assert.equal(upstream.seen.length, 6);
  for (const result of results) assert.deepEqual(await bytesOf(result.body), png);
});

// --- Captioning -------------------------------------------------------------------------------

hfTest("image-to-text mode posts the raw image bytes and reads {generated_text}", async () => {
  const upstream = scriptedFetch(json({ generated_text: "  a small\n orange   square " }));
  const caption = await captionImage(hfWith(upstream, { captionMode: "image-to-text" }), pngBlob());
  assert.equal(caption, "a small orange square");
  const [call] = upstream.seen;
  assert.equal(call.url, `${BASE}/hf-inference/models/${CAPTION_MODEL}`);
  assert.equal(call.headers.get("authorization"), `Bearer ${TOKEN}`);
  assert.equal(call.headers.get("content-type"), "image/png");
  assert.deepEqual(call.body, png);
});

hfTest("image-to-text mode also accepts [{generated_text}]", async () => {
  const upstream = scriptedFetch(json([{ generated_text: "an orange square" }]));
  assert.equal(
    await captionImage(hfWith(upstream, { captionMode: "image-to-text" }), pngBlob()),
    "an orange square",
  );
});

hfTest(
  "chat mode sends the image as a data URL of its exact bytes and returns the trimmed answer",
  async () => {
    const upstream = scriptedFetch(chat("\n  An orange square on a plain background.  \n"));
    const caption = await captionImage(hfWith(upstream, { captionMode: "chat" }), pngBlob());
    assert.equal(caption, "An orange square on a plain background.");
    const [call] = upstream.seen;
    assert.equal(call.url, `${BASE}/hf-inference/models/${CAPTION_MODEL}/v1/chat/completions`);
    assert.equal(call.headers.get("authorization"), `Bearer ${TOKEN}`);
    const body = JSON.parse(textOf(call));
    assert.equal(body.max_tokens, 120);
    assert.deepEqual(body.messages, [{
      role: "user",
      content: [
        { type: "text", text: CAPTION_PROMPT },
        {
          type: "image_url",
          image_url: { url: `data:image/png;base64,${Buffer.from(png).toString("base64")}` },
        },
      ],
    }]);
  },
);

hfTest("chat mode encodes a large image (more than one 32 KiB chunk) exactly", async () => {
  const bytes = Uint8Array.from({ length: 100_003 }, (_, i) => (i * 7919 + (i >> 8)) % 256);
  const upstream = scriptedFetch(chat("noise"));
  await captionImage(hfWith(upstream), new Blob([bytes], { type: "image/webp" }));
  const url = JSON.parse(textOf(upstream.seen[0])).messages[0].content[1].image_url.url;
  assert.equal(url, `data:image/webp;base64,${Buffer.from(bytes).toString("base64")}`);
});

hfTest("an empty caption is a 502 and is not retried", async () => {
  const cases: [HfConfig["captionMode"], Reply][] = [
    ["chat", chat("   \n ")],
    ["chat", chat(null)],
    ["image-to-text", json({ generated_text: "" })],
    ["image-to-text", json([])],
  ];
  for (const [captionMode, reply] of cases) {
    const upstream = scriptedFetch(reply);
    const failure = await httpErrorOf(captionImage(hfWith(upstream, { captionMode }), pngBlob()));
    assert.equal(failure.status, 502, captionMode);
    assert.match(failure.message, new RegExp(`unexpected response \\(model ${CAPTION_MODEL}\\)`));
    assert.equal(upstream.seen.length, 1);
  }
});

hfTest("a rambling caption is cut to 1000 characters", async () => {
  const upstream = scriptedFetch(chat("word ".repeat(500)));
  const caption = await captionImage(hfWith(upstream), pngBlob());
  assert.equal(caption.length, 1000);
  assert.ok(caption.startsWith("word word"));
});

hfTest("a caption upstream 503 is retried in both modes", async () => {
  for (
    const [captionMode, success] of [["chat", chat("ok")], [
      "image-to-text",
      json({ generated_text: "ok" }),
    ]] as const
  ) {
    const upstream = scriptedFetch(error(503, "Model is currently loading"), success);
    assert.equal(await captionImage(hfWith(upstream, { captionMode }), pngBlob()), "ok");
    assert.equal(upstream.seen.length, 2, captionMode);
  }
});

// --- Known problems ---------------------------------------------------------------------------

Deno.test({
  // A pause longer than the deadline must fail fast, not sleep out the deadline.
  name: "a run started during a pause longer than its deadline fails fast without calling the upstream",
  async fn() {
    // The second reply stands for any real upstream: it takes longer than 1 ms to answer.
    const upstream = scriptedFetch(
      error(429, "Rate limit reached", undefined, { "Retry-After": "60" }),
      hang,
    );
    const hf = hfWith(upstream, { deadlineMs: 1_500 });
    const original = console.warn;
    console.warn = () => {};
    try {
      await httpErrorOf(textToImage(hf, { prompt: "first" }));
      const started = Date.now();
      const second = await textToImage(hf, { prompt: "second" }).catch((error) => error);
      const waited = Date.now() - started;
      assert.ok(
        waited < 750,
        `waited ${waited} ms of a 1500 ms deadline, then answered ${second?.status}`,
      );
      assert.ok(second instanceof HttpError);
      assert.equal(second.status, 429);
      assert.equal(upstream.seen.length, 1);
    } finally {
      console.warn = original;
    }
  },
});

hfTest("no retry is started without time left for it to answer", async () => {
  const upstream = scriptedFetch(error(500, "boom"));
  // A 1 s per-attempt timeout and 300 ms of deadline: the first call fails and no second one starts.
  const hf = hfWith(upstream, {
    maxAttempts: 5,
    deadlineMs: 300,
    timeoutMs: 1_000,
    retryBaseMs: 10,
    retryMaxDelayMs: 10,
  });
  const failure = await httpErrorOf(textToImage(hf, { prompt: "a cat" }));
  assert.equal(failure.status, 502);
  assert.equal(upstream.seen.length, 1);
});

// --- Shared pause and streamed sources ----------------------------------------------------------

hfTest("a gate is waited on before every attempt and told of each pause the upstream asks for", async () => {
  const events: string[] = [];
  const paused: { untilMs: number; status: number }[] = [];
  const gate = {
    wait: () => Promise.resolve(void events.push("wait")),
    pause: (untilMs: number, status: number) => Promise.resolve(void paused.push({ untilMs, status })),
  };
  const upstream = scriptedFetch(error(503, "Model is currently loading", 0.05), chat("ok"));
  const started = Date.now();
  assert.equal(await captionImage(hfWith(upstream, {}, { gate }), pngBlob()), "ok");
  assert.deepEqual(events, ["wait", "wait"]);
  assert.equal(paused.length, 1);
  assert.equal(paused[0].status, 503);
  assert.ok(paused[0].untilMs >= started + 50 && paused[0].untilMs < Date.now() + 1000);
});

hfTest("a gate that cannot be reached does not stop the call", async (warnings) => {
  const gate = { wait: () => Promise.reject(new Error("db down")), pause: () => Promise.reject(new Error("db down")) };
  const upstream = scriptedFetch(chat("ok"));
  assert.equal(await captionImage(hfWith(upstream, {}, { gate }), pngBlob()), "ok");
  assert.ok(warnings.some((w) => w.includes("shared pause unavailable: db down")));
});

hfTest("chat mode with a URL source sends the URL itself, not the bytes", async () => {
  const upstream = scriptedFetch(chat("a cat"));
  const url = "https://project.supabase.co/storage/v1/object/sign/images/a.png?token=t";
  assert.equal(await captionImage(hfWith(upstream), { url }), "a cat");
  assert.equal(JSON.parse(textOf(upstream.seen[0])).messages[0].content[1].image_url.url, url);
});

hfTest("bytes held in one array are streamed in both modes, with their content type", async () => {
  const bytes = Uint8Array.from({ length: 700_001 }, (_, i) => (i * 31) % 256);
  const chatUpstream = scriptedFetch(chat("ok"));
  await captionImage(hfWith(chatUpstream), { bytes, type: "image/webp" });
  const url = JSON.parse(textOf(chatUpstream.seen[0])).messages[0].content[1].image_url.url;
  assert.equal(url, `data:image/webp;base64,${Buffer.from(bytes).toString("base64")}`);
  const taskUpstream = scriptedFetch(json({ generated_text: "ok" }));
  await captionImage(hfWith(taskUpstream, { captionMode: "image-to-text" }), { bytes, type: "image/webp" });
  assert.deepEqual(taskUpstream.seen[0].body, bytes);
  assert.equal(taskUpstream.seen[0].headers.get("content-type"), "image/webp");
});
