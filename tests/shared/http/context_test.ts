import assert from "node:assert/strict";
import { requestValue } from "../../../supabase/functions/_shared/http/context.ts";

Deno.test("a request value is kept per request object, and a missing one names itself", () => {
  const caller = requestValue<string>("caller");
  const a = new Request("http://fn.test/a");
  const b = new Request("http://fn.test/b");
  caller.set(a, "alice");
  assert.equal(caller.get(a), "alice");
  assert.equal(caller.find(b), undefined);
  assert.throws(() => caller.get(b), /no caller for this request/);
  caller.set(a, "bob");
  assert.equal(caller.get(a), "bob");
});

Deno.test("two values with the same name do not share their requests", () => {
  const first = requestValue<number>("n");
  const second = requestValue<number>("n");
  const req = new Request("http://fn.test/");
  first.set(req, 1);
  assert.equal(second.find(req), undefined);
});
