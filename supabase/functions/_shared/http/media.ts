/**
 * Media bodies: what kind a content type declares, what the bytes really are (magic numbers), and
 * the check that the two agree before anything is sent upstream.
 * @module
 */
import { HttpError } from "./errors.ts";

/** The kinds of media a task takes. */
export type MediaKind = "image" | "audio";

// Magic numbers: [offset, bytes] pairs that must all match, and the type they mean.
const SIGNATURES: { type: string; parts: [number, number[]][] }[] = [
  { type: "image/png", parts: [[0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]]] },
  { type: "image/jpeg", parts: [[0, [0xff, 0xd8, 0xff]]] },
  { type: "image/gif", parts: [[0, [0x47, 0x49, 0x46, 0x38]]] },
  { type: "image/webp", parts: [[0, [0x52, 0x49, 0x46, 0x46]], [8, [0x57, 0x45, 0x42, 0x50]]] },
  { type: "image/bmp", parts: [[0, [0x42, 0x4d]]] },
  { type: "image/tiff", parts: [[0, [0x49, 0x49, 0x2a, 0x00]]] },
  { type: "image/tiff", parts: [[0, [0x4d, 0x4d, 0x00, 0x2a]]] },
  { type: "audio/wav", parts: [[0, [0x52, 0x49, 0x46, 0x46]], [8, [0x57, 0x41, 0x56, 0x45]]] },
  { type: "audio/flac", parts: [[0, [0x66, 0x4c, 0x61, 0x43]]] },
  { type: "audio/ogg", parts: [[0, [0x4f, 0x67, 0x67, 0x53]]] },
  { type: "audio/mpeg", parts: [[0, [0x49, 0x44, 0x33]]] }, // ID3 tag
  { type: "audio/mpeg", parts: [[0, [0xff, 0xfb]]] },
  { type: "audio/mpeg", parts: [[0, [0xff, 0xf3]]] },
  { type: "audio/mpeg", parts: [[0, [0xff, 0xf2]]] },
  { type: "audio/webm", parts: [[0, [0x1a, 0x45, 0xdf, 0xa3]]] },
  { type: "audio/mp4", parts: [[4, [0x66, 0x74, 0x79, 0x70]]] }, // ISO base media "ftyp" (m4a)
];

// Other names browsers and tools give the same formats.
const ALIASES: Record<string, string> = {
  "image/jpg": "image/jpeg",
  "image/pjpeg": "image/jpeg",
  "image/x-ms-bmp": "image/bmp",
  "audio/x-wav": "audio/wav",
  "audio/wave": "audio/wav",
  "audio/vnd.wave": "audio/wav",
  "audio/x-flac": "audio/flac",
  "audio/mp3": "audio/mpeg",
  "audio/x-m4a": "audio/mp4",
  "audio/m4a": "audio/mp4",
  "audio/aac": "audio/mp4",
  "video/webm": "audio/webm",
  "video/ogg": "audio/ogg",
  "application/ogg": "audio/ogg",
};

/** The media types each kind accepts, for descriptions. */
export const ACCEPTED_TYPES: Record<MediaKind, string[]> = {
  image: [...new Set(SIGNATURES.filter((s) => s.type.startsWith("image/")).map((s) => s.type))],
  audio: [...new Set(SIGNATURES.filter((s) => s.type.startsWith("audio/")).map((s) => s.type))],
};

/** Returns the media type the bytes' magic number says, or `undefined` when none is known. */
export function sniffMediaType(bytes: Uint8Array): string | undefined {
  return SIGNATURES.find((s) => s.parts.every(([at, magic]) => magic.every((b, i) => bytes[at + i] === b)))?.type;
}

/** Normalises a `Content-Type` value to its canonical media type (lower case, no parameters, aliases resolved). */
export function canonicalType(contentType: string | null | undefined): string {
  const type = (contentType ?? "").split(";")[0].trim().toLowerCase();
  return ALIASES[type] ?? type;
}

/**
 * Checks that `bytes` are media of `kind` and agree with the declared content type (when there is a
 * specific one); returns the sniffed type.
 * @throws {HttpError} 400 for an empty body; 415 when the declared type is not of `kind`, or the bytes
 * are not a known `kind` format, or they are another format than declared.
 */
export function checkMedia(kind: MediaKind, declared: string | null | undefined, bytes: Uint8Array): string {
  if (bytes.length === 0) throw new HttpError(400, `The ${kind} is empty`);
  const type = canonicalType(declared);
  const generic = type === "" || type === "application/octet-stream" || type === `${kind}/*`;
  if (!generic && !type.startsWith(`${kind}/`) && !(kind === "audio" && ALIASES[type]?.startsWith("audio/"))) {
    throw new HttpError(415, `Content-Type must be ${kind}/*, not ${type}`);
  }
  const sniffed = sniffMediaType(bytes);
  if (!sniffed?.startsWith(`${kind}/`)) {
    throw new HttpError(
      415,
      `The body is not a supported ${kind} (${ACCEPTED_TYPES[kind].join(", ")})${sniffed ? `: it is ${sniffed}` : ""}`,
    );
  }
  if (!generic && sniffed !== type) {
    throw new HttpError(415, `The body is ${sniffed}, but its Content-Type says ${type}`);
  }
  return sniffed;
}
