/**
 * Builds the web app into a folder any static host can serve: `index.html`, `styles.css`, `app.js`
 * (the bundle, supabase-js included: no CDN), and `config.json` when a project is given.
 *
 * Usage: `deno task web:build [out dir]` with `SUPABASE_URL` and `SUPABASE_ANON_KEY` (or
 * `SUPABASE_PUBLISHABLE_KEY`) set to write config.json (default out dir: `web/dist`).
 * @module
 */

const WEB = new URL("./", import.meta.url);

/** Options for {@linkcode buildWeb}. */
export interface BuildOptions {
  outDir: string;
  /** Written to `config.json` when given. */
  config?: { supabaseUrl: string; supabaseKey: string };
  minify?: boolean;
}

/** Bundles `src/main.ts` with `deno bundle` and copies the static files; throws when bundling fails. */
export async function buildWeb(opts: BuildOptions): Promise<void> {
  await Deno.mkdir(opts.outDir, { recursive: true });
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      ...(opts.minify ? ["--minify"] : []),
      "--output",
      `${opts.outDir}/app.js`,
      new URL("src/main.ts", WEB).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`deno bundle failed:\n${new TextDecoder().decode(out.stderr)}`);
  for (const file of ["index.html", "styles.css"]) {
    await Deno.copyFile(new URL(file, WEB), `${opts.outDir}/${file}`);
  }
  if (opts.config) await Deno.writeTextFile(`${opts.outDir}/config.json`, JSON.stringify(opts.config, null, 2) + "\n");
}

if (import.meta.main) {
  const outDir = Deno.args[0] ?? new URL("dist", WEB).pathname;
  const supabaseUrl = Deno.env.get("SUPABASE_URL");
  const supabaseKey = Deno.env.get("SUPABASE_PUBLISHABLE_KEY") ?? Deno.env.get("SUPABASE_ANON_KEY");
  await buildWeb({
    outDir,
    minify: true,
    config: supabaseUrl && supabaseKey ? { supabaseUrl, supabaseKey } : undefined,
  });
  console.log(
    `Built ${outDir}${supabaseUrl && supabaseKey ? "" : " (no config.json: set SUPABASE_URL and SUPABASE_ANON_KEY)"}`,
  );
}
