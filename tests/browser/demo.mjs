// Drives the demo page in Debian's Chromium: picks a file, uploads it with a ticket and
// prints what the page ends up showing, as one JSON line.
// Usage: node demo.mjs <demo URL> <bearer token, or - for the one the page comes with>
//        <file> <yes|no: declare the size> [yes|no: declare the SHA-256, default yes]
//        [JSON: {multipartMiB, completeAs: another token for the multipart completion}]
import { launchChromium } from "./launch.mjs";

const [url, token, file, declare, checksum = "yes", more = "{}"] = process.argv.slice(2);
const options = JSON.parse(more);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (message) => { if (message.type() === "error") consoleErrors.push(message.text()); });
  if (options.completeAs) {
    // Someone else's token on the completion: as if the handle had leaked.
    await page.route("**/uploads/multipart/*/complete", (route) => {
      const headers = { ...route.request().headers(), authorization: `Bearer ${options.completeAs}` };
      return route.continue({ headers });
    });
  }
  await page.goto(url);
  const prefilled = await page.inputValue("#token");
  if (token !== "-") await page.fill("#token", token);
  await page.setInputFiles("#file", file);
  if (declare === "no") await page.uncheck("#declare");
  if (checksum === "no") await page.uncheck("#checksum");
  if (options.multipartMiB) await page.fill("#multipart", String(options.multipartMiB));
  await page.click("#upload");
  await page.waitForFunction(
    () => ["ok", "error"].includes(document.getElementById("status").className),
    null,
    { timeout: 60000 },
  );
  const result = await page.evaluate(() => ({
    outcome: document.getElementById("status").className,
    status: document.getElementById("status").textContent,
    progress: document.getElementById("progress").value,
    digest: document.getElementById("digest").textContent,
    answer: document.getElementById("answer").textContent,
    stored: document.getElementById("stored").textContent,
    event: document.getElementById("event").textContent,
    delivery: document.getElementById("delivery").textContent,
    listing: document.getElementById("listing").textContent,
    objects: [...document.querySelectorAll("#objects a")].map((a) => ({
      key: a.dataset.key, size: Number(a.dataset.size), href: a.href,
    })),
  }));
  console.log(JSON.stringify({ ...result, prefilled, consoleErrors }));
} finally {
  await browser.close();
}
