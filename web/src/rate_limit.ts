/**
 * Reads the remaining quota from the IETF `RateLimit` / `RateLimit-Policy` response headers
 * (draft-ietf-httpapi-ratelimit-headers: structured-field lists such as
 * `RateLimit: "minute";r=7;t=42` and `RateLimit-Policy: "minute";q=10;w=60`), and the earlier
 * drafts' `limit=10, remaining=7, reset=42` form.
 *
 * @module
 */

/** One quota the server reported. */
export interface Quota {
  /** The policy's name (`minute`, `day`, …), or `default`. */
  policy: string;
  /** Units or requests left in the window. */
  remaining: number;
  /** Seconds until the window resets, when given. */
  resetSeconds?: number;
  /** The window's size in units or requests, from `RateLimit-Policy`, when given. */
  limit?: number;
  /** The window's length in seconds, from `RateLimit-Policy`, when given. */
  windowSeconds?: number;
}

/** Parses the quota headers of a response; an empty list when there are none (or they are unreadable). */
export function parseRateLimit(headers: Headers): Quota[] {
  const current = headers.get("ratelimit");
  if (!current) return [];
  const policies = new Map(parseList(headers.get("ratelimit-policy") ?? "").map((item) => [item.name, item.params]));
  const quotas: Quota[] = [];
  for (const { name, params } of parseList(current)) {
    // The earlier drafts' form: one item of plain parameters, no name.
    const remaining = params.r ?? params.remaining;
    if (remaining === undefined) continue;
    const policy = policies.get(name) ?? {};
    quotas.push({
      policy: name,
      remaining,
      resetSeconds: params.t ?? params.reset,
      limit: policy.q ?? params.limit,
      windowSeconds: policy.w ?? params.w,
    });
  }
  return quotas;
}

/** Describes the quotas in one line for a person, e.g. "7 of 10 requests left this minute (resets in 42 s)". */
export function describeQuotas(quotas: Quota[]): string {
  return quotas.map((q) => {
    const of = q.limit !== undefined ? ` of ${q.limit}` : "";
    const reset = q.resetSeconds !== undefined ? `, resets in ${formatSeconds(q.resetSeconds)}` : "";
    return `${q.remaining}${of} ${policyWords(q)}${reset}`;
  }).join(" · ");
}

/** "requests left this minute" for the quota issue's policy names (or their windows), else "left (name)". */
function policyWords(q: Quota): string {
  if (q.policy === "requests_per_minute" || (q.policy === "default" && q.windowSeconds === 60)) {
    return "requests left this minute";
  }
  if (q.policy === "units_per_day" || (q.policy === "default" && q.windowSeconds === 86400)) return "units left today";
  return q.policy === "default" ? "left" : `left (${q.policy})`;
}

/** Formats a wait for a person: "42 s", "3 min", "2 h 5 min". */
export function formatSeconds(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  // A whole minute reads as seconds: a per-minute window's wait is never "1 min" one moment and "59 s" the next.
  if (s <= 60) return `${s} s`;
  if (s < 3600) return `${Math.ceil(s / 60)} min`;
  const h = Math.floor(s / 3600);
  const m = Math.ceil((s % 3600) / 60);
  return m ? `${h} h ${m} min` : `${h} h`;
}

/** Parses a structured-field list of `name;key=int` items, or a bare `key=int, key=int` dictionary (name `default`). */
function parseList(text: string): { name: string; params: Record<string, number> }[] {
  const items: { name: string; params: Record<string, number> }[] = [];
  const legacy: Record<string, number> = {};
  for (const raw of text.split(",")) {
    const parts = raw.trim().split(";").map((p) => p.trim()).filter(Boolean);
    if (!parts.length) continue;
    const head = parts[0];
    if (/^[a-z][a-z0-9_-]*=/i.test(head) && !head.startsWith('"')) {
      // `limit=10` style: collect into one default item.
      for (const part of parts) Object.assign(legacy, param(part));
      continue;
    }
    const name = head.replace(/^"(.*)"$/, "$1");
    const params: Record<string, number> = {};
    for (const part of parts.slice(1)) Object.assign(params, param(part));
    items.push({ name, params });
  }
  if (Object.keys(legacy).length) items.push({ name: "default", params: legacy });
  return items;
}

function param(part: string): Record<string, number> {
  const [key, value] = part.split("=").map((s) => s.trim());
  const n = Number(value);
  return key && Number.isFinite(n) ? { [key.toLowerCase()]: n } : {};
}
