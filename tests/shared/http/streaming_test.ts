import assert from "node:assert/strict";
import { bodyLength, endingWithDone, keepingBody } from "../../../supabase/functions/_shared/http/streaming.ts";

async function through(chunks: string[]): Promise<string> {
  const source = ReadableStream.from(chunks.map((c) => new TextEncoder().encode(c)));
  return await new Response(endingWithDone(source)).text();
}

Deno.test("endingWithDone passes events through and adds data: [DONE] only when missing", async () => {
  assert.equal(await through(['data: {"a":1}\n\n', "data: [DONE]\n\n"]), 'data: {"a":1}\n\ndata: [DONE]\n\n');
  assert.equal(await through(['data: {"a":1}\n\n']), 'data: {"a":1}\n\ndata: [DONE]\n\n');
  assert.equal(await through(['data: {"a":1}']), 'data: {"a":1}\n\ndata: [DONE]\n\n');
  assert.equal(await through(["data: [DO", "NE]\n\n"]), "data: [DONE]\n\n");
  assert.equal(await through([]), "data: [DONE]\n\n");
});

Deno.test("keepingBody keeps a wanted 2xx body and hands the client an empty one; errors pass untouched", async () => {
  const answers = [
    new Response("bytes", { headers: { "content-type": "audio/wav" } }),
    Response.json({ error: "nope" }, { status: 500 }),
  ];
  const kept = keepingBody(() => Promise.resolve(answers.shift()!), (t) => t.startsWith("audio/"));
  const seenByClient = await kept.fetch("http://x");
  assert.equal(seenByClient.body, null);
  assert.equal(seenByClient.headers.get("content-type"), "audio/wav");
  assert.equal(await kept.kept()!.text(), "bytes");
  const error = await kept.fetch("http://x");
  assert.equal(error.status, 500);
  assert.deepEqual(await error.json(), { error: "nope" });
});

Deno.test("bodyLength reads Content-Length, but not for a body that fetch decompresses", () => {
  const res = (headers: Record<string, string>) => new Response("x", { headers });
  assert.equal(bodyLength(res({ "content-length": "1234" })), 1234);
  assert.equal(bodyLength(res({ "content-length": "1234", "content-encoding": "gzip" })), undefined);
  assert.equal(bodyLength(res({ "content-length": "twelve" })), undefined);
  assert.equal(bodyLength(new Response(new ReadableStream())), undefined);
});
