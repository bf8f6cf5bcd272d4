/// <reference lib="dom" />
/**
 * Debian's Chromium driven by playwright-core (no browser download), for the web app's tests, and
 * the screenshots they save.
 * @module
 */
import { type Browser, chromium, type Page } from "npm:playwright-core@1.65.1";

/** Where Debian's `chromium` package puts the browser (`.ci/run` installs it). */
export const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/** The git-ignored folder the tests save screenshots to (named in docs/web-app.md). */
export const SCREENSHOTS = new URL("../../test-results/screenshots/", import.meta.url);

/** The widths the page must work at: a small phone and a laptop. */
export const WIDTHS = [375, 1280] as const;

// Flags that work in a container as root, with no network beyond loopback and no GPU.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/** Launches Chromium with a fresh profile; throws a clear error when it is not installed. */
export async function launchChromium(): Promise<Browser> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (.ci/run does) or set CHROMIUM_PATH`);
  }
  // playwright-core gives every launch a fresh temporary --user-data-dir and removes it on close.
  return await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 60_000 });
}

/**
 * Saves `name` at both widths (full page) and checks the page is usable at each: nothing wider
 * than the viewport, and every element in `visible` shown within it. Restores the first width.
 * Throws an AssertionError-like Error naming the width and the problem.
 */
export async function screenshotBoth(page: Page, name: string, visible: string[] = []): Promise<void> {
  await Deno.mkdir(SCREENSHOTS, { recursive: true });
  const original = page.viewportSize();
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: 900 });
    await page.waitForTimeout(50);
    const overflow = await page.evaluate(() =>
      document.documentElement.scrollWidth - document.documentElement.clientWidth
    );
    if (overflow > 0) throw new Error(`${name} at ${width}px: the page is ${overflow}px wider than the screen`);
    for (const selector of visible) {
      const box = await page.locator(selector).first().boundingBox();
      if (!box || box.width === 0) throw new Error(`${name} at ${width}px: ${selector} is not shown`);
      if (box.x < 0 || box.x + box.width > width + 0.5) {
        throw new Error(`${name} at ${width}px: ${selector} sticks out of the screen`);
      }
    }
    await page.screenshot({ path: new URL(`${name}-${width}.png`, SCREENSHOTS).pathname, fullPage: true });
  }
  if (original) await page.setViewportSize(original);
}
