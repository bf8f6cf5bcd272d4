/**
 * Reading request bodies within a size limit, as JSON or as bytes.
 * @module
 */
import { concatBytes } from "./bytes.ts";
import { HttpError } from "./errors.ts";

/**
 * Reads a request body as JSON, refusing more than `maxBytes`.
 * @throws {HttpError} 415 for a non-JSON content type, 413 for an oversized body, 400 for invalid JSON.
 */
export async function readJson(req: Request, maxBytes: number): Promise<unknown> {
  const type = req.headers.get("content-type");
  if (type && !/^application\/([\w.+-]*\+)?json\b/i.test(type)) {
    throw new HttpError(415, "Content-Type must be application/json");
  }
  const text = new TextDecoder().decode(await readLimited(req, maxBytes));
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, "Request body is not valid JSON");
  }
}

/**
 * Reads a request (or response) body into memory, refusing more than `maxBytes` without reading it all.
 * @throws {HttpError} 413 when the body is larger.
 */
export async function readLimited(req: Request | Response, maxBytes: number): Promise<Uint8Array> {
  const tooLarge = () => new HttpError(413, `Request body is larger than ${maxBytes} bytes`);
  const declared = req.headers.get("content-length");
  if (declared !== null) {
    // The runtime holds a body to its declared length, so the fast whole-body read is safe here.
    if (Number(declared) > maxBytes) throw tooLarge();
    // A response's Content-Length can be the compressed size; only a request's is the body's.
    if (req instanceof Request && Number.isSafeInteger(Number(declared))) {
      return await readDeclared(req, Number(declared));
    }
    return new Uint8Array(await req.arrayBuffer());
  }
  if (!req.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body) {
    size += chunk.byteLength;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return concatBytes(...chunks);
}

/**
 * Reads a body of a known length straight into one buffer of that length (a byte stream's BYOB
 * reads), so a large body is never held twice, as chunks and as their concatenation.
 */
async function readDeclared(req: Request, length: number): Promise<Uint8Array> {
  if (!req.body) return new Uint8Array();
  let reader: ReadableStreamBYOBReader;
  try {
    reader = req.body.getReader({ mode: "byob" });
  } catch {
    return new Uint8Array(await req.arrayBuffer()); // not a byte stream
  }
  let buffer = new ArrayBuffer(length);
  let offset = 0;
  while (offset < length) {
    const { value, done } = await reader.read(new Uint8Array(buffer, offset, length - offset));
    if (done || !value) break;
    buffer = value.buffer as ArrayBuffer;
    offset += value.byteLength;
  }
  reader.releaseLock();
  return new Uint8Array(buffer, 0, offset);
}
