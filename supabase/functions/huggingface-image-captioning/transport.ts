/**
 * How the image reaches the model. With `url`, the provider fetches it through a short-lived signed
 * Storage URL and its bytes never pass through the function; with `inline`, the function sends them.
 * @module
 */
import { ConfigError, type Env, envString } from "../_shared/runtime/mod.ts";

/** `url`: a signed Storage URL the provider fetches (chat mode); `inline`: the function sends the bytes. */
export type ImageTransport = "url" | "inline";

/**
 * `CAPTION_IMAGE_TRANSPORT`, by default `url` for a hosted project (the provider can fetch its
 * signed URLs) and `inline` for one it cannot reach (http, localhost, a private or Docker host).
 * @throws {ConfigError} for another value, or a SUPABASE_URL that is not a URL.
 */
export function imageTransportFromEnv(env: Env, supabaseUrl: string): ImageTransport {
  const value = envString(env, "CAPTION_IMAGE_TRANSPORT");
  if (value === "url" || value === "inline") return value;
  if (value !== undefined) throw new ConfigError("CAPTION_IMAGE_TRANSPORT must be 'url' or 'inline'");
  const url = URL.parse(supabaseUrl);
  if (!url) throw new ConfigError("SUPABASE_URL must be an absolute URL");
  return url.protocol === "https:" && !isPrivateHost(url.hostname) ? "url" : "inline";
}

function isPrivateHost(host: string): boolean {
  return !host.includes(".") || host === "localhost" || host.endsWith(".localhost") || host.startsWith("[") ||
    /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|169\.254\.|0\.)/.test(host) || host.endsWith(".internal");
}
