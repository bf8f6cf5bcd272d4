/// <reference lib="dom" />
/**
 * Small DOM helpers shared by the panels.
 * @module
 */

/** The element with this id; throws when the page lacks it (a bug in index.html). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

/** Creates an element with attributes and children; throws nothing. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

/** Shows a message (`error` ones as alerts); an empty text hides it. */
export function say(target: HTMLElement, text: string, kind: "info" | "ok" | "error" = "info"): void {
  target.textContent = text;
  target.className = `message${kind === "info" ? "" : ` ${kind}`}`;
  target.setAttribute("role", kind === "error" ? "alert" : "status");
}

/** A readable sentence for a failed `fetch` (a TypeError: network down or CORS refused). */
export function networkMessage(error: unknown): string {
  return error instanceof TypeError
    ? "Could not reach the server (network error, or the browser refused the answer under CORS)."
    : `Unexpected error: ${(error as Error)?.message ?? error}`;
}
