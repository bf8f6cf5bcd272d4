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

/**
 * `_shared/`'s folders, lowest first: a folder imports only folders before it, and only through
 * their `mod.ts`; a function imports `_shared/` only through a `mod.ts` (or the generated types).
 */
const LAYERS = [["http"], ["runtime"], ["identity", "hf"], ["cache", "metering"], ["tasks"]];
const layerOf = new Map(LAYERS.flatMap((names, i) => names.map((name) => [name, i] as const)));

/** The relative and npm/node specifiers a source file imports (static, re-exported or dynamic). */
async function importsOf(file: URL): Promise<string[]> {
  const text = await Deno.readTextFile(file);
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)].map((m) => m[1]);
}

/**
 * Checks one import of a file in `_shared/<folder>/` or a function's folder; returns the problem, or
 * undefined.
 */
function importProblem(fromDir: string, spec: string): string | undefined {
  if (/^(npm|node):/.test(spec)) return undefined;
  if (!spec.startsWith(".")) return `imports ${spec}: only relative, npm: and node: imports deploy`;
  const target = new URL(spec, new URL(fromDir, FUNCTIONS)).href.slice(FUNCTIONS.href.length);
  const [top, sub, ...rest] = target.split("/");
  const [fromTop, fromSub] = fromDir.split("/");
  if (top !== "_shared") {
    return top === fromTop ? undefined : `imports ${spec}: functions never import one another`;
  }
  if (sub === "database.types.ts") return undefined;
  if (!layerOf.has(sub)) return `imports ${spec}: _shared/ has no folder ${sub}`;
  if (fromTop === "_shared" && fromSub === sub) return undefined; // within one folder
  if (rest.join("/") !== "mod.ts") return `imports ${spec}: another folder is reached only through its mod.ts`;
  if (fromTop === "_shared" && layerOf.get(sub)! >= layerOf.get(fromSub)!) {
    return `imports ${spec}: _shared/${fromSub} may import only folders below it (${
      LAYERS.slice(0, layerOf.get(fromSub)).flat().join(", ") || "none"
    })`;
  }
  return undefined;
}

Deno.test("_shared/ is folders by concern, each with a mod.ts, and only generated types beside them", async () => {
  const found: string[] = [];
  for await (const entry of Deno.readDir(new URL("_shared/", FUNCTIONS))) {
    if (entry.isDirectory) {
      assert.ok(layerOf.has(entry.name), `_shared/${entry.name} is not in the layer list of layout_test.ts`);
      await Deno.stat(new URL(`_shared/${entry.name}/mod.ts`, FUNCTIONS));
      found.push(entry.name);
    } else assert.equal(entry.name, "database.types.ts", `_shared/${entry.name} belongs in a folder`);
  }
  assert.deepEqual(found.sort(), [...layerOf.keys()].sort());
});

Deno.test("imports run downward through mod.ts, and functions never import one another", async () => {
  const problems: string[] = [];
  for await (const file of sourceFiles(FUNCTIONS)) {
    const fromDir = file.href.slice(FUNCTIONS.href.length).replace(/[^/]+$/, "");
    for (const spec of await importsOf(file)) {
      const problem = importProblem(fromDir, spec);
      if (problem) problems.push(`${fromDir}${file.pathname.split("/").at(-1)} ${problem}`);
    }
  }
  assert.deepEqual(problems, []);
  for await (const entry of Deno.readDir(FUNCTIONS)) {
    if (!entry.isDirectory || entry.name === "_shared") continue;
    const index = await Deno.readTextFile(new URL(`${entry.name}/index.ts`, FUNCTIONS));
    assert.match(index, /Deno\.serve\(createHandler\(Deno\.env\.toObject\(\)\)\)/, `${entry.name}/index.ts`);
  }
});

Deno.test("the import rule refuses what it should", () => {
  assert.equal(importProblem("_shared/tasks/", "../hf/mod.ts"), undefined);
  assert.equal(importProblem("_shared/tasks/", "./table.ts"), undefined);
  assert.equal(importProblem("text-to-image/", "../_shared/tasks/mod.ts"), undefined);
  assert.equal(importProblem("text-to-image/", "../_shared/database.types.ts"), undefined);
  assert.match(importProblem("_shared/tasks/", "../hf/client.ts")!, /only through its mod\.ts/);
  assert.match(importProblem("text-to-image/", "../_shared/hf/client.ts")!, /only through its mod\.ts/);
  assert.match(importProblem("_shared/http/", "../runtime/mod.ts")!, /only folders below it \(none\)/);
  assert.match(importProblem("_shared/hf/", "../identity/mod.ts")!, /only folders below it/);
  assert.match(importProblem("text-to-image/", "../huggingface-inference/handler.ts")!, /never import one another/);
  assert.match(importProblem("_shared/hf/", "https://esm.sh/x")!, /only relative/);
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
