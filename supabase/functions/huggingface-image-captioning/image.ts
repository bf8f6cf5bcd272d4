/**
 * Recognising image bytes before they are sent anywhere.
 * @module
 */

const SIGNATURES: [string, (b: Uint8Array) => boolean][] = [
  ["image/png", (b) => [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((x, i) => b[i] === x)],
  ["image/jpeg", (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff],
  ["image/gif", (b) => ascii(b, 0, 6) === "GIF87a" || ascii(b, 0, 6) === "GIF89a"],
  ["image/webp", (b) => ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 12) === "WEBP"],
  ["image/bmp", (b) => ascii(b, 0, 2) === "BM"],
];

/** Returns the MIME type of a PNG, JPEG, GIF, WebP or BMP from its leading bytes, else `undefined`. */
export function sniffImageType(bytes: Uint8Array): string | undefined {
  if (bytes.length < 12) return undefined;
  return SIGNATURES.find(([, matches]) => matches(bytes))?.[0];
}

function ascii(bytes: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...bytes.subarray(from, to));
}
