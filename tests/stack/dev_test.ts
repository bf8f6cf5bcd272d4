/**
 * `deno task dev` as a new user runs it: no Hugging Face token, and here a JWT secret of their own.
 */
import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { imageInfo } from "../support/images.ts";
import { describeHuggingFace, type Dev, STAND_IN_HF_TOKEN } from "./dev.ts";
import { LOCAL_JWT_SECRET, signKey, verifyApiJwt } from "./keys.ts";
import { freePort } from "./testing.ts";

const CUSTOM_SECRET = "my-own-project-jwt-secret-of-at-least-32-chars";
const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "deno task dev with no token and a custom JWT secret: the printed keys work on REST, Storage, Auth and text-to-image",
  opts,
  async () => {
    const apiPort = freePort();
    const tmp = await Deno.makeTempDir({ prefix: "dev-tmp-" });
    await Deno.chmod(tmp, 0o755); // PostgreSQL's unprivileged user must traverse it
    const child = new Deno.Command(Deno.execPath(), {
      args: ["task", "dev"],
      cwd: new URL("../../", import.meta.url).pathname,
      // Nothing from this process's environment (no token, as on a fresh clone) but how this machine reaches the
      // npm registry: `deno task dev` bundles the web app, which may fetch esbuild on first use.
      clearEnv: true,
      env: {
        ...networkEnv(),
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: Deno.env.get("HOME") ?? tmp,
        TMPDIR: tmp,
        API_PORT: String(apiPort),
        DB_PORT: String(freePort()),
        SUPABASE_JWT_SECRET: CUSTOM_SECRET,
      },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const errors: string[] = [];
    const stderr = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (chunk) => void errors.push(chunk) }),
    );
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let banner = "";
    try {
      while (!banner.includes("Press Ctrl-C")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`deno task dev exited early:\n${banner}\n${errors.join("")}`);
        banner += value;
      }
      assert.match(
        banner,
        /Hugging Face: local stand-in \(no token set\); images and captions are placeholders/,
      );
      assert.match(banner, new RegExp(`JWT secret: ${CUSTOM_SECRET}`));
      const printed = (name: string) => new RegExp(`${name}: (\\S+)`).exec(banner)![1];
      const [api, anonKey, serviceKey, dbUrl] = [
        `http://127.0.0.1:${apiPort}`,
        printed("anon key"),
        printed("service_role key"),
        printed("DB URL"),
      ];
      assert.equal((await verifyApiJwt(anonKey, CUSTOM_SECRET)).role, "anon");
      const defaultAnonKey = await signKey("anon", LOCAL_JWT_SECRET);

      // REST: a table anon may read.
      const sql = postgres(dbUrl, { onnotice: () => {} });
      try {
        await sql`create table public.dev_probe (n int); insert into public.dev_probe values (1)`.simple();
        await sql`create policy "anon reads probe files" on storage.objects for select to anon
                    using (bucket_id = 'dev-probe')`;
        await sql`insert into storage.buckets (id, name) values ('dev-probe', 'dev-probe')`;
      } finally {
        await sql.end();
      }
      const rest = (key: string) =>
        fetch(`${api}/rest/v1/dev_probe?select=n`, { headers: { apikey: key, Authorization: `Bearer ${key}` } });
      const ok = await rest(anonKey);
      assert.equal(ok.status, 200);
      assert.deepEqual(await ok.json(), [{ n: 1 }]);
      const refused = await rest(defaultAnonKey);
      assert.equal(refused.status, 401, "REST must not accept a key signed with the CLI's default secret");
      await refused.body?.cancel();

      // Storage: the printed service key uploads, the printed anon key downloads (policy above).
      const upload = await fetch(`${api}/storage/v1/object/dev-probe/hello.txt`, {
        method: "POST",
        headers: { Authorization: `Bearer ${serviceKey}`, "Content-Type": "text/plain" },
        body: "hello",
      });
      assert.equal(upload.status, 200, await upload.clone().text());
      await upload.body?.cancel();
      const download = (key: string) =>
        fetch(`${api}/storage/v1/object/authenticated/dev-probe/hello.txt`, {
          headers: { apikey: key, Authorization: `Bearer ${key}` },
        });
      const got = await download(anonKey);
      assert.equal(got.status, 200);
      assert.equal(await got.text(), "hello");
      const denied = await download(defaultAnonKey);
      assert.match(await denied.text(), /"statusCode":"403"/, "Storage must refuse the CLI's default key");

      // text-to-image: the printed anon key is valid but public, so it is not a caller.
      const anonCall = await fetch(`${api}/functions/v1/text-to-image`, {
        method: "POST",
        headers: { Authorization: `Bearer ${anonKey}`, "Content-Type": "application/json" },
        body: '{"prompt":"x"}',
      });
      assert.equal(anonCall.status, 401);
      assert.equal((await anonCall.json()).error, "Sign in to use this function");
      // The old README's way: an anonymous sign-in with the printed anon key, then its curl saves a real PNG.
      const signUp = await fetch(`${api}/auth/v1/signup`, {
        method: "POST",
        headers: { apikey: anonKey, "Content-Type": "application/json" },
        body: "{}",
      });
      assert.equal(signUp.status, 200);
      const { access_token: userJwt } = await signUp.json();
      const out = `${tmp}/result.jpg`;
      const curl = await new Deno.Command("curl", {
        args: [
          ...["--silent", "--show-error", "--fail-with-body", "--output", out, "--location", "--request", "POST"],
          `${api}/functions/v1/text-to-image`,
          ...["--header", "Content-Type: application/json", "--header", `Authorization: Bearer ${userJwt}`],
          ...["--data", '{"prompt":"Llama wearing sunglasses"}'],
        ],
      }).output();
      assert.equal(curl.code, 0, new TextDecoder().decode(curl.stderr));
      assert.equal(imageInfo(await Deno.readFile(out))?.type, "png");
      const wrongKey = await fetch(`${api}/functions/v1/text-to-image`, {
        method: "POST",
        headers: { Authorization: `Bearer ${defaultAnonKey}`, "Content-Type": "application/json" },
        body: '{"prompt":"x"}',
      });
      assert.equal(wrongKey.status, 401);
      await wrongKey.body?.cancel();
    } finally {
      // It may have exited already (it failed to start): its status and stderr then say why.
      try {
        child.kill("SIGTERM");
      } catch { /* already exited */ }
      const status = await child.status;
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
      await stderr.catch(() => {});
      assert.equal(status.code, 0, `deno task dev did not stop cleanly:\n${errors.join("")}`);
      await Deno.remove(tmp, { recursive: true });
    }
  },
);

Deno.test("with a token, the banner names where Hugging Face calls go and which models answer", () => {
  const dev = (env: Record<string, string>) => ({ hfStandIn: null, functionsEnv: env }) as unknown as Dev;
  assert.equal(
    describeHuggingFace(dev({ HF_TOKEN: "hf_x" })),
    "Hugging Face router (provider auto); text-to-image black-forest-labs/FLUX.1-schnell, " +
      "captions Qwen/Qwen2.5-VL-7B-Instruct",
  );
  assert.equal(
    describeHuggingFace(dev({
      HUGGING_FACE_ACCESS_TOKEN: "hf_x",
      HF_PROVIDER: "fal-ai",
      TEXT_TO_IMAGE_MODEL: "org/t2i",
      CAPTION_MODE: "image-to-text",
    })),
    "Hugging Face router (provider fal-ai); text-to-image org/t2i, captions Salesforce/blip-image-captioning-large",
  );
  assert.match(
    describeHuggingFace(dev({ HF_BASE_URL: "http://127.0.0.1:9/x", HUGGING_FACE_ACCESS_TOKEN: STAND_IN_HF_TOKEN })),
    /^http:\/\/127\.0\.0\.1:9\/x \(no token set: a placeholder is sent\);/,
  );
});

/** The variables that let a child process reach the npm registry here: CA certificates and proxies. */
function networkEnv(): Record<string, string> {
  const names = [
    ...["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR", "DENO_CERT", "DENO_TLS_CA_STORE"],
    ...["DENO_DIR", "NPM_CONFIG_REGISTRY"],
  ];
  const proxies = ["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"].flatMap((n) => [n, n.toLowerCase()]);
  return Object.fromEntries(
    [...names, ...proxies].flatMap((name) => Deno.env.get(name) === undefined ? [] : [[name, Deno.env.get(name)!]]),
  );
}
