// Takes docs/dashboard.png: the creator dashboard of a running quick start
// (./build.sh run) after some traffic.
//   node t/browser/dashboard-screenshot.mjs http://127.0.0.1:8080/ ../../docs/dashboard.png
import { chromium } from "playwright-core";

const [url = "http://127.0.0.1:8080/", out = "dashboard.png"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"]
});
try {
  const probe = await browser.newPage();
  // a viewer's Chromium: the module answers HeadlessChrome "bot"
  const userAgent = (await probe.evaluate(() => navigator.userAgent)).replace("HeadlessChrome", "Chrome");
  await probe.close();
  const ctx = await browser.newContext({ userAgent, viewport: { width: 1120, height: 900 } });
  const p = await ctx.newPage();
  await p.goto(new URL("dashboard.html?content=demo-video&range=1h&window=5m", url).href);
  await p.waitForFunction(() => +document.body.dataset.loaded >= 1, null, { timeout: 15000 });
  await p.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
