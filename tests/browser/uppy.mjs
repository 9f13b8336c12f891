// Drives uppy.html in Debian's Chromium: adds files to Uppy's Dashboard, presses its
// upload button and prints, as one JSON line, what Uppy reported and what its Dashboard
// shows. The page is served on 127.0.0.1:<pagePort> and opened as http://localhost:<pagePort>,
// an origin of its own, so every call to the service and the store is cross-origin, as
// in production (and on loopback, which Chromium lets a loopback page reach).
// Usage: node uppy.mjs '<json>' with {version: "4"|"5"|"6" (a whole-Uppy bundle) or
//   packages: "latest"|"aws-s3-6.0" (the docs' recipe on the separate packages), service,
//   token, files: [path], pagePort, multipartOver: bytes, declareSize: bool,
//   completeAs?: token, screenshot?: path}
// Besides what Uppy reported it prints `signed`: each answer of /uploads/uppy/sign with
// the request it answered.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium } from "./launch.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const test = JSON.parse(process.argv[2]);
const origin = `http://localhost:${test.pagePort}`;
let served;
let built = null;
if (test.packages) {
  const { bundleRecipe } = await import("./uppy-packages/bundle.mjs");
  built = await mkdtemp(join(tmpdir(), "upload-tickets-uppy-"));
  test.awsS3 = await bundleRecipe(test.packages, built);
  served = {
    "/": ["text/html", join(here, "uppy-packages", "page.html")],
    "/entry.js": ["text/javascript", join(built, "entry.js")],
    "/entry.css": ["text/css", join(built, "entry.css")],
  };
} else {
  const bundle = join(here, "node_modules", `uppy${test.version}`, "dist");
  served = {
    "/": ["text/html", join(here, "uppy.html")],
    "/uppy.min.js": ["text/javascript", join(bundle, "uppy.min.js")],
    "/uppy.min.css": ["text/css", join(bundle, "uppy.min.css")],
  };
}

const server = createServer(async (request, response) => {
  const [type, file] = served[new URL(request.url, origin).pathname] ?? [];
  if (!file) {
    response.writeHead(404).end("not here");
    return;
  }
  response.writeHead(200, { "content-type": type }).end(await readFile(file));
});
await new Promise((resolve) => server.listen(test.pagePort, "127.0.0.1", resolve));

const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 560 } });
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  const calls = [];
  page.on("request", (r) => {
    if (r.url().startsWith(test.service)) calls.push(`${r.method()} ${new URL(r.url()).pathname}`);
  });
  const signing = [];
  page.on("response", (r) => {
    if (r.url() !== `${test.service}/uploads/uppy/sign`) return;
    signing.push(r.json().then((answer) => ({ request: r.request().postDataJSON(), status: r.status(), answer }), () => null));
  });
  if (test.completeAs) {
    // Someone else's token on the completion: as if the upload id and key had leaked.
    const completing = (request) => {
      if (/\/s3\/multipart\/[^/]+\/complete/.test(request.url())) return true;
      const body = request.url().endsWith("/uploads/uppy/sign") ? request.postDataJSON() : null;
      return body?.method === "POST" && body?.uploadId != null;
    };
    await page.route(`${test.service}/**`, (route) => {
      const request = route.request();
      if (!completing(request)) return route.continue();
      const headers = { ...request.headers(), authorization: `Bearer ${test.completeAs}` };
      return route.continue({ headers });
    });
  }
  await page.addInitScript((t) => { window.TEST = t; }, test);
  await page.goto(`${origin}/`);
  await page.setInputFiles(".uppy-Dashboard-input >> nth=0", test.files);
  await page.click(".uppy-StatusBar-actionBtn--upload");
  try {
    await page.waitForFunction(() => window.results !== null, null, { timeout: 60000 });
  } catch (error) {
    // Say what Uppy got to, not only that it never finished.
    console.error(JSON.stringify({ error: String(error), calls, consoleErrors }));
    throw error;
  }
  // Let the Dashboard render the outcome.
  await page.waitForTimeout(300);
  const results = await page.evaluate(() => window.results);
  const shown = await page.evaluate(() => {
    const texts = [document.body.innerText];
    for (const el of document.querySelectorAll("[title], [aria-label], [data-microtip-position]")) {
      texts.push(el.getAttribute("title") ?? "", el.getAttribute("aria-label") ?? "");
    }
    return texts.join("\n");
  });
  if (test.screenshot) await page.screenshot({ path: test.screenshot });
  const signed = (await Promise.all(signing)).filter(Boolean);
  console.log(JSON.stringify({ ...results, shown, calls, consoleErrors, signed, awsS3: test.awsS3 ?? null }));
} finally {
  await browser.close();
  server.close();
  if (built) await rm(built, { recursive: true, force: true });
}
