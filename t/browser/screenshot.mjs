// Takes docs/sdk-demo.png: the demo page of a running quick start
// (./build.sh run) with the video playing in two tabs and a reaction; the
// first tab plays the HLS version (hls.js, segments counted by nginx).
//   node t/browser/screenshot.mjs http://127.0.0.1:8080/ ../../docs/sdk-demo.png
import { chromium } from "playwright-core";

const [url = "http://127.0.0.1:8080/", out = "sdk-demo.png"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
});
try {
  const probe = await browser.newPage();
  // a viewer's Chromium: the module answers HeadlessChrome "bot"
  const userAgent = (await probe.evaluate(() => navigator.userAgent)).replace("HeadlessChrome", "Chrome");
  await probe.close();
  const pages = [];
  for (const source of ["hls", null]) {
    const ctx = await browser.newContext({ userAgent, viewport: { width: 860, height: 1300 } });
    const p = await ctx.newPage();
    await p.goto(source ? new URL(`?source=${source}`, url).href : url);
    await p.waitForFunction(() => window.player, null, { timeout: 10000 });
    await p.evaluate(() => document.querySelector("video").play());
    pages.push(p);
  }
  const p = pages[0];
  await p.click('[data-engagement-reaction="love"]');
  await p.waitForFunction(() => window.player.played >= 8.5, null, { timeout: 20000 });
  await p.evaluate(() => document.querySelector("video").pause());
  await p.waitForTimeout(2500);
  await p.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
