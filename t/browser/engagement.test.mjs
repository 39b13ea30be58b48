// The player SDK in a real browser: Playwright drives Debian's Chromium
// (headless) against a real nginx with the built module and a real
// redis-server, both started here and stopped by PID. Every case asserts
// what the server counted (Redis, the summary, the state endpoint, the
// access log), never the SDK's own idea of it. Cases get content ids of
// their own, so they share the servers. If Chromium (or another part)
// cannot start, every case is SKIPPED with the reason: never a silent pass.
//
//   cd t/browser && npm ci && node --test engagement.test.mjs
//   (./build.sh test runs it after the .t suite; ./build.sh test browser alone)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { Nginx, Redis, ROOT, freePort, makePrefix, missing, sleep, waitFor } from "./servers.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
let browser, nginx, redis, prefix, ua, why = null;
const run = Date.now().toString(36);

before(async () => {
  why = missing();
  if (why) { why = "missing: " + why; return; }
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
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
  nginx = await new Nginx(prefix, await freePort([rp]), rp).start();
});

after(async () => {
  if (browser) await browser.close();
  if (nginx) await nginx.stop();
  if (redis) await redis.stop();
  if (prefix && !process.env.KEEP) fs.rmSync(prefix, { recursive: true, force: true });
  if (why) console.log(`# SKIP browser tests: ${why}`);
});

// a page of its own (a new context: its own sessionStorage), as a viewer's
// Chromium, not a headless one: the module answers HeadlessChrome "bot"
async function open(t, query, page = "page.html", init = null) {
  const ctx = await browser.newContext({ userAgent: ua });
  t.after(() => ctx.close().catch(() => {}));
  if (init) await ctx.addInitScript(init);
  const p = await ctx.newPage();
  p.on("pageerror", e => { p.errors = (p.errors || []).concat(String(e)); });
  await p.goto(`${nginx.url}/${page}?${new URLSearchParams(query)}`);
  await p.waitForFunction(() => window.player && document.querySelector("video").readyState >= 1,
                          null, { timeout: 10000 })
    .catch(e => { throw new Error(`${page} did not start: ${p.errors || e.message}`); });
  return p;
}

const play = p => p.evaluate(() => document.querySelector("video").play());
const pause = p => p.evaluate(() => document.querySelector("video").pause());
const played = p => p.evaluate(() => window.player.played);
const totals = c => {
  const h = redis.cli("HGETALL", `eng:{c:${c}}`).split("\n");
  const o = {};
  for (let i = 0; i + 1 < h.length; i += 2) o[h[i]] = +h[i + 1];
  return o;
};
const lines = (c, uri) => nginx.access().filter(l => l.content === c && l.uri === uri);

function skip(t) {
  if (why) { t.skip(why); return true; }
  return false;
}

test("the SDK is under 6 KB minified and gzipped, with no dependencies", async () => {
  const { minify } = await import("terser");
  const src = fs.readFileSync(path.join(ROOT, "sdk/engagement.js"), "utf8");
  const min = (await minify(src, { compress: true, mangle: true })).code;
  const gz = zlib.gzipSync(min, { level: 9 }).length;
  console.log(`# sdk/engagement.js: ${src.length} bytes, ${min.length} minified, ${gz} minified+gzip`);
  assert.ok(gz < 6144, `${gz} bytes minified+gzip`);
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "sdk/package.json"), "utf8"));
  assert.deepEqual(pkg.dependencies || {}, {});
  assert.doesNotMatch(min, /\bimport\b|\brequire\(|document\.cookie/);
});

test("played past the policy: the view and the engaged view count once", async t => {
  if (skip(t)) return;
  const c = `v1-${run}`;
  const p = await open(t, { content: c });
  await play(p);
  await waitFor(async () => await played(p) >= 4.6, 15000, "4.6 s played");
  await waitFor(() => totals(c).engaged === 1, 5000, "the engaged view in Redis");
  await sleep(600);                       // three flushes: nothing more comes
  assert.deepEqual([totals(c).views, totals(c).engaged], [1, 1]);
  const s = await nginx.get(`/engagement/summary/${c}`);
  assert.equal(s.body.views, 1);
  assert.equal(s.body.engagedViews, 1);
  // two events were sent: the view at 2 s and the engaged view at 4 s
  const v = lines(c, "/engagement/view");
  assert.deepEqual(v.map(l => l.status), [202, 202], JSON.stringify(v));
  assert.ok(!p.errors, String(p.errors));
});

test("a restart after the end is a replay, not a second view", async t => {
  if (skip(t)) return;
  const c = `v2-${run}`;
  const p = await open(t, { content: c });
  await p.evaluate(() => { document.querySelector("video").playbackRate = 4; });
  await play(p);
  await p.waitForFunction(() => document.querySelector("video").ended, null, { timeout: 15000 });
  await play(p);
  await waitFor(() => totals(c).replays === 1, 5000, "the replay in Redis");
  await sleep(600);
  const r = totals(c);
  assert.deepEqual([r.views, r.engaged, r.replays], [1, 1, 1]);
});

test("paused before the policy, then a seek forward: no view; played on: one view", async t => {
  if (skip(t)) return;
  const c = `v3-${run}`;
  const p = await open(t, { content: c });
  await play(p);
  await waitFor(async () => await played(p) >= 1, 5000, "1 s played");
  await pause(p);
  await p.evaluate(() => { document.querySelector("video").currentTime = 7; });
  await p.waitForFunction(() => !document.querySelector("video").seeking);
  await sleep(1500);                      // several flushes
  assert.equal(totals(c).views, undefined, "no view in Redis");
  assert.equal((await nginx.get(`/engagement/summary/${c}`)).body.views, 0);
  assert.deepEqual(lines(c, "/engagement/view"), [], "no view event was sent");
  // 6 s of media skipped but never played: the view needs 1 s more play
  await play(p);
  await waitFor(() => totals(c).views === 1, 8000, "the view in Redis");
  const v = lines(c, "/engagement/view");
  assert.equal(v.length, 1);
  const ms = JSON.parse(v[0].body).durationMs;
  assert.ok(ms >= 2000 && ms < 3500, `sent at 2 s of play, not 8 s of media: durationMs ${ms}`);
});

test("time in a hidden tab is not watch time", async t => {
  if (skip(t)) return;
  const c = `v9-${run}`;
  const p = await open(t, { content: c });
  await play(p);
  await waitFor(async () => await played(p) >= 1, 5000, "1 s played");
  // the tab goes to the background while the video keeps playing
  await p.evaluate(() => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
    document.dispatchEvent(new Event("visibilitychange"));
  });
  const t0 = await p.evaluate(() => document.querySelector("video").currentTime);
  await sleep(2500);
  const t1 = await p.evaluate(() => document.querySelector("video").currentTime);
  assert.ok(t1 - t0 >= 2, `the video played on while hidden (${t0} -> ${t1})`);
  assert.deepEqual(lines(c, "/engagement/view"), [], "no view: 1 s played while visible");
  assert.equal(totals(c).views, undefined);
  // hiding sent the heartbeat now, as a beacon
  assert.ok(lines(c, "/engagement/heartbeat").length >= 2);
  await p.evaluate(() => {
    delete document.visibilityState;
    document.dispatchEvent(new Event("visibilitychange"));
  });
  await waitFor(() => totals(c).views === 1, 5000, "the view once visible again");
  const ms = JSON.parse(lines(c, "/engagement/view")[0].body).durationMs;
  assert.ok(ms >= 2000 && ms < 3500, `durationMs ${ms}: the hidden 2.5 s not in it`);
});

test("a reload mid-play after the view does not count it again", async t => {
  if (skip(t)) return;
  const c = `v4-${run}`;
  const p = await open(t, { content: c, engagedAfter: 60 });
  const sid = await p.evaluate(() => window.player.sessionId);
  await play(p);
  await waitFor(() => totals(c).views === 1, 10000, "the view in Redis");
  await p.reload();
  await p.waitForFunction(() => window.player && document.querySelector("video").readyState >= 1);
  assert.equal(await p.evaluate(() => window.player.sessionId), sid, "same session after the reload");
  await play(p);
  await waitFor(() => lines(c, "/engagement/view").length === 2, 10000, "the second page's view event");
  await sleep(600);
  assert.equal(totals(c).views, 1, "still one view in Redis");
  assert.deepEqual(lines(c, "/engagement/view").map(l => [l.status, l.reason]),
                   [[202, ""], [200, "duplicate"]]);
});

test("like, love, unlike: the counts and the state follow", async t => {
  if (skip(t)) return;
  const c = `v5-${run}`, u = `u5-${run}`;
  const p = await open(t, { content: c, user: u });
  const state = async () => (await nginx.get(`/engagement/state?contentId=${c}&userId=${u}`)).body;
  // optimistic: the page shows the like before the server has answered
  // (the request is held on its way out until the page was checked, then
  // sent as it was)
  let release;
  const held = new Promise(r => { release = r; });
  await p.route("**/engagement/like", async r => { await held; await r.continue(); });
  await p.click('[data-engagement-reaction="like"]');
  await p.waitForFunction(() => document.querySelector('[data-engagement-count="like"]').textContent === "1"
                          && document.querySelector('[data-engagement-reaction="like"]').getAttribute("aria-pressed") === "true",
                          null, { timeout: 1500 });
  assert.equal(lines(c, "/engagement/like").length, 0, "shown before the request reached nginx");
  release();
  await waitFor(() => lines(c, "/engagement/like").length === 1, 5000, "the held like at nginx");
  await p.unroute("**/engagement/like");
  await waitFor(async () => (await state()).reaction === "like", 5000, "like in the state");
  let s = await state();
  assert.equal(s.likes, 1);
  assert.equal(s.reactions.love, 0);
  await p.click('[data-engagement-reaction="love"]');
  await waitFor(async () => (await state()).reaction === "love", 5000, "love in the state");
  s = await state();
  assert.deepEqual([s.likes, s.reactions.like, s.reactions.love], [0, 0, 1]);
  assert.equal(await p.getAttribute('[data-engagement-reaction="love"]', "aria-pressed"), "true");
  await p.click('[data-engagement-reaction="love"]');      // again: take it back
  await waitFor(async () => (await state()).reaction === null, 5000, "no reaction in the state");
  s = await state();
  assert.deepEqual([s.likes, s.reactions.like, s.reactions.love], [0, 0, 0]);
  assert.equal(totals(c)["r:love"], 0);
  // the page shows what the server said
  await p.waitForFunction(() => document.querySelector('[data-engagement-count="love"]').textContent === "0");
  // a refused reaction (a type the module does not know) is put back
  assert.equal(await p.evaluate(() => window.player.react("bogus")), null);
  assert.equal((await state()).reaction, null);
  await p.waitForFunction(() => document.querySelector('[data-engagement-count="reaction"]').textContent === "-");
  assert.deepEqual(lines(c, "/engagement/like").map(l => [l.method, l.status]),
                   [["POST", 200], ["POST", 200], ["DELETE", 200], ["POST", 400]]);
});

test("Global Privacy Control: every event says optOut, the module counts it anonymously", async t => {
  if (skip(t)) return;
  const c = `v11-${run}`;
  const anon = async () => (await nginx.get("/engagement/status?format=json")).body.zones
    .find(z => z.kind === "counters").anonymous_total;
  const before = await anon();
  const p = await open(t, { content: c }, "page.html", () => {
    Object.defineProperty(Navigator.prototype, "globalPrivacyControl", { get: () => true });
  });
  await play(p);
  await waitFor(() => totals(c).views === 1, 8000, "the view in Redis");
  const sent = [...lines(c, "/engagement/view"), ...lines(c, "/engagement/heartbeat")];
  assert.ok(sent.length >= 2);
  for (const l of sent) assert.match(l.body, /"optOut":true/, l.uri);
  assert.ok(await anon() > before, "anonymous_total went up");
});

test("closing the page sends the last heartbeat as a beacon: the session ends, live at once", async t => {
  if (skip(t)) return;
  const c = `v6-${run}`;
  const p = await open(t, { content: c });
  await play(p);
  await waitFor(async () => await played(p) >= 1, 5000, "1 s played");
  await pause(p);
  await waitFor(() => lines(c, "/engagement/heartbeat").some(l => /"state":"paused"/.test(l.body)),
                5000, "the pause heartbeat");
  const before = lines(c, "/engagement/heartbeat").length;
  const pos = await p.evaluate(() => Math.round(document.querySelector("video").currentTime * 1000));
  await p.close({ runBeforeUnload: true });
  const hb = await waitFor(() => lines(c, "/engagement/heartbeat").slice(before)[0], 5000,
                           "a heartbeat after the page closed");
  assert.equal(hb.status, 200);
  assert.match(hb.body, new RegExp(`"state":"ended".*"positionMs":${pos}\\b|"positionMs":${pos}\\b.*"state":"ended"`));
  // the module stopped counting the session at once, not two intervals later
  assert.equal((await nginx.get(`/engagement/live?contentId=${c}`)).body.live, 0);
});

test("a signed-in user's heartbeats carry the position: resume answers where the video was paused", async t => {
  if (skip(t)) return;
  const c = `v12-${run}`, u = `u12-${run}`;
  const p = await open(t, { content: c, user: u });
  await play(p);
  await waitFor(async () => await played(p) >= 1, 5000, "1 s played");
  await pause(p);
  const pos = await p.evaluate(() => Math.round(document.querySelector("video").currentTime * 1000));
  const dur = await p.evaluate(() => Math.round(document.querySelector("video").duration * 1000));
  const got = await waitFor(async () => {
    const r = (await nginx.get(`/engagement/resume?contentId=${c}&userId=${u}`)).body;
    return r && r.positionMs === pos ? r : null;
  }, 5000, `resume at ${pos} ms`);
  assert.equal(got.durationMs, dur, "the video's duration came with it");
  // and it reached Redis, not only the edge's pending table (the playing
  // heartbeat's position may land first; the paused one wins)
  await waitFor(() => redis.cli("HGET", `eng:{u:${u}}:resume`, c).split(":")[0] === String(pos),
                5000, `the position ${pos} in Redis`);
});

test("the live count reaches the demo page through the SSE stream", async t => {
  if (skip(t)) return;
  const c = `v7-${run}`;
  const p = await open(t, { content: c }, "index.html");
  await play(p);
  // one live viewer (this page), as the module's JSON endpoint says too
  await p.waitForFunction(() => document.querySelector('[data-engagement-count="live"]').textContent === "1",
                          null, { timeout: 8000 });
  assert.equal((await nginx.get(`/engagement/live?contentId=${c}`)).body.live, 1);
  const st = (await nginx.get("/engagement/status?format=json")).body;
  assert.ok(st.live.subscribers >= 1, `a stream is open: ${JSON.stringify(st.live)}`);
  // a view counted elsewhere shows on the page without a poll
  const r = await fetch(`${nginx.url}/engagement/view`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ contentId: c, sessionId: "other", durationMs: 5000 })
  });
  assert.equal(r.status, 202);
  const want = String((await nginx.get(`/engagement/summary/${c}`)).body.views);
  await p.waitForFunction(w => document.querySelector('[data-engagement-count="views"]').textContent === w,
                          want, { timeout: 3000 });
  assert.deepEqual(nginx.access().filter(l => l.uri === `/engagement/summary/${c}` && l.method === "GET"
                                             && l.status === 200).length, 1,
                   "no summary polling by the page (the one read is the test's)");
});

test("without EventSource the page polls the summary", async t => {
  if (skip(t)) return;
  const c = `v10-${run}`;
  const r = await fetch(`${nginx.url}/engagement/view`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ contentId: c, sessionId: "elsewhere", durationMs: 5000 })
  });
  assert.equal(r.status, 202);
  const p = await open(t, { content: c, sse: "0" });
  await p.waitForFunction(() => document.querySelector('[data-engagement-count="views"]').textContent === "1",
                          null, { timeout: 3000 });
  assert.ok(nginx.access().some(l => l.uri === `/engagement/summary/${c}` && l.status === 200),
            "the page read the summary");
  assert.ok(!nginx.access().some(l => l.uri === `/engagement/live/${c}`), "and opened no stream");
});

test("a signed token from a bootstrap location goes with the view", async t => {
  if (skip(t)) return;
  const c = `v12-${run}`;
  const p = await open(t, { content: c, endpoint: "/guarded", live: "0",
                            bootstrap: `/guarded/bootstrap?contentId=${c}` });
  const sid = await p.evaluate(() => window.player.sessionId);
  await play(p);
  await waitFor(() => totals(c).views === 1, 8000, "the view in Redis");
  const v = lines(c, "/guarded/view");
  assert.equal(v.length, 1);
  assert.equal(v[0].status, 202);
  assert.match(v[0].body, /"token":"1\.\d+\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{43}"/);
  assert.match(v[0].body, new RegExp(`"sessionId":"${sid}"`));
  assert.ok(nginx.access().some(l => l.uri === "/guarded/bootstrap" && l.status === 200));
  // without the bootstrap the module refuses the view: the token mattered
  const c2 = `v12b-${run}`;
  const p2 = await open(t, { content: c2, endpoint: "/guarded", live: "0" });
  await play(p2);
  const r = await waitFor(() => lines(c2, "/guarded/view")[0], 8000, "the view without a token");
  assert.equal(r.status, 403);
  assert.equal(totals(c2).views, undefined);
});

test("a 429 is retried after its Retry-After, with the same requestId", async t => {
  if (skip(t)) return;
  const c = `v13-${run}`, u = `u13-${run}`;
  const p = await open(t, { content: c, user: u, endpoint: "/limited", live: "0" });
  await p.click('[data-engagement-reaction="like"]');
  await waitFor(() => lines(c, "/limited/like").length === 1, 5000, "the like");
  await p.click('[data-engagement-reaction="love"]');
  await waitFor(() => lines(c, "/limited/like").length === 3, 8000, "the love, refused then retried");
  const [like, refused, retried] = lines(c, "/limited/like");
  assert.deepEqual([like.status, refused.status, retried.status], [200, 429, 200]);
  assert.equal(JSON.parse(retried.body).requestId, JSON.parse(refused.body).requestId);
  // the limit's Retry-After is 2 s; the SDK's own first backoff is 0.5 s at most
  assert.ok(retried.ts - refused.ts >= 1.5, `retried ${(retried.ts - refused.ts).toFixed(2)} s later`);
  const s = (await nginx.get(`/engagement/state?contentId=${c}&userId=${u}`)).body;
  assert.deepEqual([s.reaction, s.likes, s.reactions.love], ["love", 0, 1]);
});

// last: it kills Redis
test("Redis killed mid-play and restarted: the view and the like arrive after recovery", async t => {
  if (skip(t)) return;
  const c = `v8-${run}`, u = `u8-${run}`;
  const p = await open(t, { content: c, user: u });
  await play(p);
  await redis.kill();
  await waitFor(() => lines(c, "/engagement/view").length === 1, 8000, "the view event");
  assert.equal(lines(c, "/engagement/view")[0].status, 202, "counted in shared memory");
  await p.click('[data-engagement-reaction="love"]');
  await waitFor(() => lines(c, "/engagement/like").some(l => l.status === 503), 5000,
                "a 503 for the like while Redis is down");
  await sleep(1500);
  await redis.start();
  await waitFor(() => totals(c).views === 1, 10000, "the view in the new Redis");
  await waitFor(async () => (await nginx.get(`/engagement/state?contentId=${c}&userId=${u}`)).body?.reaction === "love",
                15000, "the like retried into Redis");
  assert.equal(totals(c)["r:love"], 1);
  const like = lines(c, "/engagement/like");
  assert.equal(like.at(-1).status, 200);
  assert.equal(new Set(like.map(l => JSON.parse(l.body).requestId)).size, 1,
               "every retry carried the same requestId");
});

test("a click on a [data-engagement-interaction] button is an interaction event, counted once per click", async t => {
  if (skip(t)) return;
  const c = `v9-${run}`;
  const p = await open(t, { content: c });
  await play(p);
  await p.click('[data-engagement-interaction="subscribe_button"]');
  await p.click('[data-engagement-interaction="subscribe_button"]');
  await waitFor(() => lines(c, "/engagement/event").length === 2, 5000, "two interaction events");
  assert.deepEqual(lines(c, "/engagement/event").map(l => l.status), [202, 202]);
  const body = JSON.parse(lines(c, "/engagement/event")[0].body);
  assert.equal(body.type, "click");
  assert.equal(body.name, "subscribe_button");
  assert.ok(Number.isInteger(body.positionMs) && body.positionMs >= 0, "the video's position");
  // counted in Redis's buckets, read back through the analytics endpoint
  const from = Math.floor(Date.now() / 1000) - 600;
  await waitFor(async () => (await nginx.get(
      `/engagement/analytics?contentId=${c}&metric=click:subscribe_button&step=minute&from=${from}`)).body
      ?.total?.["click:subscribe_button"] === 2, 10000, "2 clicks in the analytics");
});

test("the dashboard shows the numbers the endpoints give", async t => {
  if (skip(t)) return;
  const c = `d1-${run}`, other = `d2-${run}`;
  const send = (cid, i, device, source) => fetch(`${nginx.url}/engagement/view`, {
    method: "POST", headers: { "Content-Type": "application/json", "User-Agent": ua },
    body: JSON.stringify({ contentId: cid, sessionId: `ds-${cid}-${i}`, durationMs: 5000,
                           device, source })
  }).then(r => r.status);
  const devices = ["mobile", "mobile", "desktop", "tv", "mobile", "desktop"];
  const codes = [];
  for (let i = 0; i < 6; i++) codes.push(await send(c, i, devices[i], i % 2 ? "search" : "feed"));
  for (let i = 0; i < 3; i++) codes.push(await send(other, i, "tv", "feed"));
  assert.deepEqual(codes, Array(9).fill(202));
  const from = Math.floor(Date.now() / 1000) - 3600;
  const an = q => nginx.get(`/engagement/analytics?contentId=${c}&from=${from}&step=minute&metric=views${q}`);
  await waitFor(async () => (await an("")).body?.total?.views === 6, 10000, "6 views in the analytics");
  await waitFor(async () => {
    const s = (await an("&by=device")).body?.series || {};
    return (s.mobile || []).reduce((a, p) => a + p.views, 0) === 3;
  }, 10000, "the device breakdown");
  await waitFor(async () => ((await nginx.get("/engagement/trending?window=5m&limit=10")).body?.items || [])
                .some(i => i.contentId === c), 15000, "the content in trending");

  const ctx = await browser.newContext({ userAgent: ua, viewport: { width: 1100, height: 900 } });
  t.after(() => ctx.close().catch(() => {}));
  const p = await ctx.newPage();
  const errors = [];
  p.on("pageerror", e => errors.push(String(e)));
  await p.goto(`${nginx.url}/dashboard.html?content=${c}&range=1h&window=5m`);
  await p.waitForFunction(() => +document.body.dataset.loaded >= 1, null, { timeout: 10000 });
  assert.deepEqual(errors, []);
  assert.deepEqual(await p.$$eval("[data-err]", els => els.map(e => e.textContent).filter(Boolean)), [],
                   "no card shows an error");
  const summary = (await nginx.get(`/engagement/summary/${c}`)).body;
  assert.equal(await p.textContent('[data-kpi="views"]'), String(summary.views));
  assert.equal(summary.views, 6);
  assert.equal(await p.getAttribute("#series", "data-sum"), "6", "the chart's bars sum to the series");
  // the page and the endpoint read at the same minute: a minute that
  // begins between the two reads shifts the points, so read both again
  let bars, pts;
  for (let i = 0; i < 3; i++) {
    // the page asks for [now - 1h, now] at its load: the same window here
    const now = Math.floor(Date.now() / 1000), m0 = Math.floor(now / 60);
    await p.reload();
    await p.waitForFunction(() => +document.body.dataset.loaded >= 1, null, { timeout: 10000 });
    bars = await p.$$eval("#series rect", rs => rs.map(r => +r.dataset.v));
    pts = (await nginx.get(`/engagement/analytics?contentId=${c}&from=${now - 3600}&to=${now}` +
                           "&step=minute&metric=views")).body.points.map(x => x.views);
    if (Math.floor(Date.now() / 60000) === m0) break;
  }
  assert.deepEqual(bars, pts, "one bar per point, as the endpoint answers");
  const dev = await p.$$eval("#by-device .bars div", ds => ds.map(d => [d.dataset.value, d.querySelector("em").textContent]));
  assert.deepEqual(dev, [["mobile", "3"], ["desktop", "2"], ["tv", "1"]]);
  const src = await p.$$eval("#by-source .bars div", ds => ds.map(d => [d.dataset.value, d.querySelector("em").textContent]));
  assert.deepEqual(src.sort(), [["feed", "3"], ["search", "3"]]);
  const tr = (await nginx.get("/engagement/trending?window=5m&limit=10")).body.items.map(i => i.contentId);
  const shown = await p.$$eval("#trending li", ls => ls.map(l => l.dataset.content));
  assert.deepEqual(shown, tr, "the trending list as the endpoint answers it");
  if (process.env.DASHBOARD_PNG) await p.screenshot({ path: process.env.DASHBOARD_PNG, fullPage: true });
});
