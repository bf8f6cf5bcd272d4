/// <reference lib="dom" />
/**
 * My images: the user's images in `images/<user id>/`, each with its caption (or status), and delete.
 * @module
 */
import type { AppContext } from "./app_context.ts";
import { captionStates, describeCaptionState } from "./caption_status.ts";
import { byId, el, say } from "./dom.ts";
import { displayName } from "./object_keys.ts";

/** Wires the gallery and returns its loader. */
export function setupGallery(ctx: AppContext): () => Promise<void> {
  const grid = byId("gallery");
  const message = byId("gallery-message");
  let urls: string[] = [];

  const load = async () => {
    if (!ctx.userId) return;
    const userId = ctx.userId;
    say(message, "Loading…");
    const listed = await ctx.supabase.storage.from("images").list(userId, {
      limit: 100,
      sortBy: { column: "name", order: "desc" },
    });
    if (listed.error) return say(message, `Could not list your images: ${listed.error.message}`, "error");
    const files = listed.data.filter((f) => f.id);
    let states;
    try {
      states = await captionStates(ctx.supabase);
    } catch (error) {
      return say(message, `Could not read the captions: ${(error as Error).message}`, "error");
    }
    for (const url of urls) URL.revokeObjectURL(url);
    urls = [];
    const cards = await Promise.all(files.map(async (file) => {
      const path = `${userId}/${file.name}`;
      const img = el("img", { alt: displayName(path) });
      // A file that is not a decodable image gets a plain placeholder, not a broken-image icon.
      img.addEventListener("error", () => img.classList.add("broken"), { once: true });
      const { data } = await ctx.supabase.storage.from("images").download(path);
      if (data) {
        const url = URL.createObjectURL(data);
        urls.push(url);
        img.src = url;
      }
      const state = states.get(file.id!);
      const remove = el("button", { type: "button", class: "danger", text: "Delete" });
      remove.addEventListener("click", async () => {
        remove.disabled = true;
        const { error } = await ctx.supabase.storage.from("images").remove([path]);
        if (error) {
          remove.disabled = false;
          return say(message, `Could not delete ${displayName(path)}: ${error.message}`, "error");
        }
        await load();
      });
      return el(
        "li",
        { "data-key": path, "data-state": state?.state ?? "captioning" },
        img,
        el(
          "div",
          { class: "body" },
          el("div", { class: "status caption", text: describeCaptionState(state) }),
          el("div", { class: "name", text: displayName(path) }),
          remove,
        ),
      );
    }));
    grid.replaceChildren(...cards);
    say(message, cards.length ? "" : "No images yet. Upload some under “Caption images”.");
  };

  byId("gallery-refresh").addEventListener("click", () => void load());
  return load;
}
