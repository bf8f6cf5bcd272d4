/**
 * Who is calling: configuration, and the kinds of caller a request can be.
 */
import assert from "node:assert/strict";
import {
  callerConfigFromEnv,
  createCallerIdentifier,
  SIGN_IN_MESSAGE,
} from "../../../supabase/functions/_shared/identity/caller.ts";
import { ConfigError } from "../../../supabase/functions/_shared/runtime/env.ts";
import { HttpError } from "../../../supabase/functions/_shared/http/mod.ts";
import { signKey } from "../../stack/keys.ts";
import { LOCAL_JWT_SECRET, makeSigningKey, signHs256 } from "../../support/tokens.ts";

const env = {
  SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
  SUPABASE_SECRET_KEYS: '{"default":"sb_secret_one","ci":"sb_secret_two"}',
};

function request(headers: Record<string, string>) {
  return new Request("http://functions.test/x", { method: "POST", headers });
}

Deno.test("callerConfigFromEnv reads INFERENCE_ALLOW_ANON and the secret keys, and refuses bad values", () => {
  const config = callerConfigFromEnv(env);
  assert.equal(config.allowAnon, false);
  assert.deepEqual(config.secretKeys, ["sb_secret_one", "sb_secret_two"]);
  assert.equal(callerConfigFromEnv({ INFERENCE_ALLOW_ANON: "TRUE" }).allowAnon, true);
  assert.throws(() => callerConfigFromEnv({ INFERENCE_ALLOW_ANON: "yes please" }), ConfigError);
  assert.throws(() => callerConfigFromEnv({ SUPABASE_SECRET_KEYS: "{" }), ConfigError);
});

Deno.test("users, anonymous sign-ins, the service role and secret keys are told apart", async () => {
  const identify = createCallerIdentifier(callerConfigFromEnv(env));
  const id = crypto.randomUUID();
  const user = await signHs256({ sub: id, role: "authenticated" });
  assert.deepEqual(await identify(request({ authorization: `Bearer ${user}` })), {
    kind: "user",
    key: `user:${id}`,
    userId: id,
    tier: "authenticated",
    label: `user:${id}`,
  });
  const guest = await signHs256({ sub: id, role: "authenticated", is_anonymous: true });
  assert.equal((await identify(request({ authorization: `Bearer ${guest}` }))).tier, "anonymous");
  // A subject that is not a uuid is metered on its key, with no user id for the uuid column.
  const odd = await identify(
    request({ authorization: `Bearer ${await signHs256({ sub: "x", role: "authenticated" })}` }),
  );
  assert.deepEqual([odd.key, odd.userId], ["user:x", null]);
  const serviceHeaders: Record<string, string>[] = [
    { authorization: `Bearer ${await signKey("service_role")}` },
    { apikey: "sb_secret_two" },
  ];
  for (const headers of serviceHeaders) {
    assert.equal((await identify(request(headers))).kind, "service");
  }
  // The user's token wins over the publishable key that supabase-js also sends.
  const both = await identify(request({ apikey: "sb_publishable_x", authorization: `Bearer ${user}` }));
  assert.equal(both.kind, "user");
  // Tokens from JWT signing keys work too.
  const key = await makeSigningKey();
  const asymmetric = createCallerIdentifier(callerConfigFromEnv({ SUPABASE_JWKS: JSON.stringify(key.jwks) }));
  const signed = await key.sign({ sub: id, role: "authenticated" });
  assert.equal((await asymmetric(request({ authorization: `Bearer ${signed}` }))).userId, id);
});

Deno.test("anyone else gets 401 'Sign in', with the reason for a bad token", async () => {
  const identify = createCallerIdentifier(callerConfigFromEnv(env));
  const refuse = async (headers: Record<string, string>, reason?: RegExp) => {
    await assert.rejects(identify(request(headers)), (e: unknown) => {
      assert.ok(e instanceof HttpError);
      assert.equal(e.status, 401);
      assert.equal(e.message, SIGN_IN_MESSAGE);
      if (reason) assert.match(String(e.details.reason), reason);
      return true;
    });
  };
  await refuse({});
  await refuse({ authorization: `Bearer ${await signKey("anon")}` });
  await refuse({ apikey: "sb_publishable_abc" });
  await refuse({ authorization: "Bearer sb_secret_nope" }, /Invalid API key/);
  await refuse({
    authorization: `Bearer ${await signHs256({ sub: "u", role: "authenticated" }, LOCAL_JWT_SECRET, -60)}`,
  }, /expired/);
  await refuse({ authorization: `Bearer ${await signHs256({ role: "authenticated" })}` }, /signed-in user/);
  await refuse({ authorization: `Bearer ${await signHs256({ sub: "u", role: "postgres" })}` }, /signed-in user/);
});

Deno.test("with INFERENCE_ALLOW_ANON, public callers are keyed on x-forwarded-for's first entry", async () => {
  const identify = createCallerIdentifier(callerConfigFromEnv({ ...env, INFERENCE_ALLOW_ANON: "true" }));
  const caller = await identify(request({ apikey: "sb_publishable_abc", "x-forwarded-for": " 192.0.2.1 , 10.0.0.2" }));
  assert.deepEqual(caller, { kind: "ip", key: "ip:192.0.2.1", userId: null, tier: "anonymous", label: "ip:192.0.2.1" });
  assert.equal((await identify(request({}))).key, "ip:unknown");
});
