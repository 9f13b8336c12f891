// Drives the demo page in Debian's Chromium: picks a file, uploads it with a ticket and
// prints what the page ends up showing, as one JSON line.
// Usage: node demo.mjs <demo URL> <bearer token, or - for the one the page comes with>
//        <file> <yes|no: declare the size> [yes|no: declare the SHA-256, default yes]
import { launchChromium } from "./launch.mjs";

const [url, token, file, declare, checksum = "yes"] = process.argv.slice(2);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (message) => { if (message.type() === "error") consoleErrors.push(message.text()); });
  await page.goto(url);
  const prefilled = await page.inputValue("#token");
  if (token !== "-") await page.fill("#token", token);
  await page.setInputFiles("#file", file);
  if (declare === "no") await page.uncheck("#declare");
  if (checksum === "no") await page.uncheck("#checksum");
  await page.click("#upload");
  await page.waitForFunction(
    () => ["ok", "error"].includes(document.getElementById("status").className),
    null,
    { timeout: 30000 },
  );
  const result = await page.evaluate(() => ({
    outcome: document.getElementById("status").className,
    status: document.getElementById("status").textContent,
    progress: document.getElementById("progress").value,
    digest: document.getElementById("digest").textContent,
    answer: document.getElementById("answer").textContent,
    stored: document.getElementById("stored").textContent,
    listing: document.getElementById("listing").textContent,
    objects: [...document.querySelectorAll("#objects a")].map((a) => ({
      key: a.dataset.key, size: Number(a.dataset.size), href: a.href,
    })),
  }));
  console.log(JSON.stringify({ ...result, prefilled, consoleErrors }));
} finally {
  await browser.close();
}
