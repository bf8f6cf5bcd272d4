/// <reference lib="dom" />
/**
 * Sign in: anonymously, or with email and password (sign up / sign in), and sign out.
 * @module
 */
import type { AppContext } from "./app_context.ts";
import { byId, say } from "./dom.ts";

/** Wires the sign-in panel and the header's sign-out button. */
export function setupAuth(ctx: AppContext): void {
  const message = byId("auth-message");
  const anon = byId<HTMLButtonElement>("sign-in-anon");
  const form = byId<HTMLFormElement>("email-form");

  anon.addEventListener("click", async () => {
    anon.disabled = true;
    say(message, "Signing in…");
    const { error } = await ctx.supabase.auth.signInAnonymously();
    anon.disabled = false;
    say(message, error ? `Could not sign in: ${error.message}` : "", error ? "error" : "info");
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const action = ((event as SubmitEvent).submitter as HTMLButtonElement | null)?.value ?? "sign-in";
    const email = byId<HTMLInputElement>("email").value.trim();
    const password = byId<HTMLInputElement>("password").value;
    if (!email || !password) return say(message, "Enter an email and a password.", "error");
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    say(message, action === "sign-up" ? "Creating the account…" : "Signing in…");
    const { data, error } = action === "sign-up"
      ? await ctx.supabase.auth.signUp({ email, password })
      : await ctx.supabase.auth.signInWithPassword({ email, password });
    for (const b of form.querySelectorAll("button")) b.disabled = false;
    if (error) return say(message, error.message, "error");
    // A project with email confirmation on answers a user without a session.
    if (!data.session) say(message, "Check your inbox to confirm your address, then sign in.", "ok");
    else say(message, "");
  });

  byId("sign-out").addEventListener("click", async () => {
    const { error } = await ctx.supabase.auth.signOut();
    if (error) say(byId("app-error"), `Sign out failed: ${error.message}`, "error");
  });
}

/** Shows the signed-in or signed-out view for this user. */
export function renderAuth(user: { id: string; email?: string; is_anonymous?: boolean } | null): void {
  byId("auth-panel").hidden = !!user;
  byId("signed-in").hidden = !user;
  byId("who-box").hidden = !user;
  if (user) {
    byId("who").textContent = user.is_anonymous || !user.email ? `Anonymous user ${user.id.slice(0, 8)}` : user.email;
    byId("who").title = user.id;
  }
}
