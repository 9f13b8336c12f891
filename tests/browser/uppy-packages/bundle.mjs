// Bundles the Uppy 6 recipe of docs/front-ends.md with esbuild, as a front end would build it, for the
// separate packages installed here: @uppy/aws-s3 at its newest tested version, or
// `aws-s3-6.0` (the 6.0.0 package, installed as uppy-aws-s3-600, in its place). The
// recipe runs as written: only the two lines it marks "yours" get the test's service
// and token, and the test's own reporting is appended after it.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const MARK = "<!-- uppy6-recipe:";

/** The docs' recipe: the first js block after its marker. */
export async function recipe() {
  const readme = await readFile(join(here, "..", "..", "..", "docs", "front-ends.md"), "utf8");
  const at = readme.indexOf(MARK);
  if (at < 0) throw new Error("docs/front-ends.md has no Uppy 6 recipe marker");
  const open = readme.indexOf("```js\n", at);
  const close = readme.indexOf("\n```", open + 6);
  if (open < 0 || close < 0) throw new Error("docs/front-ends.md's recipe has no js block");
  return readme.slice(open + 6, close + 1);
}

/** Replaces the one line of `code` that contains `marker` with `line`. */
function yours(code, marker, line) {
  const lines = code.split("\n");
  const at = lines.filter((l) => l.includes(marker) && l.includes("// yours"));
  if (at.length !== 1) throw new Error(`the recipe has ${at.length} lines "${marker} … // yours"`);
  return lines.map((l) => (l === at[0] ? line : l)).join("\n");
}

/** Reporting for the driver: what Uppy reported when it is done. */
const REPORT = `
document.getElementById("version").textContent = "@uppy/aws-s3 " + AwsS3.VERSION;
window.results = null;
uppy.on("complete", (result) => {
  window.results = {
    successful: result.successful.map((f) => ({
      name: f.name, size: f.size, uploadURL: f.uploadURL,
      key: f.s3Multipart?.key ?? f.response?.body?.key ?? null,
      body: f.response?.body ?? null,
    })),
    failed: result.failed.map((f) => ({ name: f.name, error: String(f.error) })),
  };
});
`;

/** Bundles the recipe for `variant` ("latest" or "aws-s3-6.0") into `out`: entry.js, entry.css. */
export async function bundleRecipe(variant, out) {
  let code = await recipe();
  code = yours(code, "const service =", "const service = new URL(window.TEST.service + \"/\");");
  code = yours(code, "const userToken =", "const userToken = () => window.TEST.token;");
  await mkdir(out, { recursive: true });
  // Inside this package, so that the recipe's imports resolve to its node_modules.
  const dir = join(here, ".build", variant);
  await mkdir(dir, { recursive: true });
  const entry = join(dir, "entry.mjs");
  await writeFile(entry, code + REPORT);
  await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    outdir: out,
    logLevel: "error",
    // The alias resolves from here, where the packages are.
    absWorkingDir: here,
    alias: variant === "aws-s3-6.0" ? { "@uppy/aws-s3": "uppy-aws-s3-600" } : {},
  });
  const version = async (name) => JSON.parse(await readFile(join(here, "node_modules", name, "package.json"), "utf8")).version;
  return variant === "aws-s3-6.0" ? version("uppy-aws-s3-600") : version("@uppy/aws-s3");
}
