import assert from "node:assert/strict";
import { generateFreshTypes, TYPES_FILE } from "./types.ts";

Deno.test("the committed database.types.ts is what supabase gen types makes of the migrations", async () => {
  const fresh = await generateFreshTypes();
  const committed = await Deno.readTextFile(TYPES_FILE);
  if (fresh === committed) return;
  const [a, b] = [committed.split("\n"), fresh.split("\n")];
  const line = a.findIndex((l, i) => l !== b[i]);
  assert.fail(
    `supabase/functions/_shared/database.types.ts is out of date with supabase/migrations: run \`deno task types\` ` +
      `and commit the result.\nFirst difference at line ${line + 1}:\n  committed: ${a[line]}\n  generated: ${b[line]}`,
  );
});
