// The quick start's demo page as HLS, in a real browser: Playwright drives
// Debian's Chromium (headless) against nginx running conf-examples/
// quickstart.conf itself (as `./build.sh run` serves it) and a real
// redis-server, both started here and stopped by PID. The page plays the
// demo video's ffmpeg-made 2 s HLS segments with hls.js (npm ci in
// conf-examples), each segment URL carrying the SDK's session and a token
// from /engagement/token: nginx credits the segments it serves to that
// session (engagement_segments, a view at 6 s served) and the SDK sends its
// beacons (a view at 2 s played) for the same session. Played past the
// policy, the view and the engaged view count exactly once; played less,
// nothing counts. Counts are read from the module's endpoints (summary,
// status, analytics) and Redis, never from the page. If Chromium, hls.js
// or another part is missing, every case is SKIPPED with the reason.
//
//   cd t/browser && npm ci && node --test hls.test.mjs
//   (./build.sh test browser runs it with engagement.test.mjs)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { Quickstart, Redis, freePort, hlsJs, makePrefix, missing, sleep, waitFor } from "./servers.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
let browser, nginx, redis, prefix, ua, why = null;
const run = Date.now().toString(36);

before(async () => {
  why = missing();
  if (why) { why = "missing: " + why; return; }
  if (!hlsJs()) {
    why = "hls.js is not installed (npm ci in conf-examples; ./build.sh test browser runs it)";
    return;
  }
  try {
    const { chromium } = await import("playwright-core");
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true,
      args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
    });
  } catch (e) {
    why = `Chromium cannot start (${CHROMIUM}): ${String(e.message).split("\n")[0]}`;
    return;
  }
  const c = await browser.newContext();
  ua = (await (await c.newPage()).evaluate(() => navigator.userAgent)).replace("HeadlessChrome", "Chrome");
  await c.close();
  prefix = makePrefix();
  const rp = await freePort();
  redis = await new Redis(prefix, rp).start();
  nginx = await new Quickstart(prefix, await freePort([rp]), rp).start();
});

after(async () => {
  if (browser) await browser.close();
  if (nginx) await nginx.stop();
  if (redis) await redis.stop();
  if (prefix && !process.env.KEEP) fs.rmSync(prefix, { recursive: true, force: true });
  if (why) console.log(`# SKIP HLS browser tests: ${why}`);
});

function skip(t) {
  if (why) { t.skip(why); return true; }
  return false;
}

// an answer the page got (a view's with its JSON body, listed once read)
async function record(p, r) {
  const u = new URL(r.url());
  const e = { path: u.pathname, query: u.searchParams, status: r.status() };
  if (u.pathname === "/engagement/view") e.body = await r.json().catch(() => null);
  p.got.push(e);
}

// the demo page as a viewer's Chromium (the module takes HeadlessChrome for
// a bot, for beacons and segments alike), every answer it got recorded
async function open(t, query) {
  const ctx = await browser.newContext({ userAgent: ua });
  t.after(() => ctx.close().catch(() => {}));
  const p = await ctx.newPage();
  p.errors = [];
  p.got = [];
  p.sent = [];                            // every request's path, answered or not
  p.on("pageerror", e => p.errors.push(String(e)));
  p.on("request", r => p.sent.push(new URL(r.url()).pathname));
  p.on("response", r => record(p, r));
  await p.goto(`${nginx.url}/?${new URLSearchParams(query)}`);
  return p;
}

// the HLS page is ready when hls.js has parsed the playlist
async function openHls(t, c) {
  const p = await open(t, { source: "hls", content: c });
  await p.waitForFunction(() => window.player && document.body.dataset.hls === "ready",
                          null, { timeout: 10000 })
    .catch(e => { throw new Error(`the HLS page did not start: ${p.errors.join("; ") || e.message}`); });
  return p;
}

const play = p => p.evaluate(() => document.querySelector("video").play());
const played = p => p.evaluate(() => window.player.played);
const summary = async c => (await nginx.get(`/engagement/summary/${c}`)).body;
const segStatus = async () => (await nginx.get("/engagement/status?format=json")).body.segments;
const totals = c => {
  const h = redis.cli("HGETALL", `eng:{c:${c}}`).split("\n");
  const o = {};
  for (let i = 0; i + 1 < h.length; i += 2) o[h[i]] = +h[i + 1];
  return o;
};
const segments = p => p.got.filter(g => /^\/hls\/[^/]+\/seg\d+\.ts$/.test(g.path));
const beacons = p => p.got.filter(g => g.path === "/engagement/view");
const delta = (a, b, k) => (b[k] || 0) - (a[k] || 0);

test("the HLS demo played past the policy: the view and the engaged view count exactly once", async t => {
  if (skip(t)) return;
  const c = `hls1-${run}`;
  const s0 = await segStatus();
  const p = await openHls(t, c);
  const sid = await p.evaluate(() => window.player.sessionId);
  // the playlist is read before play, no segment is
  assert.ok(p.got.some(g => g.path === `/hls/${c}/index.m3u8` && g.status === 200), "the playlist");
  assert.deepEqual(segments(p), [], "no segment before play");
  await play(p);
  await p.waitForFunction(() => document.querySelector("video").ended, null, { timeout: 25000 });
  await waitFor(async () => (await summary(c)).engagedViews === 1, 15000, "the engaged view in the summary");
  await waitFor(() => totals(c).engaged === 1, 15000, "the engaged view in Redis");
  await sleep(2500);                      // two more flushes: nothing else comes
  const s = await summary(c);
  assert.deepEqual([s.views, s.engagedViews, s.replays], [1, 1, 0], JSON.stringify(s));
  assert.deepEqual([totals(c).views, totals(c).engaged], [1, 1]);

  // hls.js fetched each of the five segments once, with the SDK's session
  // and a token in the URL, and nginx credited all five: 10 s
  const seg = segments(p);
  assert.deepEqual(seg.map(g => g.path).sort(), [0, 1, 2, 3, 4].map(i => `/hls/${c}/seg${i}.ts`));
  assert.ok(seg.every(g => g.status === 200 && g.query.get("es") === sid
                           && /^1\.\d+\./.test(g.query.get("et"))), "session and token in each URL");
  const s1 = await segStatus();
  assert.equal(delta(s0, s1, "credited"), 5, "five segments credited");
  assert.equal(Math.round((s1.creditedSeconds - s0.creditedSeconds) * 1000), 10000, "10 s credited");
  assert.equal(delta(s0, s1, "replayed") + delta(s0, s1, "tokenBadSignature") + delta(s0, s1, "bots"), 0);

  // both sides asked the policy twice (view, engaged): the SDK's beacons
  // (at 2 s and 8 s played) and the segments (at 6 s and 10 s served);
  // of the four decisions one counted the view and one the engaged view,
  // the others were duplicates of the same session
  await waitFor(() => beacons(p).length === 2, 10000, "the two beacons' answers");
  const b = beacons(p);
  const metrics = b.flatMap(x => (x.body && x.body.metrics) || []);
  const bView = metrics.filter(m => m === "view").length;
  const bEngaged = metrics.filter(m => m === "engaged").length;
  const segDecisions = delta(s0, s1, "views") + delta(s0, s1, "engaged") + delta(s0, s1, "duplicates");
  assert.equal(segDecisions, 2, `segment decisions: ${JSON.stringify(s1)}`);
  assert.equal(bView + delta(s0, s1, "views"), 1, "the view counted once, by one side");
  assert.equal(bEngaged + delta(s0, s1, "engaged"), 1, "the engaged view counted once, by one side");
  assert.equal(b.filter(x => x.status === 200 && x.body.reason === "duplicate").length
               + delta(s0, s1, "duplicates"), 2, "the other two were duplicates");
  console.log(`# beacons: ${b.map(x => x.status + " " + JSON.stringify(x.body)).join(", ")}; ` +
              `segments: views +${delta(s0, s1, "views")}, engaged +${delta(s0, s1, "engaged")}, ` +
              `duplicates +${delta(s0, s1, "duplicates")}`);

  // the analytics endpoint (buckets from Redis) has the one view too
  const from = Math.floor(Date.now() / 1000) - 600;
  await waitFor(async () => (await nginx.get(
      `/engagement/analytics?contentId=${c}&metric=views&step=minute&from=${from}`)).body
      ?.total?.views === 1, 15000, "1 view in the analytics");
  assert.deepEqual(p.errors, []);
});

test("the HLS demo played less than the policy: no view, from the beacons or the segments", async t => {
  if (skip(t)) return;
  const c = `hls2-${run}`;
  const s0 = await segStatus();
  const p = await openHls(t, c);
  await play(p);
  await waitFor(async () => await played(p) >= 1.2, 8000, "1.2 s played");
  await p.evaluate(() => document.querySelector("video").pause());
  const at = await played(p);
  assert.ok(at < 2, `paused at ${at} s of play, before the 2 s policy`);
  await sleep(3000);                      // hls.js settles; three flushes
  const s1 = await segStatus();
  // nginx served and credited segments to the session, under 6 s of them
  const credited = Math.round((s1.creditedSeconds - s0.creditedSeconds) * 1000);
  assert.ok(delta(s0, s1, "credited") >= 1 && credited >= 2000 && credited < 6000,
            `credited ${delta(s0, s1, "credited")} segments, ${credited} ms`);
  assert.deepEqual(segments(p).map(g => g.status), Array(delta(s0, s1, "credited")).fill(200));
  console.log(`# paused at ${at.toFixed(2)} s played: ${delta(s0, s1, "credited")} segments, ` +
              `${credited} ms served and credited`);
  assert.equal(delta(s0, s1, "views") + delta(s0, s1, "engaged") + delta(s0, s1, "duplicates"), 0,
               "the segments never reached the policy");
  assert.deepEqual(beacons(p), [], "the SDK sent no view");
  const s = await summary(c);
  assert.deepEqual([s.views, s.engagedViews], [0, 0], JSON.stringify(s));
  assert.equal(totals(c).views, undefined, "no view in Redis");
  // it was a viewer all the same: live while it fetched and played
  assert.ok(p.got.some(g => g.path === "/engagement/heartbeat" && g.status === 200), "heartbeats");
  assert.deepEqual(p.errors, []);
});

test("the HLS demo reloaded mid-play: same session, no second view, replayed segments earn nothing", async t => {
  if (skip(t)) return;
  const c = `hls3-${run}`;
  const s0 = await segStatus();
  const p = await openHls(t, c);
  const sid = await p.evaluate(() => window.player.sessionId);
  await play(p);
  await waitFor(async () => (await summary(c)).views === 1, 10000, "the view in the summary");
  const before = p.got.length, sentBefore = p.sent.length;
  await p.reload();
  await p.waitForFunction(() => window.player && document.body.dataset.hls === "ready",
                          null, { timeout: 10000 });
  assert.equal(await p.evaluate(() => window.player.sessionId), sid, "same session after the reload");
  await play(p);
  await waitFor(async () => await played(p) >= 3, 8000, "3 s played again");
  await p.evaluate(() => document.querySelector("video").pause());
  await waitFor(() => beacons(p).length === 2, 15000, "the second page's view beacon");
  await sleep(2000);
  const s1 = await segStatus();
  const s = await summary(c);
  // (at most 8 s of distinct segments served: under the engaged view's 10 s)
  assert.deepEqual([s.views, s.engagedViews], [1, 0], JSON.stringify(s));
  assert.equal(totals(c).views, 1, "one view in Redis");
  const again = segments({ got: p.got.slice(before) });
  assert.ok(again.length >= 2, `the reloaded page fetched segments again (${again.length})`);
  assert.ok(again.every(g => g.query.get("es") === sid), "with the same session");
  // a segment fetched before is a replay, a new one is credited. A request
  // of the first page cut by the reload may have been served (credited by
  // nginx) without the page seeing the answer: the bounds take the segments
  // the first page answered and those it asked for
  const isSeg = x => /^\/hls\/[^/]+\/seg\d+\.ts$/.test(x);
  const answered = new Set(segments({ got: p.got.slice(0, before) }).map(g => g.path));
  const asked = new Set(p.sent.slice(0, sentBefore).filter(isSeg));
  const replaysOf = seen => {
    const s = new Set(seen);
    let n = 0;
    for (const g of again) { if (s.has(g.path)) n++; else s.add(g.path); }
    return n;
  };
  const [least, most] = [replaysOf(answered), replaysOf(asked)];
  assert.ok(least >= 1, "the reloaded page fetched segments it had before");
  const replayed = delta(s0, s1, "replayed");
  assert.ok(replayed >= least && replayed <= most,
            `each one a replay, nothing credited twice: ${replayed} replayed, ` +
            `${least}..${most} seen by the page`);
  const distinct = new Set(segments(p).map(g => g.path)).size;
  const requested = new Set(p.sent.filter(isSeg)).size;
  const credited = delta(s0, s1, "credited");
  assert.ok(credited >= distinct && credited <= requested,
            `each segment credited once: ${credited}, ${distinct} answered, ${requested} asked for`);
  console.log(`# first page ${answered.size} segments (${asked.size} asked for), after the reload ` +
              `${again.length} (${replayed} replayed), ${credited * 2} s credited`);
  const b = beacons(p);
  assert.equal(b.filter(x => x.body && x.body.counted).length + delta(s0, s1, "views"), 1,
               `one view counted: ${JSON.stringify(b.map(x => x.body))}, segments ${JSON.stringify(s1)}`);
  assert.equal(b[1].body.reason, "duplicate", "the second page's beacon");
  assert.deepEqual(p.errors, []);
});

test("without hls.js the HLS demo says so and plays the WebM file", async t => {
  if (skip(t)) return;
  const c = `nohls-${run}`;
  const ctx = await browser.newContext({ userAgent: ua });
  t.after(() => ctx.close().catch(() => {}));
  await ctx.route("**/lib/hls.js/**", r => r.fulfill({ status: 404, body: "" }));
  const p = await ctx.newPage();
  p.got = [];
  p.on("response", r => record(p, r));
  await p.goto(`${nginx.url}/?source=hls&content=${c}`);
  await p.waitForFunction(() => window.player && document.querySelector("video").readyState >= 1,
                          null, { timeout: 10000 });
  assert.match(await p.textContent("#source-note"), /hls\.js is not installed/);
  assert.match(await p.evaluate(() => document.querySelector("video").currentSrc), /\/media\/demo\.webm$/);
  await play(p);
  await waitFor(async () => (await summary(c)).views === 1, 8000, "the view in the summary");
  await waitFor(() => beacons(p).length === 1, 3000, "the view's answer");
  assert.deepEqual(beacons(p).map(b => [b.status, b.body.metrics]), [[202, ["view"]]]);
});

test("the demo page's WebM file still plays and counts one view at 2 s", async t => {
  if (skip(t)) return;
  const c = `file1-${run}`;
  const p = await open(t, { content: c });
  await p.waitForFunction(() => window.player && document.querySelector("video").readyState >= 1,
                          null, { timeout: 10000 });
  assert.match(await p.evaluate(() => document.querySelector("video").currentSrc), /\/media\/demo\.webm$/);
  await play(p);
  await waitFor(async () => await played(p) >= 2.5, 8000, "2.5 s played");
  await waitFor(async () => (await summary(c)).views === 1, 15000, "the view in the summary");
  await waitFor(() => totals(c).views === 1, 15000, "the view in Redis");
  await waitFor(() => beacons(p).length === 1, 3000, "the view's answer");
  assert.deepEqual(beacons(p).map(b => [b.status, b.body.metrics]), [[202, ["view"]]]);
  assert.deepEqual(segments(p), []);
  assert.deepEqual(p.errors, []);
});

test("the token location refuses what is not an id with a JSON error", async t => {
  if (skip(t)) return;
  const r = await fetch(`${nginx.url}/engagement/token?contentId=a%20b&sessionId=s`);
  assert.equal(r.status, 400);
  assert.match((await r.json()).error, /contentId and sessionId/);
  const ok = await nginx.get("/engagement/token?contentId=a&sessionId=s");
  assert.equal(ok.status, 200);
  assert.match(ok.body.token, /^1\.\d+\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{43}$/);
});
