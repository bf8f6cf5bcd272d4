/**
 * text-to-image over real HTTP through `deno task dev`, started as a user starts it, with the
 * docs' own curl command.
 */
import assert from "node:assert/strict";
import { hfError, startFakeHf } from "../support/fake_hf.ts";
import { imageInfo } from "../support/images.ts";
import { signUserToken } from "../stack/keys.ts";
import { freePort } from "../stack/testing.ts";

const HF_TOKEN = "hf_http_secret_token_value";
const opts = { sanitizeOps: false, sanitizeResources: false };

/**
 * Runs `deno task dev` in its own process until `fn` is done, then stops it with SIGTERM and
 * checks it left no server and no temporary directory behind.
 */
async function withDevServer(hfUrl: string, fn: (api: string, anonKey: string) => Promise<void>) {
  const apiPort = freePort();
  const dbPort = freePort();
  // Its own TMPDIR, to see what it leaves behind; PostgreSQL's unprivileged user must traverse it.
  const tmp = await Deno.makeTempDir({ prefix: "dev-tmp-" });
  await Deno.chmod(tmp, 0o755);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "dev"],
    cwd: new URL("../../", import.meta.url).pathname,
    env: {
      API_PORT: String(apiPort),
      DB_PORT: String(dbPort),
      WEB_PORT: "0",
      TMPDIR: tmp,
      HUGGING_FACE_ACCESS_TOKEN: HF_TOKEN,
      HF_BASE_URL: hfUrl,
      HF_RETRY_BASE_MS: "5",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void output.push(chunk) }),
  );
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let banner = "";
  try {
    while (!banner.includes("Press Ctrl-C")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`deno task dev exited early:\n${banner}\n${output.join("")}`);
      banner += value;
    }
    assert.match(banner, new RegExp(`API URL: http://127.0.0.1:${apiPort}`));
    // The web app, on its own port, configured for this stack.
    const webUrl = /Web app: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(banner)![1];
    assert.equal(
      (await (await fetch(new URL("config.json", webUrl))).json()).supabaseUrl,
      `http://127.0.0.1:${apiPort}`,
    );
    const anonKey = /anon key: (\S+)/.exec(banner)![1];
    await fn(`http://127.0.0.1:${apiPort}`, anonKey);
  } finally {
    child.kill("SIGTERM");
    const status = await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    await stderr.catch(() => {});
    assert.equal(status.code, 0, `deno task dev did not stop cleanly:\n${output.join("")}`);
    const logs = banner + output.join("");
    assert.ok(!logs.includes(HF_TOKEN), "the Hugging Face token appeared in the server's output");
    for (const port of [apiPort, dbPort]) {
      await assert.rejects(
        Deno.connect({ hostname: "127.0.0.1", port }),
        `port ${port} still open`,
      );
    }
    assert.deepEqual(await Array.fromAsync(Deno.readDir(tmp)), [], "temporary files left behind");
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test(
  "two dev servers at once: the docs' curl command (plus a user's JWT) saves a valid image from each",
  opts,
  async () => {
    const fake = startFakeHf({ token: HF_TOKEN });
    const dir = await Deno.makeTempDir();
    const curlImage = (name: string) => async (api: string) => {
      const out = `${dir}/${name}.jpg`;
      const userJwt = await signUserToken({ sub: crypto.randomUUID() });
      const curl = await new Deno.Command("curl", {
        args: [
          "--silent",
          "--show-error",
          "--fail-with-body",
          "--output",
          out,
          "--location",
          "--request",
          "POST",
          `${api}/functions/v1/text-to-image`,
          "--header",
          "Content-Type: application/json",
          "--header",
          `Authorization: Bearer ${userJwt}`,
          "--data",
          '{"prompt":"Llama wearing sunglasses"}',
        ],
      }).output();
      assert.equal(curl.code, 0, new TextDecoder().decode(curl.stderr));
      assert.deepEqual(imageInfo(await Deno.readFile(out)), { type: "png", width: 64, height: 64 });
    };
    try {
      await Promise.all([
        withDevServer(fake.url, curlImage("a")),
        withDevServer(fake.url, curlImage("b")),
      ]);
    } finally {
      await fake.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "over HTTP: gateway JWT check, preflight, method, upstream errors, no token leaks",
  opts,
  async () => {
    const fake = startFakeHf({ token: HF_TOKEN });
    try {
      await withDevServer(fake.url, async (api, anonKey) => {
        const url = `${api}/functions/v1/text-to-image`;
        const user = await signUserToken({ sub: crypto.randomUUID() });
        const post = (init: RequestInit = {}) =>
          fetch(url, {
            method: "POST",
            body: '{"prompt":"a cat"}',
            ...init,
            headers: {
              "content-type": "application/json",
              authorization: `Bearer ${user}`,
              ...init.headers,
            },
          });

        const noJwt = await fetch(url, { method: "POST", body: '{"prompt":"a cat"}' });
        assert.equal(noJwt.status, 401);
        assert.equal(typeof (await noJwt.json()).error, "string");

        // The anon key passes the gateway's verify_jwt (it is a valid JWT) but is not a signed-in user.
        const anon = await post({ headers: { authorization: `Bearer ${anonKey}`, apikey: anonKey } });
        assert.equal(anon.status, 401);
        assert.deepEqual(await anon.json(), { error: "Sign in to use this function" });

        const expired = await post({
          headers: {
            authorization: `Bearer ${await signUserToken({ sub: "x", expiresIn: -120 })}`,
          },
        });
        assert.equal(expired.status, 401);
        await expired.body?.cancel();

        const preflight = await fetch(url, {
          method: "OPTIONS",
          headers: { origin: "http://localhost:3000", "access-control-request-method": "POST" },
        });
        assert.equal(preflight.status, 204);
        assert.match(preflight.headers.get("access-control-allow-headers")!, /authorization/);
        await preflight.body?.cancel();

        const get = await fetch(url, { headers: { authorization: `Bearer ${user}` } });
        assert.equal(get.status, 405);
        await get.body?.cancel();

        const badJson = await post({ body: "{" });
        assert.equal(badJson.status, 400);
        await badJson.body?.cancel();

        const oversized = await post({ body: JSON.stringify({ prompt: "x".repeat(5000) }) });
        assert.equal(oversized.status, 400);
        assert.equal((await oversized.json()).field, "prompt");

        for (const [status, expected] of [[429, 429], [503, 503], [401, 502], [404, 502]]) {
          for (let i = 0; i < 5; i++) {
            fake.enqueue(hfError(status, `upstream ${status}`, undefined, { "Retry-After": "0" }));
          }
          const res = await post();
          assert.equal(res.status, expected, `upstream ${status}`);
          assert.equal(res.headers.get("access-control-allow-origin"), "*");
          const text = await res.text();
          assert.ok(!text.includes(HF_TOKEN));
          assert.equal(typeof JSON.parse(text).error, "string");
          fake.clear();
        }
      });
    } finally {
      await fake.stop();
    }
  },
);
