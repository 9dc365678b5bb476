// The emobench report page (`emobench report`) in headless Debian Chromium, from file://: no
// console error or failed request, every image decodes, every link resolves (in-page anchors to an
// element, relative links to a file in the site folder, nothing on the network), the gallery's
// filters change what is shown, and a linked scores row is revealed. Writes a screenshot.
//
//   node report_page.mjs SITE_DIR SCREENSHOT_PNG
//
// Lives beside participant.mjs so both browser tests share one playwright-core install.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";

const [siteDir, screenshot] = process.argv.slice(2);
if (!siteDir || !screenshot) {
  console.error("usage: node report_page.mjs SITE_DIR SCREENSHOT_PNG");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "emobench-chromium-"));
const problems = [];
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
  viewport: { width: 1400, height: 900 },
});
const summary = {};
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("requestfailed", (r) => problems.push("request failed: " + r.url()));
  page.on("request", (r) => { if (!r.url().startsWith("file:")) problems.push("network request: " + r.url()); });
  const index = path.resolve(siteDir, "index.html");
  await page.goto(pathToFileURL(index).href);

  // Lazy images load as they come into view: bring each one there, then wait for it.
  const images = await page.evaluate(async () => {
    const out = [];
    for (const img of Array.from(document.images)) {
      img.scrollIntoView({ block: "center" });
      if (!img.complete) await new Promise((r) => { img.addEventListener("load", r); img.addEventListener("error", r); });
      out.push({ src: img.getAttribute("src"), w: img.naturalWidth });
    }
    return out;
  });
  summary.images = images.length;
  for (const i of images) if (!(i.w > 0)) problems.push("image does not decode: " + i.src);

  const links = await page.evaluate(() => Array.from(document.querySelectorAll("a[href]")).map((a) => a.getAttribute("href")));
  summary.links = links.length;
  const ids = new Set(await page.evaluate(() => Array.from(document.querySelectorAll("[id]")).map((e) => e.id)));
  for (const href of links) {
    if (href.startsWith("#")) {
      if (!ids.has(decodeURIComponent(href.slice(1)))) problems.push("anchor without target: " + href);
    } else if (/^[a-z]+:/i.test(href) || href.startsWith("//")) {
      problems.push("link leaves the site: " + href);
    } else {
      const file = path.resolve(siteDir, decodeURIComponent(href.split("#")[0]));
      if (!file.startsWith(path.resolve(siteDir)) || !fs.existsSync(file)) problems.push("link to a missing file: " + href);
    }
  }

  // Filters: each target value shows exactly its rows; "all" shows every row again.
  const total = await page.locator("tr.gallery-row").count();
  summary.galleryRows = total;
  if (total > 0) {
    const targets = await page.evaluate(() => Array.from(document.querySelectorAll("#filter-target option")).map((o) => o.value).filter((v) => v !== "*"));
    const sources = await page.evaluate(() => Array.from(document.querySelectorAll("#filter-source option")).map((o) => o.value).filter((v) => v !== "*"));
    const visible = () => page.evaluate(() => Array.from(document.querySelectorAll("tr.gallery-row")).filter((r) => !r.hidden).map((r) => [r.dataset.sourceEmotion, r.dataset.target]));
    await page.selectOption("#filter-target", targets[0]);
    let v = await visible();
    if (!(v.length > 0 && v.length < total) && targets.length > 1) problems.push("target filter shows " + v.length + " of " + total);
    if (v.some((r) => r[1] !== targets[0])) problems.push("target filter shows other targets");
    await page.selectOption("#filter-source", sources[sources.length - 1]);
    v = await visible();
    if (v.some((r) => r[0] !== sources[sources.length - 1] || r[1] !== targets[0])) problems.push("source filter shows other rows");
    const counted = await page.textContent("#gallery-count");
    if (!counted.startsWith(v.length + " of " + total)) problems.push("count says " + counted + ", shown " + v.length);
    await page.selectOption("#filter-source", "*");
    await page.selectOption("#filter-target", "*");
    if ((await visible()).length !== total) problems.push("resetting the filters does not show every row");
    summary.filters = { targets: targets.length, sources: sources.length };

    // An image's link opens its scores row (inside folded details).
    const href = await page.evaluate(() => { const a = document.querySelector("tr.gallery-row a[href^='#score-']"); return a && a.getAttribute("href"); });
    if (href) {
      await page.click("tr.gallery-row a[href='" + href + "']");
      const shown = await page.evaluate((id) => { const el = document.getElementById(id); return !!el && el.offsetParent !== null; }, href.slice(1));
      if (!shown) problems.push("following " + href + " does not show its row");
      summary.followed = href;
    } else if (ids.has("scores")) {
      problems.push("no gallery image links to a scores row");
    }
  }
  summary.traces = await page.locator("details.trace").count();
  summary.sections = await page.evaluate(() => Array.from(document.querySelectorAll("main > section")).map((s) => s.id));
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: screenshot, fullPage: false });
} catch (e) {
  problems.push("script: " + (e && e.stack ? e.stack : e));
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify({ summary, problems }));
process.exit(problems.length ? 1 : 0);
