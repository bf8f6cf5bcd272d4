/// <reference lib="dom" />
/**
 * The web app's entry point: reads `config.json`, creates the supabase-js client, and shows the
 * signed-in panels (Generate, Caption, My images, Other tasks) or the sign-in panel.
 * @module
 */
import { createClient } from "npm:@supabase/supabase-js@2.119.0";
import type { AppContext } from "./app_context.ts";
import { renderAuth, setupAuth } from "./auth_panel.ts";
import { setupCaption } from "./caption_panel.ts";
import { loadConfig } from "./config.ts";
import { byId, say } from "./dom.ts";
import { setupGallery } from "./gallery_panel.ts";
import { setupGenerate } from "./generate_panel.ts";
import { loadTasks } from "./tasks_panel.ts";

async function main(): Promise<void> {
  let config;
  try {
    config = await loadConfig(document.baseURI);
  } catch (error) {
    say(byId("app-error"), (error as Error).message, "error");
    return;
  }
  const supabase = createClient(config.supabaseUrl, config.supabaseKey);
  const ctx: AppContext = {
    supabase,
    url: config.supabaseUrl,
    key: config.supabaseKey,
    userId: null,
    refreshGallery: () => Promise.resolve(),
  };
  byId("project").textContent = `Project: ${config.supabaseUrl}`;
  setupAuth(ctx);
  setupGenerate(ctx);
  setupCaption(ctx);
  ctx.refreshGallery = setupGallery(ctx);

  supabase.auth.onAuthStateChange((_event, session) => {
    const user = session?.user ?? null;
    const changed = ctx.userId !== (user?.id ?? null);
    ctx.userId = user?.id ?? null;
    renderAuth(user);
    // supabase-js must not be called from inside this callback: defer the loads.
    if (user && changed) {
      setTimeout(() => {
        clearUserViews();
        void ctx.refreshGallery();
        void loadTasks(ctx);
      }, 0);
    }
    document.body.dataset.ready = user ? "signed-in" : "signed-out";
  });
}

/** Forgets what the previous user saw: their image, captions, gallery, messages and task output. */
function clearUserViews(): void {
  for (const id of ["gallery", "caption-list", "task-output"]) byId(id).replaceChildren();
  for (const id of ["generate-message", "caption-message", "gallery-message", "task-message", "auth-message"]) {
    say(byId(id), "");
  }
  byId("generated").hidden = true;
  byId<HTMLImageElement>("generated-image").removeAttribute("src");
  byId("quota").hidden = true;
  byId("task-quota").hidden = true;
}

void main();
