/**
 * A small multipart/form-data parser. Deno's `Request.formData()` drops parts whose field name is
 * empty, and supabase-js uploads a Blob as exactly such a part (`name=""`).
 *
 * @module
 */
import { Buffer } from "node:buffer";

/** One part of a multipart body. */
export interface Part {
  name: string;
  filename: string | null;
  contentType: string | null;
  data: Uint8Array;
}

/** Splits a multipart body into its parts; throws when the boundary is missing or the body is truncated. */
export function parseMultipart(body: Uint8Array, contentType: string): Part[] {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!boundary) throw new Error("multipart: no boundary in content-type");
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2].trim()}`);
  const parts: Part[] = [];
  let pos = buf.indexOf(delimiter);
  if (pos < 0) throw new Error("multipart: boundary not found in body");
  while (true) {
    pos += delimiter.length;
    if (buf.subarray(pos, pos + 2).toString() === "--") return parts;
    pos += 2; // CRLF after the delimiter
    const headerEnd = buf.indexOf("\r\n\r\n", pos);
    if (headerEnd < 0) throw new Error("multipart: truncated part headers");
    const headers = buf.subarray(pos, headerEnd).toString("utf8");
    const dataStart = headerEnd + 4;
    const next = buf.indexOf(Buffer.concat([Buffer.from("\r\n"), delimiter]), dataStart);
    if (next < 0) throw new Error("multipart: missing closing boundary");
    parts.push({
      name: headerParam(headers, "name") ?? "",
      filename: headerParam(headers, "filename"),
      contentType: /^content-type:\s*(.+)$/im.exec(headers)?.[1].trim() ?? null,
      data: new Uint8Array(buf.subarray(dataStart, next)),
    });
    pos = next + 2;
  }
}

/** Reads a quoted Content-Disposition parameter; returns null when absent. */
function headerParam(headers: string, key: string): string | null {
  const m = new RegExp(`\\b${key}="((?:[^"\\\\]|\\\\.)*)"`, "i").exec(headers);
  return m ? m[1].replace(/\\(.)/g, "$1") : null;
}
