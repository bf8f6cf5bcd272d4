/**
 * Recognising image bytes from their leading signature.
 */
import assert from "node:assert/strict";
import { sniffImageType } from "../../supabase/functions/huggingface-image-captioning/image.ts";
import { concat, makePng, tinyJpeg } from "../support/images.ts";

const ascii = (text: string) => new TextEncoder().encode(text);

/** Concatenates byte parts; numbers are single bytes. */
function bytes(...parts: (string | number[] | Uint8Array)[]): Uint8Array {
  return concat(parts.map((p) => (typeof p === "string" ? ascii(p) : Uint8Array.from(p))));
}

const u32le = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];

// Headers of real files: a 1×1 GIF's logical screen descriptor, a lossless WebP's RIFF header,
// and a BMP's file header followed by the start of its BITMAPINFOHEADER.
const gif = (version: "87a" | "89a") => bytes(`GIF${version}`, [1, 0, 1, 0, 0x80, 0, 0], [0x2c, 0, 0, 0, 0]);
const webp = bytes("RIFF", u32le(26), "WEBP", "VP8L", u32le(14), [0x2f, 0, 0, 0, 0]);
const bmp = bytes("BM", u32le(58), [0, 0, 0, 0], u32le(54), u32le(40), u32le(1), u32le(1));

Deno.test("recognises a PNG", async () => {
  assert.equal(sniffImageType(await makePng(4, 3)), "image/png");
});

Deno.test("recognises a JPEG", () => {
  assert.equal(sniffImageType(tinyJpeg), "image/jpeg");
});

Deno.test("recognises GIF87a and GIF89a", () => {
  assert.equal(sniffImageType(gif("87a")), "image/gif");
  assert.equal(sniffImageType(gif("89a")), "image/gif");
});

Deno.test("recognises a WebP", () => {
  assert.equal(sniffImageType(webp), "image/webp");
});

Deno.test("recognises a BMP", () => {
  assert.equal(sniffImageType(bmp), "image/bmp");
});

Deno.test("looks at the bytes, not at a view's underlying buffer", async () => {
  const png = await makePng(2, 2);
  const padded = bytes("garbage-prefix", png);
  assert.equal(sniffImageType(padded.subarray(14)), "image/png");
  assert.equal(sniffImageType(padded), undefined);
});

Deno.test("returns undefined for empty and short input", () => {
  assert.equal(sniffImageType(new Uint8Array()), undefined);
  assert.equal(sniffImageType(bytes([0xff, 0xd8, 0xff])), undefined);
  assert.equal(sniffImageType(bytes("GIF89a")), undefined);
});

Deno.test("returns undefined for images truncated before 12 bytes", async () => {
  const png = await makePng(4, 3);
  for (const image of [png, tinyJpeg, gif("89a"), webp, bmp]) {
    for (const length of [1, 2, 8, 11]) {
      assert.equal(sniffImageType(image.subarray(0, length)), undefined);
    }
  }
});

Deno.test("returns undefined for text and other files", () => {
  const others = [
    ascii("hello, this is a caption, not an image"),
    ascii('{"generated_text":"a cat"}'),
    ascii("<svg xmlns='http://www.w3.org/2000/svg'></svg>"),
    bytes("%PDF-1.7\n", [0xe2, 0xe3, 0xcf, 0xd3]),
    bytes("RIFF", u32le(36), "WAVEfmt "), // RIFF, but audio
    bytes([0x89], "PNH", [0x0d, 0x0a, 0x1a, 0x0a], "IHDR"), // one byte off a PNG
    bytes("GIF90a", [1, 0, 1, 0, 0, 0, 0]),
    new Uint8Array(64),
  ];
  for (const file of others) {
    assert.equal(sniffImageType(file), undefined, new TextDecoder().decode(file));
  }
});

Deno.test({
  // "BM" alone starts plenty of text files.
  name: "text that happens to start with 'BM' is not a BMP",
  fn() {
    assert.equal(sniffImageType(ascii("BMW 320d, 2019, 45 000 km")), undefined);
  },
});
