import assert from "node:assert/strict";
import { HttpError } from "../../../supabase/functions/_shared/http/mod.ts";
import { canonicalType, checkMedia, sniffMediaType } from "../../../supabase/functions/_shared/http/media.ts";
import { makeWav } from "../../support/audio.ts";
import { makePng, tinyJpeg } from "../../support/images.ts";

const status = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof HttpError);
    return e.status;
  }
  return 200;
};

Deno.test("sniffMediaType reads magic numbers", async () => {
  assert.equal(sniffMediaType(await makePng(2, 2)), "image/png");
  assert.equal(sniffMediaType(tinyJpeg), "image/jpeg");
  assert.equal(sniffMediaType(makeWav(0.01)), "audio/wav");
  assert.equal(sniffMediaType(new TextEncoder().encode("GIF89a...")), "image/gif");
  assert.equal(sniffMediaType(new TextEncoder().encode("fLaC....")), "audio/flac");
  assert.equal(sniffMediaType(new TextEncoder().encode("hello")), undefined);
});

Deno.test("canonicalType lowercases, drops parameters and resolves aliases", () => {
  assert.equal(canonicalType("Image/JPG; q=1"), "image/jpeg");
  assert.equal(canonicalType("audio/x-wav"), "audio/wav");
  assert.equal(canonicalType(null), "");
});

Deno.test("checkMedia: matching, generic and aliased types pass; mismatches are 415; empty is 400", async () => {
  const png = await makePng(2, 2);
  const wav = makeWav(0.01);
  assert.equal(checkMedia("image", "image/png", png), "image/png");
  assert.equal(checkMedia("image", "application/octet-stream", png), "image/png");
  assert.equal(checkMedia("image", null, tinyJpeg), "image/jpeg");
  assert.equal(checkMedia("image", "image/jpg", tinyJpeg), "image/jpeg");
  assert.equal(checkMedia("audio", "audio/x-wav", wav), "audio/wav");
  assert.equal(status(() => checkMedia("image", "image/jpeg", png)), 415); // says JPEG, is PNG
  assert.equal(status(() => checkMedia("image", "image/png", wav)), 415); // says PNG, is audio
  assert.equal(status(() => checkMedia("audio", "audio/wav", png)), 415);
  assert.equal(status(() => checkMedia("image", "text/plain", png)), 415); // not an image type at all
  assert.equal(status(() => checkMedia("image", "image/png", new TextEncoder().encode("<svg/>"))), 415);
  assert.equal(status(() => checkMedia("image", "image/png", new Uint8Array())), 400);
});
