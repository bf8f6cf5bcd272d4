/**
 * Every task of `huggingface-inference` through a real HTTP server, called as a browser calls it,
 * with the Hugging Face stand-in behind it: the happy path and its shape, a bad input, an upstream
 * error, and a fallback from a 410 model to the next; then SSE streaming and the GET description.
 */
import assert from "node:assert/strict";
import { createHandler } from "../../supabase/functions/huggingface-inference/handler.ts";
import { createMemoryMeterStore } from "../support/memory_meter.ts";
import { makeWav, wavInfo } from "../support/audio.ts";
import { type FakeHf, hfError, startFakeHf } from "../support/fake_hf.ts";
import { imageInfo, makePng, tinyJpeg } from "../support/images.ts";
import { LOCAL_JWT_SECRET, userToken } from "../support/tokens.ts";

const HF_TOKEN = "hf_inference_test_secret_token";

interface Server {
  url: string;
  fake: FakeHf;
  token: string;
}

/** Serves the function on a free port (as the local gateway does, under /functions/v1/) with a fresh fake. */
async function withServer(
  fn: (s: Server) => Promise<void>,
  env: Record<string, string> = {},
  fakeOptions: Parameters<typeof startFakeHf>[0] = {},
) {
  const fake = startFakeHf({ token: HF_TOKEN, ...fakeOptions });
  const handler = createHandler({
    HUGGING_FACE_ACCESS_TOKEN: HF_TOKEN,
    HF_BASE_URL: fake.url,
    SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
    HF_RETRY_BASE_MS: "2",
    HF_RETRY_MAX_DELAY_MS: "10",
    ...env,
  }, { meterStore: createMemoryMeterStore() });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  try {
    await fn({
      url: `http://127.0.0.1:${server.addr.port}/functions/v1/huggingface-inference`,
      fake,
      token: await userToken(),
    });
  } finally {
    await server.shutdown();
    await fake.stop();
  }
}

type Body = { body: BodyInit; type: string };
const json = (value: unknown): Body => ({ body: JSON.stringify(value), type: "application/json" });
const png = async (w = 32, h = 24): Promise<Body> => ({ body: await makePng(w, h), type: "image/png" });
const wav = (): Body => ({ body: makeWav(0.5), type: "audio/wav" });

function post(s: Server, task: string, { body, type }: Body, query = "") {
  return fetch(`${s.url}/${task}${query}`, {
    method: "POST",
    headers: { authorization: `Bearer ${s.token}`, "content-type": type },
    body,
  });
}

async function errorOf(res: Response, status: number) {
  const body = await res.json();
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(typeof body.error, "string");
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  assert.ok(!JSON.stringify(body).includes(HF_TOKEN));
  return body;
}

/** One row per task: a good request and what its answer must look like, and a bad request. */
interface TaskCase {
  task: string;
  model: string;
  good: () => Body | Promise<Body>;
  check: (res: Response, fake: FakeHf) => Promise<void>;
  bad: () => Body | Promise<Body>;
  badStatus: number;
  badField?: string;
}

const isLabelScores = (x: unknown) =>
  Array.isArray(x) && x.length > 0 && x.every((e) => typeof e.label === "string" && typeof e.score === "number");

const CASES: TaskCase[] = [
  {
    task: "summarization",
    model: "facebook/bart-large-cnn",
    good: () =>
      json({
        inputs: "The tower is 324 metres tall, about the same height as an 81-storey building.",
        parameters: { generate_parameters: { max_length: 60 } },
      }),
    async check(res, fake) {
      assert.deepEqual(await res.json(), { summary_text: "The tower is 324 metres tall, about the" });
      assert.deepEqual(fake.seen[0].json.parameters, { generate_parameters: { max_length: 60 } });
    },
    bad: () => json({ inputs: "text", parameters: { max_lenght: 5 } }),
    badStatus: 400,
    badField: "parameters.max_lenght",
  },
  {
    task: "translation",
    model: "google-t5/t5-small",
    good: () => json({ inputs: "Hello", parameters: { src_lang: "en", tgt_lang: "de" } }),
    check: async (res) => assert.deepEqual(await res.json(), { translation_text: "[de] Hello" }),
    bad: () => json({ inputs: "" }),
    badStatus: 400,
    badField: "inputs",
  },
  {
    task: "text-classification",
    model: "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    good: () => json({ inputs: "What an awful day" }),
    async check(res) {
      const body = await res.json();
      assert.ok(isLabelScores(body));
      assert.equal(body[0].label, "NEGATIVE");
    },
    bad: () => json({ inputs: "x", parameters: { top_k: 0 } }),
    badStatus: 400,
    badField: "parameters.top_k",
  },
  {
    task: "fill-mask",
    model: "google-bert/bert-base-uncased",
    good: () => json({ inputs: "Paris is the [MASK] of France.", parameters: { top_k: 3 } }),
    async check(res) {
      const body = await res.json();
      assert.equal(body.length, 3);
      assert.deepEqual(Object.keys(body[0]).sort(), ["score", "sequence", "token", "token_str"]);
      assert.equal(body[0].sequence, "Paris is the capital of France.");
    },
    bad: () => json({ inputs: 42 }),
    badStatus: 400,
    badField: "inputs",
  },
  {
    task: "text-generation",
    model: "meta-llama/Llama-3.1-8B-Instruct",
    good: () => json({ messages: [{ role: "user", content: "hi there" }], max_tokens: 50, temperature: 0.2 }),
    async check(res, fake) {
      const body = await res.json();
      assert.equal(body.object, "chat.completion");
      assert.equal(body.choices[0].message.content, "You said: hi there");
      assert.equal(fake.seen[0].task, "chat");
      assert.equal(fake.seen[0].json.max_tokens, 50);
    },
    bad: () => json({ messages: [{ role: "user", content: "hi" }], temperature: 5 }),
    badStatus: 400,
    badField: "temperature",
  },
  {
    task: "feature-extraction",
    model: "sentence-transformers/all-MiniLM-L6-v2",
    good: () => json({ inputs: ["first text", "second text"] }),
    async check(res) {
      const body = await res.json();
      assert.equal(body.length, 2);
      assert.equal(body[0].length, 384);
      assert.ok(body[1].every((x: unknown) => typeof x === "number"));
    },
    bad: () => json({ inputs: Array.from({ length: 65 }, () => "x") }),
    badStatus: 400,
    badField: "inputs",
  },
  {
    task: "text-to-image",
    model: "black-forest-labs/FLUX.1-schnell",
    good: () => json({ prompt: "Llama wearing sunglasses", width: 96, height: 64 }),
    async check(res) {
      assert.equal(res.headers.get("content-type"), "image/png");
      assert.deepEqual(imageInfo(new Uint8Array(await res.arrayBuffer())), { type: "png", width: 96, height: 64 });
    },
    bad: () => json({ prompt: "   " }),
    badStatus: 400,
    badField: "prompt",
  },
  {
    task: "text-to-speech",
    model: "hexgrad/Kokoro-82M",
    good: () => json({ inputs: "Hello from Supabase and Hugging Face" }),
    async check(res) {
      assert.equal(res.headers.get("content-type"), "audio/wav");
      const wav = new Uint8Array(await res.arrayBuffer());
      const info = wavInfo(wav);
      assert.ok(info && info.seconds > 0.5, JSON.stringify(info));
      // Exactly the RIFF file: nothing appended (no event-stream `[DONE]` after audio bytes).
      assert.equal(wav.length, new DataView(wav.buffer).getUint32(4, true) + 8);
    },
    bad: () => json({ inputs: "hi", parameters: { voice: "x" } }),
    badStatus: 400,
    badField: "parameters.voice",
  },
  {
    task: "image-to-text",
    model: "Salesforce/blip-image-captioning-large",
    good: () => png(),
    async check(res, fake) {
      assert.match((await res.json()).generated_text, /^a 32x24 png image [0-9a-f]{8}$/);
      assert.equal(fake.seen[0].headers.get("content-type"), "image/png");
    },
    bad: () => ({ body: "not an image", type: "text/plain" }),
    badStatus: 415,
  },
  {
    task: "image-classification",
    model: "google/vit-base-patch16-224",
    good: () => ({ body: tinyJpeg, type: "image/jpeg" }),
    check: async (res) => assert.ok(isLabelScores(await res.json())),
    bad: async () => ({ ...(await png()), type: "image/jpeg" }), // a PNG that says it is a JPEG
    badStatus: 415,
  },
  {
    task: "object-detection",
    model: "facebook/detr-resnet-50",
    good: () => png(40, 30),
    async check(res) {
      const [found] = await res.json();
      assert.deepEqual(found, { label: "cat", score: 0.97, box: { xmin: 0, ymin: 0, xmax: 40, ymax: 30 } });
    },
    bad: () => ({ body: makeWav(0.1), type: "image/png" }),
    badStatus: 415,
  },
  {
    task: "image-segmentation",
    model: "nvidia/segformer-b0-finetuned-ade-512-512",
    good: () => png(20, 10),
    async check(res, fake) {
      const [segment] = await res.json();
      assert.equal(segment.label, "cat");
      const mask = Uint8Array.from(atob(segment.mask), (c) => c.charCodeAt(0));
      assert.deepEqual(imageInfo(mask), { type: "png", width: 20, height: 10 });
      // The client sends this task as JSON with the image in base64.
      assert.equal(typeof fake.seen[0].json.inputs, "string");
    },
    bad: () => ({ body: new Uint8Array(), type: "image/png" }),
    badStatus: 400,
  },
  {
    task: "automatic-speech-recognition",
    model: "openai/whisper-large-v3",
    good: wav,
    check: async (res) => assert.deepEqual(await res.json(), { text: "a 0.50 s 16000 Hz recording" }),
    bad: async () => ({ ...(await png()), type: "audio/wav" }),
    badStatus: 415,
  },
  {
    task: "audio-classification",
    model: "superb/hubert-large-superb-er",
    good: wav,
    check: async (res) => assert.ok(isLabelScores(await res.json())),
    bad: () => ({ body: makeWav(0.1), type: "audio/mpeg" }), // a WAV that says it is an MP3
    badStatus: 415,
  },
];

for (const c of CASES) {
  Deno.test(`${c.task}: answers its shape with X-Model, refuses bad input, maps an upstream error, falls back from a 410`, async (t) => {
    await withServer(async (s) => {
      await t.step("happy path", async () => {
        const res = await post(s, c.task, await c.good());
        assert.equal(res.status, 200, await res.clone().text());
        assert.equal(res.headers.get("x-model"), c.model);
        assert.equal(res.headers.get("access-control-allow-origin"), "*");
        assert.equal(res.headers.get("cache-control"), "no-store");
        await c.check(res, s.fake);
        assert.equal(s.fake.seen.length, 1);
        assert.equal(s.fake.seen[0].model, c.model);
        assert.equal(s.fake.seen[0].headers.get("authorization"), `Bearer ${HF_TOKEN}`);
      });
      await t.step("bad input: refused before anything is sent upstream", async () => {
        s.fake.seen.length = 0;
        const body = await errorOf(await post(s, c.task, await c.bad()), c.badStatus);
        if (c.badField) assert.equal(body.field, c.badField);
        assert.equal(s.fake.seen.length, 0);
      });
      await t.step("upstream error: credits exhausted is a 502 that says so", async () => {
        // Every model of the default chain (text-generation has two) runs out of credits.
        const credits = () => hfError(402, "You have exceeded your monthly included credits");
        s.fake.enqueue(credits(), credits());
        const body = await errorOf(await post(s, c.task, await c.good()), 502);
        assert.match(body.error, /credits/);
        s.fake.clear();
      });
    });
    await t.step("fallback: a 410 model gives way to the next of HF_MODEL_<TASK>", async () => {
      const variable = `HF_MODEL_${c.task.toUpperCase().replaceAll("-", "_")}`;
      await withServer(
        async (s) => {
          s.fake.enqueue(hfError(410, "This model is gone"));
          const res = await post(s, c.task, await c.good());
          assert.equal(res.status, 200, await res.clone().text());
          assert.equal(res.headers.get("x-model"), c.model);
          await c.check(res, { ...s.fake, seen: s.fake.seen.slice(1) });
          assert.deepEqual(s.fake.seen.map((r) => r.model), ["retired/old-model", c.model]);
        },
        { [variable]: `retired/old-model, ${c.model}` },
        { models: { "retired/old-model": s_taskOf(c.task) } },
      );
    });
  });
}

// The fake's name for a task (chat completion serves text-generation).
function s_taskOf(task: string) {
  return (task === "text-generation" ? "chat" : task) as any;
}

Deno.test("video-classification answers 501 and nothing is sent upstream", async () => {
  await withServer(async (s) => {
    const body = await errorOf(await post(s, "video-classification", { body: "x", type: "video/mp4" }), 501);
    assert.match(body.error, /not served/);
    assert.equal(s.fake.seen.length, 0);
  });
});

Deno.test("a caller-caused 4xx never falls back; 5xx after retries does", async () => {
  await withServer(async (s) => {
    s.fake.enqueue(hfError(422, "Input is too long for this model"));
    await errorOf(await post(s, "summarization", json({ inputs: "x" })), 400);
    assert.deepEqual(s.fake.seen.map((r) => r.model), ["facebook/bart-large-cnn"]);
    s.fake.seen.length = 0;
    s.fake.enqueue(hfError(500, "boom"), hfError(500, "boom"));
    const res = await post(s, "summarization", json({ inputs: "x y" }));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-model"), "Falconsai/text_summarization");
    assert.deepEqual(s.fake.seen.map((r) => r.model), [
      "facebook/bart-large-cnn",
      "facebook/bart-large-cnn",
      "Falconsai/text_summarization",
    ]);
  }, { HF_MODEL_SUMMARIZATION: "facebook/bart-large-cnn,Falconsai/text_summarization", HF_MAX_ATTEMPTS: "2" });
});

Deno.test("a caller picks a model only from HF_ALLOWED_MODELS_<TASK>; anything else is 400 with nothing sent", async () => {
  await withServer(async (s) => {
    const refused = await errorOf(await post(s, "summarization", json({ inputs: "x", model: "evil/model" })), 400);
    assert.equal(refused.field, "model");
    const media = await errorOf(await post(s, "image-classification", await png(), "?model=evil/model"), 400);
    assert.equal(media.field, "model");
    assert.equal(s.fake.seen.length, 0);
    const res = await post(s, "summarization", json({ inputs: "a b c", model: "Falconsai/text_summarization" }));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-model"), "Falconsai/text_summarization");
    const byQuery = await post(s, "image-classification", await png(), "?model=microsoft/resnet-50");
    assert.equal(byQuery.headers.get("x-model"), "microsoft/resnet-50");
    await byQuery.body?.cancel();
    assert.deepEqual(s.fake.seen.map((r) => r.model), ["Falconsai/text_summarization", "microsoft/resnet-50"]);
  }, {
    HF_ALLOWED_MODELS_SUMMARIZATION: "Falconsai/text_summarization",
    HF_ALLOWED_MODELS_IMAGE_CLASSIFICATION: "microsoft/resnet-50",
  });
});

Deno.test("text-generation accepts {inputs} as one user message", async () => {
  await withServer(async (s) => {
    const res = await post(s, "text-generation", json({ inputs: "hello" }));
    assert.equal((await res.json()).choices[0].message.content, "You said: hello");
    assert.deepEqual(s.fake.seen[0].json.messages, [{ role: "user", content: "hello" }]);
    const both = await errorOf(await post(s, "text-generation", json({ inputs: "a", messages: [] })), 400);
    assert.equal(both.field, "messages");
    // No URL inputs: an image_url part would make the provider fetch it.
    const url = await errorOf(
      await post(
        s,
        "text-generation",
        json({
          messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "http://169.254.169.254/" } }] }],
        }),
      ),
      400,
    );
    assert.match(url.error, /no URLs/);
  });
});

Deno.test("SSE: the client receives the first chunk before the upstream finishes, and the stream ends with [DONE]", async () => {
  let release!: () => void;
  const hold = new Promise<void>((r) => (release = r));
  await withServer(
    async (s) => {
      const res = await post(
        s,
        "text-generation",
        json({ messages: [{ role: "user", content: "stream me" }], stream: true }),
      );
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
      assert.equal(res.headers.get("x-model"), "meta-llama/Llama-3.1-8B-Instruct");
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      const first = await reader.read();
      assert.match(first.value!, /^data: \{.*"chat.completion.chunk"/);
      assert.ok(!first.value!.includes("[DONE]"), "the whole stream arrived before the upstream was released");
      release();
      let rest = "";
      for (let r = await reader.read(); !r.done; r = await reader.read()) rest += r.value;
      const events = (first.value + rest).split("\n\n").filter(Boolean);
      assert.equal(events.at(-1), "data: [DONE]");
      const text = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)).choices[0].delta.content ?? "").join("");
      assert.equal(text, "You said: stream me");
    },
    {},
    { holdStream: hold },
  );
});

Deno.test("SSE: an upstream error before the stream starts is a JSON error, after retries", async () => {
  await withServer(async (s) => {
    s.fake.enqueue(hfError(429, "Rate limit reached", undefined, { "Retry-After": "3" }));
    const res = await post(s, "text-generation", json({ inputs: "x", stream: true }));
    await errorOf(res, 429);
    assert.equal(res.headers.get("retry-after"), "3");
  });
});

Deno.test("GET describes every task: input, output, models, cost; GET /<task> one of them", async () => {
  await withServer(async (s) => {
    const res = await fetch(s.url, { headers: { authorization: `Bearer ${s.token}` } });
    assert.equal(res.status, 200);
    const { tasks } = await res.json();
    assert.deepEqual(
      tasks.map((t: any) => t.task).sort(),
      CASES.map((c) => c.task).concat("video-classification").sort(),
    );
    for (const c of CASES) {
      const d = tasks.find((t: any) => t.task === c.task);
      assert.equal(d.available, true);
      assert.equal(d.models[0], c.model);
      assert.ok(d.cost_units > 0);
      assert.equal(d.path, `/functions/v1/huggingface-inference/${c.task}`);
      assert.ok(["json", "media"].includes(d.input.type));
    }
    const video = tasks.find((t: any) => t.task === "video-classification");
    assert.equal(video.available, false);
    const one = await (await fetch(`${s.url}/image-segmentation`)).json();
    assert.equal(one.input.media, "image");
    assert.equal(one.input.max_bytes, 1000);
    assert.match(one.input.or_json.parameters.threshold, /number 0–1/);
    assert.deepEqual(one.allowed_models, []);
    await errorOf(await fetch(`${s.url}/no-such-task`), 404);
  }, { HF_MAX_IMAGE_BYTES: "1000" });
});

Deno.test("the platform's path (/huggingface-inference/<task>) is served too; media over its limit is 413", async () => {
  await withServer(async (s) => {
    const platformUrl = s.url.replace("/functions/v1", "");
    const res = await post({ ...s, url: platformUrl }, "summarization", json({ inputs: "a b" }));
    assert.equal(res.status, 200);
    await res.body?.cancel();
    await errorOf(await post(s, "image-classification", await png(256, 256)), 413);
    await errorOf(await post(s, "image-classification", await png(), "?top_k=3"), 400);
    await errorOf(await post({ ...s, token: "not-a-jwt" }, "summarization", json({ inputs: "x" })), 401);
  }, { HF_MAX_IMAGE_BYTES: "100" });
});

Deno.test("the guard seam: each task's POST runs guard(task) once its input is checked; bad input, GET and unavailable tasks skip it", async () => {
  const fake = startFakeHf({ token: HF_TOKEN });
  try {
    const guarded: string[] = [];
    const handler = createHandler(
      { HUGGING_FACE_ACCESS_TOKEN: HF_TOKEN, HF_BASE_URL: fake.url, SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET },
      {
        // A stand-in for the quota meter: sees the task, may refuse, sees the answer's X-Model.
        guard: (task) => async (req, next) => {
          guarded.push(task);
          if (task === "fill-mask") return Response.json({ error: "quota exceeded" }, { status: 429 });
          const res = await next(req);
          guarded.push(`${task} served by ${res.headers.get("x-model")}`);
          return res;
        },
      },
    );
    const token = await userToken();
    const call = (task: string, method = "POST", body: unknown = { inputs: "a [MASK] b" }) =>
      handler(
        new Request(`http://fn.test/huggingface-inference${task ? `/${task}` : ""}`, {
          method,
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          body: method === "POST" ? JSON.stringify(body) : undefined,
        }),
      );
    assert.equal((await call("summarization")).status, 200);
    assert.equal((await call("fill-mask")).status, 429);
    assert.equal((await call("summarization", "POST", { inputs: "x", parameters: { nope: 1 } })).status, 400);
    assert.equal((await call("summarization", "POST", { inputs: "x", model: "someone/else" })).status, 400);
    assert.equal((await call("video-classification")).status, 501);
    assert.equal((await call("", "GET")).status, 200);
    assert.deepEqual(guarded, ["summarization", "summarization served by facebook/bart-large-cnn", "fill-mask"]);
    assert.deepEqual(fake.seen.map((r) => r.task), ["summarization"]);
  } finally {
    await fake.stop();
  }
});

Deno.test("validate before paying: bad requests take no quota, even from a caller at the limit", async () => {
  const fake = startFakeHf({ token: HF_TOKEN });
  const store = createMemoryMeterStore();
  store.tiers.authenticated.requests_per_minute = 1;
  try {
    const handler = createHandler(
      { HUGGING_FACE_ACCESS_TOKEN: HF_TOKEN, HF_BASE_URL: fake.url, SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET },
      { meterStore: store, waitUntil: () => {} },
    );
    const token = await userToken();
    const call = (body: unknown, type = "application/json") =>
      handler(
        new Request("http://fn.test/huggingface-inference/summarization", {
          method: "POST",
          headers: { "content-type": type, authorization: `Bearer ${token}` },
          body: typeof body === "string" ? body : JSON.stringify(body),
        }),
      );
    const bad = [
      await call("{not json"),
      await call({ inputs: "" }),
      await call({ inputs: "x", parameters: { max_lenght: 3 } }),
      await call({ inputs: "x", model: "someone/else" }),
      await call("inputs=x", "text/plain"),
    ];
    assert.deepEqual(bad.map((r) => r.status), [400, 400, 400, 400, 415]);
    for (const res of bad) {
      assert.equal(res.headers.get("ratelimit"), null, "a bad request reached the meter");
      await res.body?.cancel();
    }
    assert.equal(store.reserved.length, 0);
    const good = await call({ inputs: "A long text to summarise." });
    assert.equal(good.status, 200);
    await good.body?.cancel();
    assert.equal((await call({ inputs: "again" })).status, 429);
    assert.equal(store.reserved.length, 2);
    assert.equal(fake.seen.length, 1);
  } finally {
    await fake.stop();
  }
});

Deno.test("SSE: a stream the upstream ends without data: [DONE] still ends with it", async () => {
  await withServer(async (s) => {
    const chunk = {
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta: { content: "hi" }, finish_reason: "stop" }],
    };
    s.fake.enqueue(
      new Response(`data: ${JSON.stringify(chunk)}\n\n`, { headers: { "content-type": "text/event-stream" } }),
    );
    const res = await post(s, "text-generation", json({ inputs: "x", stream: true }));
    assert.equal(await res.text(), `data: ${JSON.stringify(chunk)}\n\ndata: [DONE]\n\n`);
  });
});
