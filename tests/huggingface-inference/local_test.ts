/**
 * `huggingface-inference` end to end on the local stack (real PostgreSQL, Storage stand-in with RLS,
 * the functions gateway with verify_jwt): every task through `supabase.functions.invoke`, and media
 * read from Storage with the caller's JWT.
 */
import assert from "node:assert/strict";
import { FunctionsHttpError } from "npm:@supabase/supabase-js@2.119.0";
import { makeWav } from "../support/audio.ts";
import { makePng } from "../support/images.ts";
import { withLocal } from "../support/local.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const ALICE = "7f0c6f7e-3c44-4a8e-9d55-0d8f1f7a0a11";
const BOB = "b6a1d0de-65a4-4b8f-8a39-2c5ec7d0b222";

/** The status and JSON of a failed invoke. */
async function failure(error: unknown): Promise<{ status: number; body: any }> {
  assert.ok(error instanceof FunctionsHttpError, `expected an HTTP error, got ${error}`);
  const res = error.context as Response;
  return { status: res.status, body: await res.json() };
}

Deno.test(
  "every task answers through supabase.functions.invoke('huggingface-inference/<task>')",
  opts,
  () =>
    withLocal(async ({ userClient }) => {
      const alice = await userClient(ALICE);
      const png = new Blob([await makePng(16, 16)], { type: "image/png" });
      const wav = new Blob([makeWav(0.25)], { type: "audio/wav" });
      const calls: [string, unknown, (data: any, res: Response) => void][] = [
        ["summarization", { inputs: "one two three" }, (d) => assert.equal(d.summary_text, "one two three")],
        [
          "translation",
          { inputs: "Hello", parameters: { tgt_lang: "es" } },
          (d) => assert.equal(d.translation_text, "[es] Hello"),
        ],
        ["text-classification", { inputs: "great" }, (d) => assert.equal(d[0].label, "POSITIVE")],
        ["fill-mask", { inputs: "a [MASK] day" }, (d) => assert.equal(d[0].token_str, "capital")],
        ["text-generation", { inputs: "hi" }, (d) => assert.equal(d.choices[0].message.content, "You said: hi")],
        ["feature-extraction", { inputs: "embed me" }, (d) => assert.equal(d.length, 384)],
        ["text-to-image", { prompt: "a cat" }, (_, r) => assert.equal(r.headers.get("content-type"), "image/png")],
        ["text-to-speech", { inputs: "hello" }, (_, r) => assert.equal(r.headers.get("content-type"), "audio/wav")],
        ["image-to-text", png, (d) => assert.match(d.generated_text, /^a 16x16 png image/)],
        ["image-classification", png, (d) => assert.equal(d[0].label, "png picture")],
        ["object-detection", png, (d) => assert.deepEqual(d[0].box, { xmin: 0, ymin: 0, xmax: 16, ymax: 16 })],
        ["image-segmentation", png, (d) => assert.equal(typeof d[0].mask, "string")],
        ["automatic-speech-recognition", wav, (d) => assert.equal(d.text, "a 0.25 s 16000 Hz recording")],
        ["audio-classification", wav, (d) => assert.equal(d[0].label, "neu")],
      ];
      for (const [task, body, check] of calls) {
        const { data, error, response } = await alice.functions.invoke(
          `huggingface-inference/${task}`,
          { body } as any,
        );
        assert.equal(error, null, `${task}: ${error}`);
        assert.ok(response!.headers.get("x-model"), `${task}: no X-Model`);
        check(data, response!);
      }
      const { error } = await alice.functions.invoke("huggingface-inference/video-classification", { body: {} });
      assert.equal((await failure(error)).status, 501);
    }),
);

Deno.test(
  "a Storage reference is read with the caller's JWT: their own file works, another's is 404",
  opts,
  () =>
    withLocal(async ({ userClient, fake }) => {
      const alice = await userClient(ALICE);
      const bob = await userClient(BOB);
      const png = await makePng(24, 12);
      assert.equal(
        (await alice.storage.from("images").upload(`${ALICE}/cat.png`, png, { contentType: "image/png" })).error,
        null,
      );
      assert.equal(
        (await bob.storage.from("images").upload(`${BOB}/voice.wav`, makeWav(0.5), { contentType: "audio/wav" })).error,
        null,
      );
      const ref = (bucket: string, path: string) => ({ inputs: { storage: { bucket, path } } });

      const own = await alice.functions.invoke("huggingface-inference/object-detection", {
        body: ref("images", `${ALICE}/cat.png`),
      });
      assert.equal(own.error, null);
      assert.deepEqual(own.data[0].box, { xmin: 0, ymin: 0, xmax: 24, ymax: 12 });

      const ownAudio = await bob.functions.invoke("huggingface-inference/automatic-speech-recognition", {
        body: ref("images", `${BOB}/voice.wav`),
      });
      assert.deepEqual(ownAudio.data, { text: "a 0.50 s 16000 Hz recording" });

      const sent = fake.seen.filter((r) => r.task !== "chat").length;
      const others = await alice.functions.invoke("huggingface-inference/automatic-speech-recognition", {
        body: ref("images", `${BOB}/voice.wav`),
      });
      const refused = await failure(others.error);
      assert.equal(refused.status, 404);
      assert.match(refused.body.error, /not found/i);
      const missing = await failure(
        (await alice.functions.invoke("huggingface-inference/image-classification", {
          body: ref("images", `${ALICE}/none.png`),
        })).error,
      );
      assert.equal(missing.status, 404);
      // A file of the wrong kind is refused by its bytes, even when it is the caller's own.
      const wrongKind = await failure(
        (await bob.functions.invoke("huggingface-inference/image-classification", {
          body: ref("images", `${BOB}/voice.wav`),
        })).error,
      );
      assert.equal(wrongKind.status, 415);
      const climbing = await failure(
        (await alice.functions.invoke("huggingface-inference/image-to-text", {
          body: ref("images", `${ALICE}/../${BOB}/voice.wav`),
        })).error,
      );
      assert.equal(climbing.status, 400);
      assert.equal(fake.seen.filter((r) => r.task !== "chat").length, sent, "a refused reference reached Hugging Face");
    }),
);

Deno.test(
  "the gateway refuses a call without a JWT; GET describes the tasks through the stack",
  opts,
  () =>
    withLocal(async ({ dev, userClient }) => {
      const res = await fetch(`${dev.apiUrl}/functions/v1/huggingface-inference/summarization`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ inputs: "x" }),
      });
      assert.equal(res.status, 401);
      await res.body?.cancel();
      const alice = await userClient(ALICE);
      const { data, error } = await alice.functions.invoke("huggingface-inference", { method: "GET" });
      assert.equal(error, null);
      assert.equal(data.tasks.length, 15);
      assert.equal(
        data.tasks.find((t: any) => t.task === "summarization").path,
        "/functions/v1/huggingface-inference/summarization",
      );
    }),
);

Deno.test(
  "the result cache through the stack: a repeated summarization is a hit; a Storage reference and its bytes share one entry",
  opts,
  () =>
    withLocal(async ({ dev, userClient, fake, waitFor }) => {
      const alice = await userClient(ALICE);
      const bob = await userClient(BOB);
      // Counted per model: an upload to `images` is also captioned (image-to-text) meanwhile.
      const callsTo = (model: string) => fake.seen.filter((r) => r.model === model).length;
      const stored = (task: string) =>
        waitFor(`a stored ${task} answer`, async () => {
          const [row] = await dev.stack.sql`
            select count(*)::int as n from cache.entries where task = ${task} and status = 'ready'`;
          return row.n > 0;
        });

      const summary = { body: { inputs: "The tower is 324 metres tall." } };
      const first = await alice.functions.invoke("huggingface-inference/summarization", summary);
      assert.equal(first.error, null);
      assert.equal(first.response!.headers.get("x-cache"), "MISS");
      await stored("summarization");
      const calls = callsTo("facebook/bart-large-cnn");
      const again = await alice.functions.invoke("huggingface-inference/summarization", summary);
      assert.equal(again.response!.headers.get("x-cache"), "HIT");
      assert.deepEqual(again.data, first.data);
      assert.equal(callsTo("facebook/bart-large-cnn"), calls, "the hit called Hugging Face");

      // The same bytes: Bob's upload read by reference, then Alice's raw body: one entry, one call.
      const png = await makePng(30, 20);
      assert.equal(
        (await bob.storage.from("images").upload(`${BOB}/same.png`, png, { contentType: "image/png" })).error,
        null,
      );
      const byRef = await bob.functions.invoke("huggingface-inference/image-classification", {
        body: { inputs: { storage: { bucket: "images", path: `${BOB}/same.png` } } },
      });
      assert.equal(byRef.error, null);
      assert.equal(byRef.response!.headers.get("x-cache"), "MISS");
      await stored("image-classification");
      assert.equal(callsTo("google/vit-base-patch16-224"), 1);
      const raw = await alice.functions.invoke("huggingface-inference/image-classification", {
        body: new Blob([png], { type: "image/png" }),
      } as any);
      assert.equal(raw.error, null);
      assert.equal(raw.response!.headers.get("x-cache"), "HIT");
      assert.deepEqual(raw.data, byRef.data);
      assert.equal(callsTo("google/vit-base-patch16-224"), 1, "the same bytes called Hugging Face again");
      const [entries] = await dev.stack.sql`
        select count(*)::int as n from cache.entries where task = 'image-classification'`;
      assert.equal(entries.n, 1);
      // A reference the caller cannot read is refused before any lookup: no answer leaks by path.
      const refused = await alice.functions.invoke("huggingface-inference/image-classification", {
        body: { inputs: { storage: { bucket: "images", path: `${BOB}/same.png` } } },
      });
      assert.equal((await failure(refused.error)).status, 404);
    }),
);
