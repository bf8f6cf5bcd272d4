import assert from "node:assert/strict";
import { concatBytes } from "../../../supabase/functions/_shared/http/bytes.ts";

Deno.test("concatBytes joins parts in order into a new array", () => {
  const a = new Uint8Array([1, 2]);
  const b = new Uint8Array([9, 8, 7, 6]).subarray(1, 3); // a view: only its own bytes count
  const joined = concatBytes(a, b, new Uint8Array());
  assert.deepEqual([...joined], [1, 2, 8, 7]);
  joined[0] = 5;
  assert.equal(a[0], 1, "a copy, not a view of the first part");
  assert.equal(concatBytes().length, 0);
});
