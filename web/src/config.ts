/**
 * The project the page talks to, from `config.json` next to `index.html`:
 * `{"supabaseUrl": "https://<ref>.supabase.co", "supabaseKey": "<anon or publishable key>"}`.
 * @module
 */

/** The page's configuration. */
export interface WebConfig {
  supabaseUrl: string;
  supabaseKey: string;
}

/** Fetches and checks `config.json`; throws an Error a person can act on. */
export async function loadConfig(base: string | URL): Promise<WebConfig> {
  let res: Response;
  try {
    res = await fetch(new URL("config.json", base), { cache: "no-store" });
  } catch {
    throw new Error("Could not load config.json next to index.html.");
  }
  if (!res.ok) throw new Error(`config.json is missing (HTTP ${res.status}): see docs/web-app.md.`);
  const config = parseConfig(await res.json().catch(() => null));
  if (!config) throw new Error('config.json must be {"supabaseUrl": "...", "supabaseKey": "..."}.');
  return config;
}

/** Checks the configuration's shape; null when it is not usable. */
export function parseConfig(value: unknown): WebConfig | null {
  if (!value || typeof value !== "object") return null;
  const { supabaseUrl, supabaseKey } = value as Record<string, unknown>;
  if (typeof supabaseUrl !== "string" || typeof supabaseKey !== "string" || !supabaseKey) return null;
  try {
    const url = new URL(supabaseUrl);
    if (!/^https?:$/.test(url.protocol)) return null;
  } catch {
    return null;
  }
  return { supabaseUrl: supabaseUrl.replace(/\/+$/, ""), supabaseKey };
}
