// Entry point for `supabase functions serve/deploy`; the handler lives in handler.ts so tests can call it.
import { createHandler } from "./handler.ts";

Deno.serve(createHandler(Deno.env.toObject()));
