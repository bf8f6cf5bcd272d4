/**
 * Reading a file a caller names in Storage (`{"storage": {"bucket", "path"}}`) with the caller's own
 * JWT, so Storage's row-level security decides what they may send; never an arbitrary URL.
 * @module
 */
import { bearerToken } from "../identity/mod.ts";
import { HttpError, readLimited } from "../http/mod.ts";

/** A file in Storage. */
export interface StorageRef {
  bucket: string;
  path: string;
}

/** Where Storage is and how to call it. */
export interface StorageAccess {
  /** The project URL (`SUPABASE_URL`). */
  supabaseUrl: string;
  /** The project's public anon key, sent as `apikey` when the caller sent none. */
  anonKey?: string;
  fetch?: typeof fetch;
}

// Storage's own key rule (storage-api `limits.ts`), applied here too so a bad key never leaves.
const KEY = /^[A-Za-z0-9_/!.*'() &$=@;:+,?-]+$/;
const BUCKET = /^[A-Za-z0-9_.-]{1,100}$/;

/**
 * Checks a reference's shape.
 * @throws {HttpError} 400 naming the field: a bucket or path Storage would refuse, or one that climbs (`..`).
 */
export function checkStorageRef(ref: StorageRef, field = "inputs.storage"): StorageRef {
  if (!BUCKET.test(ref.bucket)) {
    throw new HttpError(400, `${field}.bucket is not a valid bucket id`, { field: `${field}.bucket` });
  }
  const segments = ref.path.split("/");
  if (!KEY.test(ref.path) || ref.path.length > 1024 || segments.some((s) => s === "" || s === "." || s === "..")) {
    throw new HttpError(400, `${field}.path is not a valid object path`, { field: `${field}.path` });
  }
  return ref;
}

/**
 * Downloads `ref` as the caller of `req`, refusing more than `maxBytes`.
 * @throws {HttpError} Storage's own status for what it refuses (404 for a file the caller may not
 * read or that does not exist, 403, 400); 413 when the file is larger; 502 when Storage fails.
 */
export async function readStorageObject(
  access: StorageAccess,
  req: Request,
  ref: StorageRef,
  maxBytes: number,
): Promise<{ bytes: Uint8Array; contentType: string | null }> {
  const { bucket, path } = checkStorageRef(ref);
  const url = `${access.supabaseUrl.replace(/\/+$/, "")}/storage/v1/object/authenticated/${
    encodeURIComponent(bucket)
  }/${path.split("/").map(encodeURIComponent).join("/")}`;
  const apikey = req.headers.get("apikey") ?? access.anonKey;
  let res: Response;
  try {
    res = await (access.fetch ?? fetch)(url, {
      headers: { authorization: `Bearer ${bearerToken(req)}`, ...(apikey ? { apikey } : {}) },
    });
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw new HttpError(502, "Could not reach Storage");
  }
  if (!res.ok) throw await storageError(res);
  try {
    return { bytes: await readLimited(res, maxBytes), contentType: res.headers.get("content-type") };
  } catch (error) {
    await res.body?.cancel().catch(() => {});
    if (error instanceof HttpError && error.status === 413) {
      throw new HttpError(413, `The file in Storage is larger than ${maxBytes} bytes`);
    }
    throw error;
  }
}

/** Storage answers its errors as HTTP 400 with the real status as a string in the body; keep that status. */
async function storageError(res: Response): Promise<HttpError> {
  const body = await res.json().catch(() => undefined) as Record<string, unknown> | undefined;
  const status = Number(body?.statusCode ?? res.status);
  const message = typeof body?.message === "string" ? body.message : typeof body?.error === "string" ? body.error : "";
  if ([400, 401, 403, 404].includes(status)) {
    return new HttpError(status === 401 ? 403 : status, `Storage: ${message || "request refused"}`);
  }
  return new HttpError(502, `Storage answered ${status}`);
}
