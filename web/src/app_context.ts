/**
 * What every panel shares: the supabase-js client, the project's URL and key, and the signed-in user.
 * @module
 */
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.0";

/** The page's shared state. */
export interface AppContext {
  supabase: SupabaseClient;
  /** The project URL (`https://<ref>.supabase.co` or the local stack's). */
  url: string;
  /** The anon or publishable key. */
  key: string;
  /** The signed-in user's id, or null. */
  userId: string | null;
  /** Reloads the "My images" gallery. */
  refreshGallery(): Promise<void>;
}

/** Headers for calling a function as the signed-in user; throws when nobody is signed in. */
export async function functionHeaders(ctx: AppContext, extra: Record<string, string> = {}): Promise<Headers> {
  const { data } = await ctx.supabase.auth.getSession();
  const token = data.session?.access_token;
  if (!token) throw new Error("Sign in first.");
  return new Headers({ authorization: `Bearer ${token}`, apikey: ctx.key, ...extra });
}
