/**
 * `huggingface-inference` as its `index.ts` runs it (`Deno.serve` on `DENO_SERVE_ADDRESS`, the
 * process environment), but with a meter whose store grants everything, so the memory bench needs no database.
 * @module
 */
import { createHandler } from "../../supabase/functions/huggingface-inference/handler.ts";
import { unmeteredStore } from "./unmetered.ts";

Deno.serve(createHandler(Deno.env.toObject(), { meterStore: unmeteredStore }));
