/**
 * The project's deployability rules, checked on the tree: pinned dependencies, the Supabase
 * function layout, and config.toml.
 */
import assert from "node:assert/strict";
import { parse as parseToml } from "npm:smol-toml@1.9.1";

const ROOT = new URL("../", import.meta.url);
const FUNCTIONS = new URL("supabase/functions/", ROOT);

async function* sourceFiles(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* sourceFiles(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

Deno.test("every npm package is pinned to one exact version across the repo", async () => {
  const versions = new Map<string, Set<string>>();
  for (const dir of ["supabase/functions/", "tests/", "web/"]) {
    for await (const file of sourceFiles(new URL(dir, ROOT))) {
      for (
        const [, name, version] of (await Deno.readTextFile(file)).matchAll(/"npm:((?:@[\w.-]+\/)?[\w.-]+)@?([^"/]*)/g)
      ) {
        assert.match(version, /^\d+\.\d+\.\d+$/, `${file.pathname}: npm:${name} is not pinned to an exact version`);
        versions.set(name, (versions.get(name) ?? new Set()).add(version));
      }
    }
  }
  assert.ok(versions.has("@huggingface/inference"));
  for (const [name, seen] of versions) {
    assert.equal(seen.size, 1, `npm:${name} is pinned to ${[...seen].join(" and ")}`);
  }
});

Deno.test("functions import only _shared/ and packages, never one another", async () => {
  for await (const entry of Deno.readDir(FUNCTIONS)) {
    if (!entry.isDirectory) continue;
    for await (const file of sourceFiles(new URL(`${entry.name}/`, FUNCTIONS))) {
      for (const [, spec] of (await Deno.readTextFile(file)).matchAll(/from "([^"]+)"/g)) {
        if (/^(npm|node):/.test(spec)) continue;
        assert.ok(spec.startsWith("./") || spec.startsWith("../_shared/"), `${file.pathname} imports ${spec}`);
        if (entry.name === "_shared") assert.ok(spec.startsWith("./"), `${file.pathname} imports ${spec}`);
      }
    }
    if (entry.name !== "_shared") {
      const index = await Deno.readTextFile(new URL(`${entry.name}/index.ts`, FUNCTIONS));
      assert.match(index, /Deno\.serve\(createHandler\(Deno\.env\.toObject\(\)\)\)/, `${entry.name}/index.ts`);
    }
  }
});

Deno.test("config.toml verifies JWTs for text-to-image and leaves the webhook target to its secret", async () => {
  const config = parseToml(await Deno.readTextFile(new URL("supabase/config.toml", ROOT))) as {
    functions: Record<string, { verify_jwt: boolean }>;
  };
  assert.equal(config.functions["text-to-image"].verify_jwt, true);
  assert.equal(config.functions["huggingface-inference"].verify_jwt, true);
  assert.equal(config.functions["huggingface-image-captioning"].verify_jwt, false);
});

Deno.test("the functions' own environment variables do not start with SUPABASE_", async () => {
  const platform = new Set([
    "SUPABASE_URL",
    "SUPABASE_ANON_KEY",
    "SUPABASE_JWKS",
    "SUPABASE_JWT_SECRET",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_SECRET_KEYS",
  ]);
  for await (const file of sourceFiles(FUNCTIONS)) {
    for (const [, name] of (await Deno.readTextFile(file)).matchAll(/"(SUPABASE_[A-Z_]+)"/g)) {
      assert.ok(platform.has(name), `${file.pathname} reads ${name}, which a user cannot set as a secret`);
    }
  }
});
