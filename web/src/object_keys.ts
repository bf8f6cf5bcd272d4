/**
 * Storage object keys for uploads: `<user id>/<time>-<file name>`, with the file name reduced to
 * the characters the Storage API accepts.
 *
 * @module
 */

/** Builds the key of an upload in the user's own folder; throws nothing. */
export function uploadKey(userId: string, fileName: string, now = Date.now()): string {
  const safe = fileName.normalize("NFKD").replace(/[^A-Za-z0-9_.!\-*'() ]/g, "").replace(/\s+/g, "-")
    .replace(/^[.-]+/, "").slice(-80) || "image";
  return `${userId}/${now}-${safe}`;
}

/** The file name part of a key, without the time prefix, for display. */
export function displayName(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1).replace(/^\d+-/, "");
}
