// Drives the demo page in Debian's Chromium: picks a file, uploads it with a ticket and
// prints what the page ends up showing, as one JSON line.
// Usage: node demo.mjs <demo URL> <bearer token, or - for the one the page comes with>
//        <file> <yes|no: declare the size> [yes|no: declare the SHA-256, default yes]
import { chromium } from "playwright-core";

const [url, token, file, declare, checksum = "yes"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // No sandbox as root; no background traffic: this machine has no network.
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
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
