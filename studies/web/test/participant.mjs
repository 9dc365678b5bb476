// Scripted participant: opens a design folder's index.html in headless Debian Chromium, consents,
// answers every trial (checks correctly, real trials by a fixed rule, alternating keyboard and
// mouse), and saves the CSV the page downloads.
//
//   node participant.mjs DESIGN_DIR OUT_CSV [SET] [SCREENSHOT_PNG]
//
// Real trials: the reference on odd trial numbers, the baseline on even ones (see choose()).
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [designDir, outCsv, set = "p001", screenshot = ""] = process.argv.slice(2);
if (!designDir || !outCsv) {
  console.error("usage: node participant.mjs DESIGN_DIR OUT_CSV [SET] [SCREENSHOT_PNG]");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "emobench-chromium-"));

// Chooses "left"/"right" for a trial: checks correctly; real trials pick the reference
// (emoeditor) when the trial number is odd, the baseline otherwise.
function choose(t) {
  if (t.kind === "check") return t.correct_side;
  const refLeft = t.left_method === "emoeditor";
  const wantRef = t.trial % 2 === 1;
  return refLeft === wantRef ? "left" : "right";
}

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  acceptDownloads: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
  viewport: { width: 1200, height: 800 },
});
let code = 0;
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => { console.error("page error:", e.message); code = 1; });
  const url = pathToFileURL(path.resolve(designDir, "index.html")).href +
    "?platform=lab&participant=scripted-1&set=" + encodeURIComponent(set);
  await page.goto(url);
  await page.waitForSelector("#screen-consent:not([hidden])");
  if (!(await page.isDisabled("#start-button"))) throw new Error("start enabled before consent");
  await page.check("#consent-check");
  await page.click("#start-button");
  await page.waitForSelector("#screen-trial:not([hidden])");
  const n = await page.evaluate(() => window.EMOBENCH_PAGE.state.trials.length);
  // The page must not advance without an answer: other keys do nothing.
  await page.waitForFunction(() => !window.EMOBENCH_PAGE.state.locked);
  await page.keyboard.press("Space");
  await page.keyboard.press("Enter");
  if ((await page.evaluate(() => window.EMOBENCH_PAGE.state.index)) !== 0) throw new Error("a key skipped a trial");
  const downloadPromise = page.waitForEvent("download");
  for (let i = 0; i < n; i++) {
    await page.waitForFunction((k) => window.EMOBENCH_PAGE.state.index === k && !window.EMOBENCH_PAGE.state.locked, i);
    if (i === 1 && screenshot) await page.screenshot({ path: screenshot });
    const progress = await page.textContent("#progress-text");
    if (progress !== "Trial " + (i + 1) + " of " + n) throw new Error("progress shows " + progress);
    const t = await page.evaluate((k) => window.EMOBENCH_PAGE.state.trials[k], i);
    const side = choose(t);
    await page.waitForTimeout(20);
    if (i % 2 === 0) await page.keyboard.press(side === "left" ? "f" : "ArrowRight");
    else await page.click(side === "left" ? "#choice-left" : "#choice-right");
  }
  await page.waitForSelector("#screen-done:not([hidden])");
  const download = await downloadPromise;
  await download.saveAs(outCsv);
  console.log("answered " + n + " trials; saved " + outCsv);
} catch (e) {
  console.error(e && e.stack ? e.stack : String(e));
  code = 1;
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(code);
