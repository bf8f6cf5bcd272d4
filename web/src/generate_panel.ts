/// <reference lib="dom" />
/**
 * Generate: POSTs the prompt and options to `text-to-image` with the user's JWT and shows the
 * image, the remaining quota from the `RateLimit` headers, or the error as a sentence.
 * @module
 */
import { type AppContext, functionHeaders } from "./app_context.ts";
import { byId, networkMessage, say } from "./dom.ts";
import { readFunctionError } from "./function_errors.ts";
import { describeQuotas, parseRateLimit } from "./rate_limit.ts";

const NUMBER_FIELDS = ["width", "height", "num_inference_steps", "guidance_scale", "seed"];

/** Builds the request body from the form: the prompt, and each option that is filled in. */
export function generateBody(form: FormData): Record<string, unknown> {
  const body: Record<string, unknown> = { prompt: String(form.get("prompt") ?? "") };
  const negative = String(form.get("negative_prompt") ?? "").trim();
  if (negative) body.negative_prompt = negative;
  for (const name of NUMBER_FIELDS) {
    const raw = String(form.get(name) ?? "").trim();
    // Sent as typed, so the function (not the page) decides what is valid and says so.
    if (raw) body[name] = Number.isNaN(Number(raw)) ? raw : Number(raw);
  }
  return body;
}

/** Wires the Generate panel. */
export function setupGenerate(ctx: AppContext): void {
  const form = byId<HTMLFormElement>("generate-form");
  const button = byId<HTMLButtonElement>("generate");
  const message = byId("generate-message");
  const quota = byId("quota");
  const figure = byId("generated");
  const image = byId<HTMLImageElement>("generated-image");
  let objectUrl: string | undefined;

  // Editing the field a 400 named clears the complaint.
  form.addEventListener("input", (event) => {
    const field = event.target as HTMLElement;
    if (field.getAttribute("aria-invalid") !== "true") return;
    field.removeAttribute("aria-invalid");
    if (message.dataset.status === "400") {
      delete message.dataset.status;
      say(message, "");
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    const body = generateBody(new FormData(form));
    button.disabled = true;
    say(message, "Generating…");
    const started = performance.now();
    try {
      const res = await fetch(`${ctx.url}/functions/v1/text-to-image`, {
        method: "POST",
        headers: await functionHeaders(ctx, { "content-type": "application/json" }),
        body: JSON.stringify(body),
      });
      const quotas = parseRateLimit(res.headers);
      quota.hidden = quotas.length === 0;
      quota.textContent = quotas.length ? `Quota: ${describeQuotas(quotas)}` : "";
      if (!res.ok) {
        const error = await readFunctionError(res);
        say(message, error.message, "error");
        message.dataset.status = String(error.status);
        const field = error.field ? form.querySelector<HTMLElement>(`[name="${CSS.escape(error.field)}"]`) : null;
        if (field) {
          field.setAttribute("aria-invalid", "true");
          field.closest("details")?.setAttribute("open", "");
          field.focus();
        }
        return;
      }
      const blob = await res.blob();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(blob);
      image.src = objectUrl;
      image.alt = `Generated: ${body.prompt}`;
      await image.decode().catch(() => {});
      byId("generated-caption").textContent =
        `${body.prompt} (${blob.type}, ${image.naturalWidth}×${image.naturalHeight})`;
      figure.hidden = false;
      delete message.dataset.status;
      say(message, `Done in ${((performance.now() - started) / 1000).toFixed(1)} s.`, "ok");
    } catch (error) {
      say(message, networkMessage(error), "error");
    } finally {
      button.disabled = false;
    }
  });
}
