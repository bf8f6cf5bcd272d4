/**
 * Serves the web app (`web/`) for `deno task dev` and the browser tests, as any static host would:
 * the built files and a `config.json` naming the local project. Its own port, so the page's origin
 * differs from the API's and the browser makes real CORS preflights.
 *
 * @module
 */
import { buildWeb } from "../../web/build.ts";

/** Options for {@linkcode startWebHost}. */
export interface WebHostOptions {
  /** 0 picks a free port. */
  port: number;
  /** When `port` is taken, serve on a free one instead of failing (for a default port, as dev servers do). */
  orFreePort?: boolean;
  supabaseUrl: string;
  supabaseKey: string;
}

/** A running web host. */
export interface WebHost {
  url: string;
  stop(): Promise<void>;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  json: "application/json",
};

/** Builds the app into a temp dir and serves it on 127.0.0.1; throws when the build or the listen fails. */
export async function startWebHost(opts: WebHostOptions): Promise<WebHost> {
  const dir = await Deno.makeTempDir({ prefix: "web-app-" });
  try {
    await buildWeb({ outDir: dir, config: { supabaseUrl: opts.supabaseUrl, supabaseKey: opts.supabaseKey } });
    const files = new Map<string, Uint8Array<ArrayBuffer>>();
    for await (const entry of Deno.readDir(dir)) files.set(entry.name, await Deno.readFile(`${dir}/${entry.name}`));
    const handler = (req: Request) => {
      const name = new URL(req.url).pathname.slice(1) || "index.html";
      const body = files.get(name);
      if (!body || !["GET", "HEAD"].includes(req.method)) return new Response("Not found", { status: 404 });
      return new Response(req.method === "HEAD" ? null : body, {
        headers: {
          "content-type": TYPES[name.split(".").pop()!] ?? "application/octet-stream",
          "cache-control": "no-store",
        },
      });
    };
    const serve = (port: number) => Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, handler);
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = serve(opts.port);
    } catch (error) {
      if (!(opts.orFreePort && error instanceof Deno.errors.AddrInUse)) throw error;
      server = serve(0);
    }
    return {
      url: `http://127.0.0.1:${server.addr.port}/`,
      async stop() {
        await server.shutdown();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}
