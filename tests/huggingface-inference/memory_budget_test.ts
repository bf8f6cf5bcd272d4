/**
 * The gateway's budget of media held in memory (`HF_MEDIA_MEMORY_BYTES`), through the handler: a body
 * that finds the budget full past `HF_MEDIA_WAIT_MS` is refused with 503 and `Retry-After`, is not
 * charged, and the budget is whole again once the call holding it ends.
 */
import assert from "node:assert/strict";
import { createHandler } from "../../supabase/functions/huggingface-inference/handler.ts";
import { createMemoryMeterStore } from "../support/memory_meter.ts";
import { startFakeHf } from "../support/fake_hf.ts";
import { makePng } from "../support/images.ts";
import { LOCAL_JWT_SECRET, userToken } from "../support/tokens.ts";

Deno.test("media budget: a body that cannot get budget in time gets 503 with Retry-After and is not charged", async () => {
  const fake = startFakeHf();
  const store = createMemoryMeterStore();
  const image = await makePng(32, 24);
  const handler = createHandler({
    HUGGING_FACE_ACCESS_TOKEN: "hf_test",
    HF_BASE_URL: fake.url,
    SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
    HF_MEDIA_MEMORY_BYTES: String(image.length), // room for one such image
    HF_MEDIA_WAIT_MS: "50",
  }, { meterStore: store });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  const token = await userToken();
  const classify = () =>
    fetch(`http://127.0.0.1:${server.addr.port}/huggingface-inference/image-classification`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "image/png" },
      body: image,
    });
  try {
    fake.enqueue({ delayMs: 400 }); // the first call holds the budget for 400 ms
    const first = classify();
    await new Promise((r) => setTimeout(r, 100));
    const refused = await classify();
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get("retry-after"), "5");
    assert.match((await refused.json()).error, /holding as much media/);
    const held = await first;
    assert.equal(held.status, 200);
    await held.body?.cancel();
    const after = await classify();
    assert.equal(after.status, 200, "the budget is whole again once the first call ended");
    await after.body?.cancel();
    assert.equal(fake.seen.length, 2, "the refused body never went upstream");
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(store.settled.filter((s) => s.charge).length, 2, "only the two answered calls are charged");
  } finally {
    await server.shutdown();
    await fake.stop();
  }
});

Deno.test("media budget: bodies beyond the budget wait their turn within HF_MEDIA_WAIT_MS and are answered", async () => {
  const fake = startFakeHf({ latencyMs: 50 });
  const image = await makePng(32, 24);
  const handler = createHandler({
    HUGGING_FACE_ACCESS_TOKEN: "hf_test",
    HF_BASE_URL: fake.url,
    SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
    HF_MEDIA_MEMORY_BYTES: String(image.length),
  }, { meterStore: createMemoryMeterStore() });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  const token = await userToken();
  try {
    const statuses = await Promise.all(Array.from({ length: 4 }, async () => {
      const res = await fetch(`http://127.0.0.1:${server.addr.port}/huggingface-inference/image-classification`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "image/png" },
        body: image,
      });
      await res.body?.cancel();
      return res.status;
    }));
    assert.deepEqual(statuses, [200, 200, 200, 200]);
  } finally {
    await server.shutdown();
    await fake.stop();
  }
});
