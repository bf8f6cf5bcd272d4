import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { SignJWT } from "npm:jose@6.2.17";
import { signUserToken } from "./keys.ts";
import { startStack } from "./stack.ts";
import { clientsOf, exists, freePort, serveApi, supabaseDirWith } from "./testing.ts";

const ALICE = "a11ce000-0000-4000-8000-000000000001";
const BOB = "b0b00000-0000-4000-8000-000000000002";

const MIGRATION = `
insert into storage.buckets (id, name) values ('images', 'images');
insert into storage.buckets (id, name, public) values ('pub', 'pub', true);
insert into storage.buckets (id, name, file_size_limit, allowed_mime_types) values ('strict', 'strict', 10, '{image/*}');

-- Signed-in users manage objects under a folder named after their id.
create policy "own folder select" on storage.objects for select to authenticated
  using (bucket_id in ('images', 'strict') and (storage.foldername(name))[1] = auth.uid()::text);
create policy "own folder insert" on storage.objects for insert to authenticated
  with check (bucket_id in ('images', 'strict') and (storage.foldername(name))[1] = auth.uid()::text);
create policy "own folder update" on storage.objects for update to authenticated
  using ((storage.foldername(name))[1] = auth.uid()::text) with check ((storage.foldername(name))[1] = auth.uid()::text);
create policy "own folder delete" on storage.objects for delete to authenticated
  using ((storage.foldername(name))[1] = auth.uid()::text);

-- A sequence is not transactional, so it also counts trigger calls that were rolled back.
create sequence public.trigger_calls;
create table public.object_events (op text, object_id uuid, version text, name text);
create function public.record_object_event() returns trigger language plpgsql as $$
begin
  perform nextval('public.trigger_calls');
  insert into public.object_events
  values (tg_op, coalesce(new.id, old.id), coalesce(new.version, old.version), coalesce(new.name, old.name));
  return null;
end $$;
create trigger record_object_event after insert or update or delete on storage.objects
  for each row execute function public.record_object_event();

create table public.plain_refs (object_id uuid references storage.objects (id));
create table public.cascade_refs (object_id uuid references storage.objects (id) on delete cascade);
`;

const bytes = (text: string) => new TextEncoder().encode(text);
const asText = async (b: Blob | null) => b ? await b.text() : null;

Deno.test("storage stand-in behaves like the Storage API for supabase-js", async (t) => {
  const dir = await supabaseDirWith({ "20240101000000_storage.sql": MIGRATION });
  const apiPort = freePort();
  const stack = await startStack({ apiPort, dbPort: freePort(), supabaseDir: dir });
  const server = serveApi(stack, apiPort);
  const sql = stack.sql;
  const row = async (bucket: string, name: string) =>
    (await sql`select * from storage.objects where bucket_id = ${bucket} and name = ${name}`)[0];
  const events = async () =>
    (await sql`select op, object_id, version, name from public.object_events`).map((r) => ({
      ...r,
    }));
  const calls = async () => {
    const [s] = await sql`select last_value, is_called from public.trigger_calls`;
    return s.is_called ? Number(s.last_value) : 0;
  };
  const apiError = (e: unknown) => e as { code?: string } | null;
  try {
    const { admin, anon, alice, bob } = await clientsOf(stack, { alice: ALICE, bob: BOB });

    let firstId = "";
    await t.step(
      "service-key upload: probe fires triggers and rolls back, then one committed INSERT",
      async () => {
        const { data, error } = await admin.storage.from("images").upload(
          "shared/one.png",
          bytes("v1"),
          {
            contentType: "image/png",
          },
        );
        assert.equal(error, null);
        assert.equal(data!.fullPath, "images/shared/one.png");
        const r = await row("images", "shared/one.png");
        firstId = r.id;
        assert.equal(data!.id, r.id);
        assert.equal(r.owner, null);
        assert.equal(r.owner_id, null);
        assert.match(r.version, /^[0-9a-f-]{36}$/);
        assert.deepEqual(Object.keys(r.metadata).sort(), [
          "cacheControl",
          "contentLength",
          "eTag",
          "httpStatusCode",
          "lastModified",
          "mimetype",
          "size",
        ]);
        assert.equal(r.metadata.mimetype, "image/png");
        assert.equal(r.metadata.size, 2);
        assert.equal(r.metadata.cacheControl, "max-age=3600");
        assert.equal(r.metadata.eTag, `"${createHash("md5").update("v1").digest("hex")}"`);
        assert.equal(r.metadata.httpStatusCode, 200);
        assert.equal(await calls(), 2, "the trigger must run in the probe and in the commit");
        assert.deepEqual(await events(), [{
          op: "INSERT",
          object_id: r.id,
          version: r.version,
          name: "shared/one.png",
        }]);
        assert.equal(
          await asText((await admin.storage.from("images").download("shared/one.png")).data),
          "v1",
        );
      },
    );

    await t.step("upsert keeps the id, fires UPDATE, and replaces bytes and version", async () => {
      const before = await row("images", "shared/one.png");
      const { data, error } = await admin.storage.from("images").upload(
        "shared/one.png",
        bytes("version 2"),
        {
          contentType: "image/png",
          upsert: true,
        },
      );
      assert.equal(error, null);
      assert.equal(data!.id, firstId);
      const after = await row("images", "shared/one.png");
      assert.notEqual(after.version, before.version);
      assert.equal(after.metadata.size, 9);
      assert.deepEqual((await events()).at(-1), {
        op: "UPDATE",
        object_id: firstId,
        version: after.version,
        name: "shared/one.png",
      });
      assert.equal(
        await asText((await admin.storage.from("images").download("shared/one.png")).data),
        "version 2",
      );
      assert.equal(
        await exists(`${stack.storageDir}/${before.version}`),
        false,
        "old version's bytes left behind",
      );
    });

    await t.step("a duplicate without upsert is a 409 in a 400 response", async () => {
      const { data, error } = await admin.storage.from("images").upload(
        "shared/one.png",
        bytes("nope"),
      );
      assert.equal(data, null);
      assert.equal(error?.status, 400);
      assert.equal(error?.statusCode, "409");
      assert.equal(apiError(error)?.code, "KeyAlreadyExists");
      const raw = await fetch(`${stack.apiUrl}/storage/v1/object/images/shared/one.png`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack.serviceRoleKey}`, "content-type": "image/png" },
        body: bytes("nope"),
      });
      assert.deepEqual(await raw.json(), {
        statusCode: "409",
        code: "KeyAlreadyExists",
        error: "Duplicate",
        message: "The resource already exists",
      });
      assert.equal((await row("images", "shared/one.png")).metadata.size, 9);
    });

    await t.step(
      "a user's Blob upload (multipart) records their id as owner; RLS guards other folders",
      async () => {
        const { error } = await alice.storage.from("images").upload(
          `${ALICE}/pic.png`,
          new Blob([bytes("alice")], { type: "image/png" }),
        );
        assert.equal(error, null);
        const r = await row("images", `${ALICE}/pic.png`);
        assert.equal(r.owner, ALICE);
        assert.equal(r.owner_id, ALICE);
        assert.equal(r.metadata.mimetype, "image/png");
        assert.equal(r.metadata.cacheControl, "max-age=3600");
        const denied = await alice.storage.from("images").upload(`${BOB}/evil.png`, bytes("x"));
        assert.equal(denied.error?.statusCode, "403");
        assert.equal(denied.error?.message, "new row violates row-level security policy");
        assert.equal(await row("images", `${BOB}/evil.png`), undefined);
        assert.equal(
          (await bob.storage.from("images").upload(`${BOB}/b.txt`, "bob's text")).error,
          null,
        );
        assert.equal(
          (await row("images", `${BOB}/b.txt`)).metadata.mimetype,
          "text/plain;charset=UTF-8",
        );
      },
    );

    await t.step("a service-key upsert over a user's file keeps its owner", async () => {
      const { error } = await admin.storage.from("images").upload(`${ALICE}/pic.png`, bytes("alice"), {
        contentType: "image/png",
        upsert: true,
      });
      assert.equal(error, null);
      const r = await row("images", `${ALICE}/pic.png`);
      assert.equal(r.owner, ALICE);
      assert.equal(r.owner_id, ALICE);
    });

    await t.step("no Content-Type is application/octet-stream; no metadata is user_metadata {}", async () => {
      const res = await fetch(`${stack.apiUrl}/storage/v1/object/images/shared/raw.bin`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
        body: new Blob([bytes("raw")]),
      });
      assert.equal(res.status, 200, await res.clone().text());
      const r = await row("images", "shared/raw.bin");
      assert.equal(r.metadata.mimetype, "application/octet-stream");
      assert.deepEqual(r.user_metadata, {});
      assert.equal((await admin.storage.from("images").remove(["shared/raw.bin"])).error, null);
    });

    await t.step("authenticated download needs SELECT on the row", async () => {
      const own = await alice.storage.from("images").download(`${ALICE}/pic.png`);
      assert.equal(await asText(own.data), "alice");
      assert.equal(own.data?.type, "image/png");
      for (const other of [bob, anon]) {
        const { error } = await other.storage.from("images").download(`${ALICE}/pic.png`);
        assert.equal(error?.statusCode, "404");
      }
    });

    await t.step("RLS through rest: Alice cannot read Bob's object rows", async () => {
      const mine = await alice.schema("storage").from("objects").select("name").order("name");
      assert.deepEqual(mine.data, [{ name: `${ALICE}/pic.png` }]);
      const bobs = await alice.schema("storage").from("objects").select("name").eq(
        "name",
        `${BOB}/b.txt`,
      );
      assert.deepEqual(bobs.data, []);
      const all = await admin.schema("storage").from("objects").select("name").order("name");
      assert.equal(all.data?.length, 3);
    });

    await t.step(
      "signed URLs serve the bytes; a wrong path or an expired token does not",
      async () => {
        const { data, error } = await alice.storage.from("images").createSignedUrl(
          `${ALICE}/pic.png`,
          60,
        );
        assert.equal(error, null);
        const ok = await fetch(data!.signedUrl);
        assert.equal(ok.status, 200);
        assert.equal(ok.headers.get("content-type"), "image/png");
        assert.equal(await ok.text(), "alice");

        const hidden = await bob.storage.from("images").createSignedUrl(`${ALICE}/pic.png`, 60);
        assert.equal(hidden.error?.statusCode, "404");

        const moved = await fetch(data!.signedUrl.replace(`${ALICE}/pic.png`, `${BOB}/b.txt`));
        assert.equal(moved.status, 400);
        assert.equal((await moved.json()).code, "InvalidSignature");

        const stale = await new SignJWT({ url: `images/${ALICE}/pic.png` }).setProtectedHeader({
          alg: "HS256",
        })
          .setIssuedAt(1).setExpirationTime(2).sign(new TextEncoder().encode(stack.jwtSecret));
        const expired = await fetch(
          `${stack.apiUrl}/storage/v1/object/sign/images/${ALICE}/pic.png?token=${stale}`,
        );
        assert.equal(expired.status, 400);
        assert.deepEqual(await expired.json(), {
          statusCode: "400",
          code: "InvalidJWT",
          error: "InvalidJWT",
          message: "jwt expired",
        });
      },
    );

    await t.step("keys: spaces are fine, non-ASCII is rejected as InvalidKey", async () => {
      const spaced = "shared/with space/a (1).txt";
      assert.equal((await admin.storage.from("images").upload(spaced, "spaced")).error, null);
      assert.equal(
        await asText((await admin.storage.from("images").download(spaced)).data),
        "spaced",
      );
      const signed = await admin.storage.from("images").createSignedUrl(spaced, 60);
      assert.equal(await (await fetch(signed.data!.signedUrl)).text(), "spaced");
      const bad = await admin.storage.from("images").upload("shared/ünïcode.png", "x");
      assert.equal(bad.error?.statusCode, "400");
      assert.equal(apiError(bad.error)?.code, "InvalidKey");
    });

    await t.step("bucket size and mime type limits, unknown bucket", async () => {
      const big = await alice.storage.from("strict").upload(
        `${ALICE}/big.png`,
        bytes("01234567890"),
        { contentType: "image/png" },
      );
      assert.equal(big.error?.statusCode, "413");
      const text = await alice.storage.from("strict").upload(`${ALICE}/t.txt`, "hi", {
        contentType: "text/plain",
      });
      assert.equal(text.error?.statusCode, "415");
      const fine = await alice.storage.from("strict").upload(`${ALICE}/ok.png`, bytes("png"), {
        contentType: "image/png",
      });
      assert.equal(fine.error, null);
      const move = await admin.storage.from("images").move("a.txt", "b.txt");
      assert.equal(move.error?.status, 404, "move() is not part of the stand-in and must say so");
      const none = await admin.storage.from("no-such-bucket").upload("a.txt", "x");
      assert.equal(none.error?.statusCode, "404");
      assert.equal(none.error?.message, "Bucket not found");
    });

    await t.step("no Authorization header is InvalidRequest; a forged JWT is a 403 in a 400 response", async () => {
      const missing = await fetch(`${stack.apiUrl}/storage/v1/object/images/x.txt`, {
        method: "POST",
        body: "x",
      });
      assert.equal(missing.status, 400);
      assert.deepEqual(await missing.json(), {
        statusCode: "400",
        code: "InvalidRequest",
        error: "Bad Request",
        message: "headers must have required property 'authorization'",
      });
      const forged = await signUserToken(
        { sub: ALICE },
        "another-secret-that-is-at-least-32-chars",
      );
      const res = await fetch(
        `${stack.apiUrl}/storage/v1/object/authenticated/images/${ALICE}/pic.png`,
        {
          headers: { authorization: `Bearer ${forged}` },
        },
      );
      assert.equal(res.status, 400);
      assert.equal((await res.json()).message, "invalid signature");
    });

    await t.step("public buckets serve without a token; private ones do not", async () => {
      await admin.storage.from("pub").upload("hello.txt", "public!");
      const url = admin.storage.from("pub").getPublicUrl("hello.txt").data.publicUrl;
      const res = await fetch(url);
      assert.equal(await res.text(), "public!");
      const priv = await fetch(
        admin.storage.from("images").getPublicUrl("shared/one.png").data.publicUrl,
      );
      assert.equal(priv.status, 400);
      assert.equal((await priv.json()).statusCode, "404");
    });

    await t.step("remove: RLS applies, rows and files go, DELETE fires", async () => {
      const target = await row("images", `${ALICE}/pic.png`);
      const byBob = await bob.storage.from("images").remove([`${ALICE}/pic.png`]);
      assert.deepEqual(byBob.data, []);
      assert.ok(await row("images", `${ALICE}/pic.png`), "Bob deleted Alice's object");
      const { data, error } = await alice.storage.from("images").remove([
        `${ALICE}/pic.png`,
        `${ALICE}/missing.png`,
      ]);
      assert.equal(error, null);
      assert.deepEqual(data!.map((o) => o.name), [`${ALICE}/pic.png`]);
      assert.equal(await row("images", `${ALICE}/pic.png`), undefined);
      assert.equal(await exists(`${stack.storageDir}/${target.version}`), false);
      assert.deepEqual((await events()).at(-1), {
        op: "DELETE",
        object_id: target.id,
        version: target.version,
        name: `${ALICE}/pic.png`,
      });
    });

    await t.step(
      "a plain foreign key blocks the remove (409 ResourceReferenced); a cascading one follows it",
      async () => {
        const kept = await row("images", "shared/one.png");
        await sql`insert into public.plain_refs values (${kept.id})`;
        const blocked = await admin.storage.from("images").remove(["shared/one.png"]);
        assert.equal(blocked.error?.status, 400);
        assert.equal(blocked.error?.statusCode, "409");
        assert.equal(apiError(blocked.error)?.code, "ResourceReferenced");
        assert.ok(await row("images", "shared/one.png"));
        assert.ok(await exists(`${stack.storageDir}/${kept.version}`), "the file must stay");

        const pub = await row("pub", "hello.txt");
        await sql`insert into public.cascade_refs values (${pub.id})`;
        assert.equal((await admin.storage.from("pub").remove(["hello.txt"])).error, null);
        assert.equal((await sql`select count(*)::int n from public.cascade_refs`)[0].n, 0);
      },
    );
  } finally {
    await server.shutdown();
    await stack.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
