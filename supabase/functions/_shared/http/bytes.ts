/**
 * Byte arrays: joining the chunks a stream delivered.
 * @module
 */

/** Joins `parts` into one new array of their total length; throws nothing. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((size, part) => size + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}
