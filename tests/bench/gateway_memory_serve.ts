/**
 * `huggingface-inference` as its `index.ts` runs it (`Deno.serve` on `DENO_SERVE_ADDRESS`, the
 * process environment), but with a meter whose store grants everything, so the memory bench needs no database.
 * Started with `--v8-flags=--expose-gc`, it collects garbage after each answer: the memory a request
 * really holds, apart from garbage V8 has not collected yet.
 * @module
 */
import { createHandler } from "../../supabase/functions/huggingface-inference/handler.ts";
import { unmeteredStore } from "./unmetered.ts";

const handler = createHandler(Deno.env.toObject(), { meterStore: unmeteredStore });
const gc = (globalThis as { gc?: () => void }).gc;
Deno.serve(
  gc
    ? async (req) => {
      const res = await handler(req);
      setTimeout(gc, 0);
      return res;
    }
    : handler,
);
