/**
 * One rate toward Hugging Face for the whole project: two instances of the captioning function,
 * each a process of its own, share one database and one Hugging Face stand-in that answers the
 * first call 429 with `Retry-After: 2`.
 */
import assert from "node:assert/strict";
import { FAST_RETRIES } from "../support/local.ts";
import { describe, makeRandomPng } from "./helpers.ts";
import { hfError } from "../support/fake_hf.ts";
import { waitForJobs, withFleet } from "../support/function_fleet.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const MAX_IN_FLIGHT = 2;
const IMAGES = 10;
// Time for a call already past its check when the pause is recorded to arrive (slow on a loaded machine).
const GRACE_MS = 250;

/** A proxy in front of the stand-in that records every call and answers the first one 429. */
function recordingUpstream() {
  const calls: { at: number; status: number }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let target = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const call = { at: Date.now(), status: 0 };
    calls.push(call);
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    try {
      if (calls.length === 1) {
        call.status = 429;
        return hfError(429, "Rate limit reached", undefined, { "Retry-After": "2" });
      }
      const url = new URL(req.url);
      const res = await fetch(target + url.pathname, {
        method: req.method,
        headers: req.headers,
        body: await req.arrayBuffer(),
      });
      const body = await res.arrayBuffer();
      call.status = res.status;
      return new Response(body, { status: res.status, headers: res.headers });
    } finally {
      inFlight--;
    }
  });
  return {
    calls,
    maxInFlight: () => maxInFlight,
    url: (fakeUrl: string) => {
      target = fakeUrl;
      return `http://127.0.0.1:${server.addr.port}`;
    },
    stop: () => server.shutdown(),
  };
}

Deno.test(
  "two instances in separate processes keep one pause and one max_in_flight toward Hugging Face",
  opts,
  async () => {
    const upstream = recordingUpstream();
    try {
      await withFleet({
        instances: 2,
        settings: { ...FAST_RETRIES, max_in_flight: String(MAX_IN_FLIGHT) },
        fake: { latencyMs: 300 },
        upstream: (fake) => upstream.url(fake.url),
        env: { HF_RETRY_BASE_MS: "10", HF_RETRY_MAX_DELAY_MS: "50" },
      }, async ({ stack, admin, fake, delivered }) => {
        const pngs = await Promise.all(Array.from({ length: IMAGES }, () => makeRandomPng()));
        const expected = new Map<string, string>();
        await Promise.all(pngs.map(async (png, i) => {
          const { data, error } = await admin.storage.from("images").upload(`rate/${i}.png`, png, {
            contentType: "image/png",
          });
          assert.equal(error, null);
          expected.set(data!.id, (await describe(png))!);
        }));
        const { done, failed } = await waitForJobs(stack, [...expected.keys()], 60_000);
        assert.deepEqual({ done, failed }, { done: IMAGES, failed: 0 });

        // Both processes took webhooks.
        assert.ok(delivered.every((n) => n > 0), `webhooks per instance: ${delivered}`);

        // Every image ends with its own caption, from one answered call each.
        const captions = await stack.sql`select id, caption from public.image_caption`;
        assert.equal(captions.length, IMAGES);
        for (const { id, caption } of captions) assert.equal(caption, expected.get(id));
        assert.ok([...fake.captionsAnswered.values()].every((n) => n === 1), "a caption was paid for twice");

        // The pause was recorded in the database, for the 2 s asked.
        const [pause] = await stack.sql`select paused_at, paused_until, upstream_status from captioning.hf_pause`;
        assert.equal(pause.upstream_status, 429);
        const pausedAt = pause.paused_at.getTime();
        const pausedUntil = pause.paused_until.getTime();
        assert.ok(pausedUntil - pausedAt >= 1900 && pausedUntil - pausedAt < 3000, `${pausedUntil - pausedAt} ms`);

        // No instance called Hugging Face during it. A call that passed its instance's check just
        // before the pause was committed can still be on its way (a check-then-call across
        // processes cannot be atomic): allow it GRACE_MS, a small part of the 2 s pause.
        const during = upstream.calls.filter((c) => c.at > pausedAt + GRACE_MS && c.at < pausedUntil);
        assert.deepEqual(
          during.map((c) => `${c.at - pausedAt} ms into the pause`),
          [],
          "calls arrived during the project-wide pause",
        );
        assert.ok(upstream.calls.filter((c) => c.at >= pausedUntil).length >= 1, "work resumed after the pause");

        // Never more calls at once than max_in_flight, across both processes.
        assert.ok(upstream.maxInFlight() <= MAX_IN_FLIGHT, `${upstream.maxInFlight()} calls in flight at once`);
        assert.equal(upstream.calls[0].status, 429);
      });
    } finally {
      await upstream.stop();
    }
  },
);
