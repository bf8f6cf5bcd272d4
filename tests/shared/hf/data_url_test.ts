import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { base64Stream, dataUrlStream, encodeBase64 } from "../../../supabase/functions/_shared/hf/data_url.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("encodeBase64 matches the standard encoding, padding included", () => {
  for (let n = 0; n < 10; n++) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 97 + 13) % 256);
    assert.equal(text(encodeBase64(bytes, true)), Buffer.from(bytes).toString("base64"), `${n} bytes`);
  }
  assert.throws(() => encodeBase64(new Uint8Array(4), false), RangeError);
});

Deno.test("dataUrlStream encodes across any chunk boundaries exactly", async () => {
  const bytes = Uint8Array.from({ length: 30_001 }, (_, i) => (i * 7919 + (i >> 8)) % 256);
  for (const chunk of [1, 2, 3, 4, 5, 4096, 65_537]) {
    let at = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(c) {
        if (at >= bytes.length) return c.close();
        c.enqueue(bytes.slice(at, at += chunk));
      },
    });
    const out = new Uint8Array(await new Response(dataUrlStream(source, "image/png")).arrayBuffer());
    assert.equal(text(out), `data:image/png;base64,${Buffer.from(bytes).toString("base64")}`, `chunks of ${chunk}`);
  }
});

Deno.test("base64Stream is the plain base64 of its source, across chunk boundaries", async () => {
  const bytes = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 131 + 7) % 256);
  for (const chunk of [1, 5, 4096]) {
    let at = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(c) {
        if (at >= bytes.length) return c.close();
        c.enqueue(bytes.slice(at, at += chunk));
      },
    });
    const encoded = text(new Uint8Array(await new Response(base64Stream(source)).arrayBuffer()));
    assert.equal(encoded, Buffer.from(bytes).toString("base64"), `chunks of ${chunk}`);
  }
});
