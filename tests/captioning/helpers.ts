/**
 * Images for captioning tests: each one different, so each caption is its own.
 * @module
 */
import { makePng } from "../support/images.ts";
export { describe } from "../support/fake_hf.ts";

/** A small PNG in a random colour. */
export function makeRandomPng(size = 32): Promise<Uint8Array<ArrayBuffer>> {
  const [r, g, b] = crypto.getRandomValues(new Uint8Array(3));
  return makePng(size, size, [r, g, b]);
}
