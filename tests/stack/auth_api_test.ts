import assert from "node:assert/strict";
import { createClient, type SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";
import { decodeJwt, decodeProtectedHeader } from "npm:jose@6.2.17";
import { makePng } from "../support/images.ts";
import { type Local, withLocal } from "../support/local.ts";

/** A browser-like supabase-js client with its own in-memory session. */
function browserClient(local: Local): SupabaseClient {
  return createClient(local.dev.apiUrl, local.dev.stack.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
}

Deno.test("Auth stand-in: supabase-js signs in anonymously, signs up, signs in, refreshes and signs out", async () => {
  await withLocal(async (local) => {
    const supabase = browserClient(local);

    // Anonymous sign-in: an ES256 token with a kid the JWKS publishes, and the platform's claims.
    const anon = await supabase.auth.signInAnonymously();
    assert.equal(anon.error, null);
    const token = anon.data.session!.access_token;
    const header = decodeProtectedHeader(token);
    assert.equal(header.alg, "ES256");
    const jwks = await (await fetch(`${local.dev.apiUrl}/auth/v1/.well-known/jwks.json`)).json();
    assert.deepEqual(jwks.keys.map((k: { kid: string }) => k.kid), [header.kid]);
    assert.equal(jwks.keys[0].d, undefined, "the JWKS holds no private key");
    const claims = decodeJwt(token);
    assert.equal(claims.sub, anon.data.user!.id);
    assert.equal(claims.role, "authenticated");
    assert.equal(claims.aud, "authenticated");
    assert.equal(claims.is_anonymous, true);
    assert.equal(typeof claims.session_id, "string");
    assert.equal(claims.aal, "aal1");
    assert.ok((claims.exp as number) > Date.now() / 1000);
    const [row] = await local.dev.stack.sql`select is_anonymous from auth.users where id = ${claims.sub!}`;
    assert.equal(row.is_anonymous, true);
    assert.equal((await supabase.auth.getUser()).data.user?.id, claims.sub);

    // Refresh rotates the refresh token; the old one is then refused.
    const oldRefresh = anon.data.session!.refresh_token;
    const refreshed = await supabase.auth.refreshSession();
    assert.equal(refreshed.error, null);
    assert.notEqual(refreshed.data.session!.refresh_token, oldRefresh);
    assert.equal(decodeJwt(refreshed.data.session!.access_token).session_id, claims.session_id);
    const reused = await browserClient(local).auth.refreshSession({ refresh_token: oldRefresh });
    assert.equal(reused.error?.code, "refresh_token_already_used");

    // Sign out ends the session on the server: its token no longer reads the user.
    const lastToken = refreshed.data.session!.access_token;
    assert.equal((await supabase.auth.signOut()).error, null);
    const after = await fetch(`${local.dev.apiUrl}/auth/v1/user`, {
      headers: { apikey: local.dev.stack.anonKey, authorization: `Bearer ${lastToken}` },
    });
    assert.equal(after.status, 403);
    assert.equal((await after.json()).error_code, "session_not_found");

    // Email and password.
    const email = `ada-${crypto.randomUUID().slice(0, 8)}@example.com`;
    const weak = await supabase.auth.signUp({ email, password: "123" });
    assert.equal(weak.error?.code, "weak_password");
    const signUp = await supabase.auth.signUp({ email, password: "correct horse" });
    assert.equal(signUp.error, null);
    assert.equal(signUp.data.user?.email, email);
    assert.equal(decodeJwt(signUp.data.session!.access_token).is_anonymous, false);
    assert.equal((await supabase.auth.signUp({ email, password: "correct horse" })).error?.code, "user_already_exists");
    await supabase.auth.signOut();
    const wrong = await supabase.auth.signInWithPassword({ email, password: "wrong horse" });
    assert.equal(wrong.error?.code, "invalid_credentials");
    assert.equal(wrong.error?.status, 400);
    const signIn = await supabase.auth.signInWithPassword({ email, password: "correct horse" });
    assert.equal(signIn.error, null);
    assert.equal(signIn.data.user?.id, signUp.data.user?.id);
    const noKey = await fetch(`${local.dev.apiUrl}/auth/v1/signup`, { method: "POST", body: "{}" });
    assert.equal(noKey.status, 401, "the gateway wants an API key, as on the platform");
    await noKey.body?.cancel();
    const apiKeyAsUser = await fetch(`${local.dev.apiUrl}/auth/v1/user`, {
      headers: { apikey: local.dev.stack.anonKey, authorization: `Bearer ${local.dev.stack.anonKey}` },
    });
    assert.equal(apiKeyAsUser.status, 403, "the anon key is not a signed-in user");
    assert.equal((await apiKeyAsUser.json()).error_code, "bad_jwt");
    const [stored] = await local.dev.stack.sql`select encrypted_password from auth.users where email = ${email}`;
    assert.match(stored.encrypted_password, /^\$2[ab]\$10\$/, "bcrypt, never the password itself");
  });
});

Deno.test("Auth stand-in: its ES256 tokens work against REST, Storage and the functions; auth.uid() sees the user", async () => {
  await withLocal(async (local) => {
    const supabase = browserClient(local);
    const { data } = await supabase.auth.signInAnonymously();
    const userId = data.user!.id;

    const upload = await supabase.storage.from("images").upload(`${userId}/a.png`, await makePng(8, 8), {
      contentType: "image/png",
    });
    assert.equal(upload.error, null);
    const [object] = await local.dev.stack.sql`select owner_id from storage.objects where name = ${`${userId}/a.png`}`;
    assert.equal(object.owner_id, userId);
    const other = await supabase.storage.from("images").upload(`someone-else/a.png`, await makePng(8, 8));
    assert.equal(other.error?.message, "new row violates row-level security policy");

    const caption = await local.waitFor("the caption", async () => {
      const { data } = await supabase.from("image_caption").select("caption");
      return data?.[0]?.caption as string | undefined;
    }, 10_000);
    assert.match(caption, /8x8 png image/);

    // The functions verify the ES256 token against the stack's JWKS URL.
    const res = await fetch(`${local.dev.apiUrl}/functions/v1/text-to-image`, {
      method: "POST",
      headers: { authorization: `Bearer ${data.session!.access_token}`, "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a llama" }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "image/png");
    await res.body?.cancel();

    // A token signed by another key is refused everywhere.
    const forged = await createClient(local.dev.apiUrl, local.dev.stack.anonKey, {
      auth: { persistSession: false },
      global: { headers: { Authorization: `Bearer ${await forgedToken(userId)}` } },
    }).from("image_caption").select("caption");
    assert.equal(forged.status, 401);
  });
});

Deno.test("Auth stand-in: the gateway answers browser preflights for auth, REST and Storage", async () => {
  await withLocal(async (local) => {
    for (const path of ["/auth/v1/signup", "/rest/v1/image_caption", "/storage/v1/object/images/x.png"]) {
      const res = await fetch(`${local.dev.apiUrl}${path}`, {
        method: "OPTIONS",
        headers: {
          origin: "http://127.0.0.1:3000",
          "access-control-request-method": "POST",
          "access-control-request-headers": "apikey, authorization, content-type, x-client-info",
        },
      });
      await res.body?.cancel();
      assert.equal(res.status, 204, path);
      assert.equal(res.headers.get("access-control-allow-origin"), "http://127.0.0.1:3000");
      assert.match(res.headers.get("access-control-allow-headers")!, /authorization/);
    }
    const res = await fetch(`${local.dev.apiUrl}/auth/v1/signup`, {
      method: "POST",
      headers: { origin: "http://127.0.0.1:3000", apikey: local.dev.stack.anonKey, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), "http://127.0.0.1:3000");
    await res.body?.cancel();
  });
});

async function forgedToken(sub: string): Promise<string> {
  const { makeSigningKey } = await import("../support/tokens.ts");
  const other = await makeSigningKey("ES256");
  return other.sign({ sub, role: "authenticated", aud: "authenticated", session_id: crypto.randomUUID() });
}
