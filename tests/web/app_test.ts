/// <reference lib="dom" />
/**
 * The web app in a real browser (Debian's Chromium), against the local stack with the Hugging Face
 * stand-in, served from its own origin so every API call crosses origins as on a static host.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Browser, Page } from "npm:playwright-core@1.65.1";
import { startWebHost, type WebHost } from "../stack/web_host.ts";
import { makePng, tinyJpeg } from "../support/images.ts";
import { TASKS } from "../../supabase/functions/_shared/tasks/table.ts";
import { awayFromMinuteEdge } from "../quotas/windows.ts";
import { type Local, withLocal } from "../support/local.ts";
import { launchChromium, screenshotBoth } from "./browser.ts";

/** Requests the API server saw, as the browser sent them (preflights included). */
interface Seen {
  method: string;
  path: string;
  origin: string | null;
  requestHeaders: string | null;
}

/** What the test runs against: the whole local stack, the app on its own origin, and Chromium. */
interface App {
  local: Local;
  web: WebHost;
  browser: Browser;
  seen: Seen[];
  /** Functions to answer as a project where they are not deployed (the platform's 404, no CORS). */
  undeployed: Set<string>;
}

/** Runs fn with the stack, the app on its own port, and a browser; stops all of them. */
async function withApp(fn: (app: App) => Promise<void>): Promise<void> {
  const seen: Seen[] = [];
  const undeployed = new Set<string>();
  await withLocal(async (local) => {
    const web = await startWebHost({ port: 0, supabaseUrl: local.dev.apiUrl, supabaseKey: local.dev.stack.anonKey });
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      await fn({ local, web, browser, seen, undeployed });
    } finally {
      await browser?.close();
      await web.stop();
    }
  }, {
    // Records what reaches the API; answers only for a function the test says is not deployed.
    intercept(req) {
      const url = new URL(req.url);
      seen.push({
        method: req.method,
        path: url.pathname,
        origin: req.headers.get("origin"),
        requestHeaders: req.headers.get("access-control-request-headers"),
      });
      const name = url.pathname.match(/^\/functions\/v1\/([^/]+)/)?.[1];
      if (name && undeployed.has(name)) {
        return Response.json({ code: "NOT_FOUND", message: "Requested function was not found" }, { status: 404 });
      }
      return undefined;
    },
  });
}

/** Opens the app in a fresh context (its own storage, so its own session). */
async function openApp(browser: Browser, web: WebHost): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  // The page's own errors belong in the test's output.
  page.on("pageerror", (error) => console.error("page error:", error.message));
  page.on("console", (msg) => {
    if (msg.type() === "error") console.error("page console:", msg.text());
  });
  await page.goto(web.url);
  await page.waitForSelector("body[data-ready]");
  return page;
}

async function signInAnonymously(page: Page): Promise<void> {
  await page.click("#sign-in-anon");
  await page.waitForSelector("body[data-ready=signed-in]");
}

Deno.test({
  name: "web app in Chromium: sign in, generate, validation, captions, per-user gallery, CORS, at 375 and 1280 px",
  // playwright-core keeps timers and pipes of its own until the browser closes, which the finally does.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await withApp(async ({ local, web, browser, seen, undeployed }) => {
      const page = await openApp(browser, web);
      const webOrigin = new URL(web.url).origin;
      assert.notEqual(webOrigin, new URL(local.dev.apiUrl).origin, "the app and the API are on different origins");

      await t.step("signed out: the sign-in panel", async () => {
        assert.equal(await page.isVisible("#auth-panel"), true);
        assert.equal(await page.isVisible("#signed-in"), false);
        await screenshotBoth(page, "01-signed-out", ["#sign-in-anon", "#email", "#sign-up"]);
      });

      let userId = "";
      await t.step("anonymous sign-in, then a prompt gives an <img> with the stand-in's PNG pixels", async () => {
        await signInAnonymously(page);
        userId = (await page.getAttribute("#who", "title"))!;
        const [row] = await local.dev.stack.sql`select is_anonymous from auth.users where id = ${userId}`;
        assert.equal(row.is_anonymous, true, "the user is in auth.users");

        await page.fill("#prompt", "Llama wearing sunglasses");
        await page.click("#generate-form summary");
        await page.fill("#width", "64");
        await page.fill("#height", "72");
        await page.click("#generate");
        await page.waitForSelector("#generate-message.ok");
        const sent = local.fake.seen.filter((r) => r.task === "text-to-image").at(-1)!;
        assert.equal(sent.json.inputs, "Llama wearing sunglasses");
        assert.deepEqual(sent.json.parameters, { width: 64, height: 72 });

        const expected = await makePng(64, 72);
        const comparison = await page.evaluate(async (bytes: number[]) => {
          const pixels = (source: CanvasImageSource, w: number, h: number) => {
            const canvas = document.createElement("canvas");
            canvas.width = w;
            canvas.height = h;
            const g = canvas.getContext("2d")!;
            g.drawImage(source, 0, 0);
            return Array.from(g.getImageData(0, 0, w, h).data);
          };
          const img = document.querySelector<HTMLImageElement>("#generated-image")!;
          await img.decode();
          const reference = await createImageBitmap(new Blob([new Uint8Array(bytes)], { type: "image/png" }));
          const shown = pixels(img, img.naturalWidth, img.naturalHeight);
          const wanted = pixels(reference, reference.width, reference.height);
          return {
            size: [img.naturalWidth, img.naturalHeight],
            same: shown.length === wanted.length && shown.every((v, i) => v === wanted[i]),
            first: shown.slice(0, 4),
            src: img.src.slice(0, 5),
          };
        }, Array.from(expected));
        assert.deepEqual(comparison.size, [64, 72]);
        assert.equal(comparison.src, "blob:");
        assert.deepEqual(comparison.first, [200, 80, 40, 255]);
        assert.equal(comparison.same, true, "every pixel equals the stand-in's PNG");
        await screenshotBoth(page, "02-generated", ["#generated-image", "#prompt", "#generate"]);
        // Two columns on a laptop, one on a phone.
        const tops = async () =>
          await page.evaluate(() =>
            ["generate-panel", "caption-panel"].map((id) => document.getElementById(id)!.getBoundingClientRect().top)
          );
        const [generateTop, captionTop] = await tops();
        assert.equal(generateTop, captionTop, "side by side at 1280 px");
        await page.setViewportSize({ width: 375, height: 900 });
        const [phoneGenerateTop, phoneCaptionTop] = await tops();
        assert.ok(phoneCaptionTop > phoneGenerateTop, "stacked at 375 px");
        await page.setViewportSize({ width: 1280, height: 900 });
      });

      await t.step("the browser itself made the CORS preflight from the app's origin", () => {
        const preflight = seen.find((s) => s.method === "OPTIONS" && s.path === "/functions/v1/text-to-image");
        assert.ok(preflight, "an OPTIONS preflight reached text-to-image");
        assert.equal(preflight.origin, webOrigin);
        assert.match(preflight.requestHeaders ?? "", /authorization/);
        const post = seen.find((s) => s.method === "POST" && s.path === "/functions/v1/text-to-image");
        assert.equal(post?.origin, webOrigin);
        assert.ok(seen.indexOf(preflight) < seen.indexOf(post!), "the browser sent the POST only after the preflight");
        assert.ok(seen.some((s) => s.method === "OPTIONS" && s.path.startsWith("/auth/v1/")), "auth preflight");
      });

      await t.step("an invalid field is shown as a message next to the field", async () => {
        await page.fill("#width", "65");
        await page.click("#generate");
        await page.waitForSelector("#generate-message.error");
        const text = await page.textContent("#generate-message");
        assert.match(text!, /^Width must be an integer from 64 to 2048, a multiple of 8/);
        assert.equal(await page.getAttribute("#generate-message", "data-status"), "400");
        assert.equal(await page.getAttribute("#width", "aria-invalid"), "true");
        await screenshotBoth(page, "03-invalid-field", ["#generate-message", "#width"]);
        await page.fill("#width", "");
        assert.equal(await page.getAttribute("#width", "aria-invalid"), null, "editing the field clears the complaint");
        assert.equal(await page.isVisible("#generate-message"), false);
        await page.fill("#height", "");
      });

      await t.step("uploads are captioned in the page, a bad one says why, and the gallery shows them", async () => {
        await page.setInputFiles("#caption-files", [
          { name: "red square.png", mimeType: "image/png", buffer: Buffer.from(await makePng(20, 10)) },
          { name: "tiny.jpg", mimeType: "image/jpeg", buffer: Buffer.from(tinyJpeg) },
          { name: "notes.png", mimeType: "image/png", buffer: Buffer.from("not an image at all") },
        ]);
        await page.click("#upload");
        await page.waitForFunction(
          () =>
            [...document.querySelectorAll("#caption-list li")].filter((li) =>
              ["done", "failed"].includes((li as HTMLElement).dataset.state!)
            ).length === 3,
          undefined,
          { timeout: 30_000 },
        );
        const items = await page.$$eval("#caption-list li", (lis) =>
          lis.map((li) => ({
            key: (li as HTMLElement).dataset.key!,
            state: (li as HTMLElement).dataset.state,
            status: li.querySelector(".status")!.textContent,
          })));
        const byName = (name: string) => items.find((i) => i.key.endsWith(name))!;
        assert.ok(items.every((i) => i.key.startsWith(`${userId}/`)), "uploads go to the user's own folder");
        assert.equal(byName("red-square.png").state, "done");
        assert.match(byName("red-square.png").status!, /^a 20x10 png image [0-9a-f]+$/);
        assert.equal(byName("tiny.jpg").state, "done");
        assert.match(byName("tiny.jpg").status!, /^a 16x16 jpeg image/);
        assert.equal(byName("notes.png").state, "failed");
        assert.match(byName("notes.png").status!, /^Captioning failed: .+/);

        await page.waitForFunction(() => document.querySelectorAll("#gallery li").length === 3);
        const captions = await page.$$eval("#gallery li .caption", (els) => els.map((e) => e.textContent));
        assert.equal(captions.filter((c) => /^a \d+x\d+ (png|jpeg) image/.test(c!)).length, 2);
        await page.waitForFunction(() =>
          [...document.querySelectorAll<HTMLImageElement>("#gallery img")].every((i) => i.complete)
        );
        await screenshotBoth(page, "04-captions-and-gallery", ["#caption-list", "#gallery li"]);
      });

      await t.step("delete removes an image and its caption", async () => {
        await page.click(`#gallery li[data-key$="tiny.jpg"] button.danger`);
        await page.waitForFunction(() => document.querySelectorAll("#gallery li").length === 2);
        const [left] = await local.dev.stack.sql`
          select count(*)::int as n from storage.objects where owner_id = ${userId}`;
        assert.equal(left.n, 2);
      });

      await t.step(
        "Other tasks: built from the real gateway's GET description; summarization runs end to end",
        async () => {
          await page.waitForSelector("body[data-tasks=shown]");
          await page.waitForSelector("#tasks-panel", { state: "visible" });
          const options = await page.$$eval(
            "#task-select option",
            (os) => os.map((o) => [(o as HTMLOptionElement).value, o.textContent]),
          );
          // Every task the function's table serves, in its order, the unavailable one said so.
          assert.deepEqual(options.map(([value]) => value), Object.keys(TASKS));
          assert.deepEqual(options.find(([value]) => value === "video-classification"), [
            "video-classification",
            "video-classification (unavailable)",
          ]);
          await page.selectOption("#task-select", "summarization");
          assert.equal(await page.textContent("#task-summary"), TASKS.summarization.summary);
          assert.equal(
            await page.textContent("#task-info"),
            `InputJSON (see Fields)Output{"summary_text": string}Modelfacebook/bart-large-cnn` +
              `Cost${TASKS.summarization.cost} units per call`,
          );
          assert.equal(await page.isVisible("#task-file"), false, "JSON input is a text area");
          const text = "The tower is 324 metres tall, about the same height as an 81-storey building.";
          await page.fill("#task-json", JSON.stringify({ inputs: text }));
          const answered = page.waitForResponse((res) =>
            res.url().endsWith("/functions/v1/huggingface-inference/summarization") &&
            res.request().method() === "POST"
          );
          await page.click("#task-run");
          await page.waitForSelector("#task-message.ok");
          const res = await answered;
          assert.equal(res.status(), 200);
          assert.equal(res.headers()["x-model"], "facebook/bart-large-cnn");
          // The stand-in summarises with the first eight words; the gateway sent it the page's text.
          const call = local.fake.seen.filter((r) => r.task === "summarization").at(-1)!;
          assert.equal(call.json.inputs, text);
          assert.deepEqual(JSON.parse((await page.textContent("#task-output pre"))!), {
            summary_text: text.split(" ").slice(0, 8).join(" "),
          });
          assert.equal(await page.textContent("#task-message"), "Done (model: facebook/bart-large-cnn).");
          assert.match((await page.textContent("#task-quota"))!, /^Quota: \d+ of 5 requests left this minute/);
          // Metered like any call: the usage log has it, charged at the task's cost.
          const usage = await local.waitFor("the summarization's usage row", async () => {
            const [row] = await local.dev.stack.sql`
              select status, units, model from public.inference_usage
              where user_id = ${userId} and task = 'summarization'`;
            return row;
          });
          assert.deepEqual({ ...usage }, {
            status: 200,
            units: TASKS.summarization.cost,
            model: "facebook/bart-large-cnn",
          });
          await page.click("#task-fields-box summary");
          await screenshotBoth(page, "06-other-tasks", ["#task-select", "#task-output pre", "#task-quota"]);

          // A media task: the file itself is the body, sent with its type.
          await page.selectOption("#task-select", "image-classification");
          assert.match(
            (await page.textContent("#task-info"))!,
            /^Inputan image \(PNG, JPEG, GIF, WEBP, BMP, TIFF\), up to 10 MB/,
          );
          assert.equal(await page.isVisible("#task-json"), false);
          assert.match((await page.getAttribute("#task-file", "accept"))!, /^image\/png,image\/jpeg,/);
          const png = await makePng(20, 10);
          await page.setInputFiles("#task-file", {
            name: "red.png",
            mimeType: "image/png",
            buffer: Buffer.from(png),
          });
          await page.click("#task-run");
          await page.waitForSelector("#task-message.ok");
          const classified = local.fake.seen.filter((r) => r.task === "image-classification").at(-1)!;
          assert.deepEqual(classified.bytes, png, "the gateway passed the page's file on");
          assert.equal(
            (JSON.parse((await page.textContent("#task-output pre"))!) as { label: string }[])[0].label,
            "png picture",
          );
          assert.equal(await page.textContent("#task-message"), "Done (model: google/vit-base-patch16-224).");

          await page.selectOption("#task-select", "video-classification");
          assert.match((await page.textContent("#task-info"))!, /^Unavailable.*not served/);
          assert.equal(await page.isDisabled("#task-run"), true);
          assert.equal(await page.isVisible("#task-json"), false);
          await screenshotBoth(page, "06b-other-tasks-unavailable", ["#task-select", "#task-info"]);

          // A project without the gateway deployed: no panel.
          undeployed.add("huggingface-inference");
          await page.reload();
          await page.waitForSelector("body[data-tasks=absent]");
          assert.equal(await page.isVisible("#tasks-panel"), false);
          undeployed.delete("huggingface-inference");
        },
      );

      await t.step(
        "a second user, signed up with email and password, sees none of the first user's images",
        async () => {
          const other = await openApp(browser, web);
          await other.fill("#email", "grace@example.com");
          await other.fill("#password", "correct horse battery");
          await other.click("#sign-up");
          await other.waitForSelector("body[data-ready=signed-in]");
          assert.equal(await other.textContent("#who"), "grace@example.com");
          await other.waitForSelector("#gallery-message:has-text('No images yet')");
          assert.equal(await other.locator("#gallery li").count(), 0);
          // Not through the page either: RLS hides the first user's captions and objects from this session.
          const leaked = await other.evaluate(async ({ url, key, firstUser }) => {
            const token = JSON.parse(
              Object.entries(localStorage).find(([k]) => k.endsWith("-auth-token"))![1],
            ).access_token;
            const headers = { apikey: key, authorization: `Bearer ${token}`, "content-type": "application/json" };
            const captions = await (await fetch(`${url}/rest/v1/image_caption?select=id`, { headers })).json();
            const listed = await (await fetch(`${url}/storage/v1/object/list/images`, {
              method: "POST",
              headers,
              body: JSON.stringify({ prefix: firstUser }),
            })).json();
            return { captions, listed };
          }, { url: local.dev.apiUrl, key: local.dev.stack.anonKey, firstUser: userId });
          assert.deepEqual(leaked, { captions: [], listed: [] });
          await screenshotBoth(other, "05-second-user-empty-gallery", ["#gallery-message", "#sign-out"]);

          await other.click("#sign-out");
          await other.waitForSelector("body[data-ready=signed-out]");
          await other.fill("#password", "wrong password");
          await other.click("#sign-in");
          await other.waitForSelector("#auth-message:has-text('Invalid login credentials')");
          await screenshotBoth(other, "07-wrong-password", ["#auth-message"]);
          await other.context().close();
        },
      );

      await t.step("signing out and in as someone else in the same tab leaves nothing of the first user", async () => {
        await page.click("#sign-out");
        await page.waitForSelector("body[data-ready=signed-out]");
        await signInAnonymously(page);
        assert.notEqual(await page.getAttribute("#who", "title"), userId);
        await page.waitForSelector("#gallery-message:has-text('No images yet')");
        assert.equal(await page.locator("#gallery li, #caption-list li").count(), 0);
        assert.equal(await page.isVisible("#generated"), false);
        assert.equal(await page.getAttribute("#generated-image", "src"), null);
      });
    });
  },
});

Deno.test({
  name: "web app in Chromium: a 429 from the real quota is shown with the wait, and the quota line reads 0 left",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withApp(async ({ local, web, browser }) => {
      // One request a minute on the anonymous tier: the second call in the minute is refused.
      await local.dev.stack.sql`update inference.tiers set requests_per_minute = 1 where tier = 'anonymous'`;
      const page = await openApp(browser, web);
      await signInAnonymously(page);
      const userId = (await page.getAttribute("#who", "title"))!;
      const generate = async (prompt: string) => {
        await page.fill("#prompt", prompt);
        const answered = page.waitForResponse((res) =>
          res.url().endsWith("/functions/v1/text-to-image") && res.request().method() === "POST"
        );
        await page.click("#generate");
        return (await answered).allHeaders();
      };
      // Both calls within one UTC minute, the quota's window.
      await awayFromMinuteEdge(15_000);
      const first = await generate("one");
      await page.waitForSelector("#generate-message.ok");
      assert.equal(first["ratelimit-policy"], '"requests_per_minute";q=1;w=60, "units_per_day";q=100;w=86400');
      assert.match(
        (await page.textContent("#quota"))!,
        /^Quota: 0 of 1 requests left this minute, resets in \d+ s · 90 of 100 units left today/,
      );

      const refused = await generate("two");
      await page.waitForSelector("#generate-message.error");
      assert.equal(await page.getAttribute("#generate-message", "data-status"), "429");
      const wait = Number(refused["retry-after"]);
      assert.ok(wait >= 1 && wait <= 60, `Retry-After ${refused["retry-after"]}`);
      // The wait and the quota line come from the function's own headers.
      assert.equal(
        await page.textContent("#generate-message"),
        `Too many requests this minute. Try again in ${wait} s.`,
      );
      assert.match(refused.ratelimit, new RegExp(`^"requests_per_minute";r=0;t=${wait}, "units_per_day";r=90;`));
      assert.match(
        (await page.textContent("#quota"))!,
        new RegExp(`^Quota: 0 of 1 requests left this minute, resets in ${wait} s · 90 of 100 units left today`),
      );
      assert.equal(await page.isVisible("#generated-image"), true, "the first image stays");
      const refusedRow = await local.waitFor("the refused call's usage row", async () => {
        const [row] = await local.dev.stack.sql`
          select units from public.inference_usage where user_id = ${userId} and status = 429`;
        return row;
      });
      assert.equal(refusedRow.units, 0, "a refusal costs nothing");
      await screenshotBoth(page, "08-quota-used", ["#generate-message", "#quota", "#generate"]);
    });
  },
});
