/**
 * Recognising image bytes before they are sent anywhere.
 * @module
 */

const SIGNATURES: [string, (b: Uint8Array) => boolean][] = [
  ["image/png", (b) => [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((x, i) => b[i] === x)],
  ["image/jpeg", (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff],
  ["image/gif", (b) => ascii(b, 0, 6) === "GIF87a" || ascii(b, 0, 6) === "GIF89a"],
  ["image/webp", (b) => ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 12) === "WEBP"],
  ["image/bmp", isBmp],
];

/** Returns the MIME type of a PNG, JPEG, GIF, WebP or BMP from its leading bytes, else `undefined`. */
export function sniffImageType(bytes: Uint8Array): string | undefined {
  if (bytes.length < 12) return undefined;
  return SIGNATURES.find(([, matches]) => matches(bytes))?.[0];
}

// "BM", then zero reserved bytes and a known DIB header size: "BM" alone starts plenty of text.
function isBmp(b: Uint8Array): boolean {
  if (ascii(b, 0, 2) !== "BM" || b.length < 18) return false;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return view.getUint32(6, true) === 0 && [12, 40, 52, 56, 64, 108, 124].includes(view.getUint32(14, true));
}

function ascii(bytes: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...bytes.subarray(from, to));
}
