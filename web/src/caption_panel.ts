/// <reference lib="dom" />
/**
 * Caption: uploads images to the user's own folder in `images` and shows each one's status until
 * its caption lands (polling `image_caption` with supabase-js) or its job fails.
 * @module
 */
import type { AppContext } from "./app_context.ts";
import { captionStates, describeCaptionState } from "./caption_status.ts";
import { byId, el, say } from "./dom.ts";
import { displayName, uploadKey } from "./object_keys.ts";

const POLL_MS = 1000;
const GIVE_UP_MS = 180_000;

/** Wires the Caption panel. */
export function setupCaption(ctx: AppContext): void {
  const form = byId<HTMLFormElement>("caption-form");
  const input = byId<HTMLInputElement>("caption-files");
  const list = byId("caption-list");
  const message = byId("caption-message");
  const waiting = new Map<string, { item: HTMLElement; since: number }>();
  let timer: ReturnType<typeof setTimeout> | undefined;

  const poll = async () => {
    timer = undefined;
    if (!waiting.size) return;
    try {
      const states = await captionStates(ctx.supabase, [...waiting.keys()]);
      for (const [id, { item, since }] of waiting) {
        const state = states.get(id);
        if (state?.state === "done" || state?.state === "failed") {
          setStatus(item, state.state, describeCaptionState(state));
          waiting.delete(id);
        } else if (Date.now() - since > GIVE_UP_MS) {
          setStatus(item, "captioning", "Still captioning: look in My images later.");
          waiting.delete(id);
        }
      }
      if (!waiting.size) await ctx.refreshGallery();
    } catch (error) {
      say(message, `Could not read the captions: ${(error as Error).message}`, "error");
    }
    if (waiting.size) timer = setTimeout(poll, POLL_MS);
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = [...(input.files ?? [])];
    if (!files.length) return say(message, "Choose one or more images first.", "error");
    if (!ctx.userId) return say(message, "Sign in first.", "error");
    say(message, "");
    await Promise.all(files.map(async (file) => {
      const key = uploadKey(ctx.userId!, file.name);
      const preview = URL.createObjectURL(file);
      const thumbnail = el("img", { src: preview, alt: "" });
      thumbnail.addEventListener("error", () => thumbnail.classList.add("broken"), { once: true });
      const item = el(
        "li",
        { "data-key": key },
        thumbnail,
        el(
          "div",
          {},
          el("div", { class: "name", text: displayName(key) }),
          el("div", { class: "status" }),
        ),
      );
      list.prepend(item);
      setStatus(item, "uploading", "uploading…");
      const { data, error } = await ctx.supabase.storage.from("images").upload(key, file, {
        contentType: file.type || "application/octet-stream",
      });
      if (error || !data) return setStatus(item, "failed", `Upload failed: ${error?.message ?? "no answer"}`);
      item.dataset.id = data.id;
      setStatus(item, "captioning", "captioning…");
      waiting.set(data.id, { item, since: Date.now() });
    }));
    input.value = "";
    if (!timer) timer = setTimeout(poll, POLL_MS);
  });
}

function setStatus(item: HTMLElement, state: string, text: string): void {
  item.dataset.state = state;
  item.querySelector(".status")!.textContent = text;
}
