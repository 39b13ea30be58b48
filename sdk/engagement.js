/*
 * nginx-engagement player SDK: counts what a <video> really plays and sends
 * it to the module's endpoints (views, heartbeats, reactions), and shows the
 * live counts. No dependencies, no build step, no cookies.
 *
 *   <script src="/sdk/engagement.js"></script>          window.Engagement
 *   import Engagement from "/sdk/engagement.mjs";       an ES module
 *   const Engagement = require("nginx-engagement-sdk"); CommonJS (bundlers)
 *
 * Watch time is the sum of the media time that advanced while the video
 * played in a visible tab: pauses, seeks, buffering and hidden tabs add
 * nothing. See README "Player SDK".
 */
(function (g, make) {
    var E = make(g);
    if (typeof module === "object" && module.exports) {
        module.exports = E;
    }
    g.Engagement = E;
})(typeof self !== "undefined" ? self : globalThis, function (win) {
    "use strict";

    var doc = win.document, nav = win.navigator || {};
    var COUNTS = ["views", "engagedViews", "replays", "uniqueViewers",
                  "live", "peak", "likes"];

    /* 128 random bits as hex: works outside secure contexts too */
    function rid() {
        var a = new Uint8Array(16), s = "", i;
        win.crypto.getRandomValues(a);
        for (i = 0; i < 16; i++) {
            s += (a[i] + 256).toString(16).slice(1);
        }
        return s;
    }

    function attach(video, opts) {
        /* hls.js keeps its element in .media, dash.js behind a getter */
        video = video.media
                || (video.getVideoElement && video.getVideoElement())
                || video;

        var o = {
            endpoint: "/engagement", viewAfter: 0, engagedAfter: 30,
            heartbeat: 10, live: true, poll: 5, retries: 8, root: doc
        };
        /* an option given as undefined keeps its default */
        Object.keys(opts || {}).forEach(function (k) {
            if (opts[k] !== undefined) { o[k] = opts[k]; }
        });
        var cid = o.contentId;
        if (!cid) {
            throw new TypeError("Engagement.attach: contentId is required");
        }
        var base = o.endpoint.replace(/\/$/, "");
        var off = !!o.optOut || nav.globalPrivacyControl === true;
        var key = "engagement:" + cid, store, sid = o.sessionId;

        /* one session per tab and content: a reload keeps it, so the
           module's dedupe sees the same watch (sessionStorage, no cookie) */
        try {
            store = win.sessionStorage;
            sid = sid || store.getItem(key);
        } catch (e) { /* storage disabled: one session per page */ }
        sid = sid || rid();
        try {
            store.setItem(key, sid);
        } catch (e) { /* as above */ }

        /* a bootstrap location gives the signed token (bound to this
           session, which it is told) and may give the session itself */
        var token = o.token, ready = Promise.resolve();
        if (o.bootstrap) {
            ready = fetch(o.bootstrap + (/\?/.test(o.bootstrap) ? "&" : "?")
                          + "sessionId=" + encodeURIComponent(sid),
                          { credentials: "omit", cache: "no-store" })
                .then(function (r) { return r.json(); })
                .then(function (d) {
                    sid = d.sessionId || sid;
                    token = d.token || token;
                    try { store.setItem(key, sid); } catch (e) { /* */ }
                }, function () { /* events go without a token */ });
        }

        var user = o.userId || o.viewerId || sid;
        var handlers = {}, queue = [], timers = [], gone = false;
        var counts = { reactions: {} }, mine = null, reacting = 0;
        var played = 0, last = null, wall = 0, ended = false;
        var sentView = false, sentEngaged = false, hbMs = o.heartbeat * 1e3;
        var hbTimer = 0, es = null;

        function emit(type, data) {
            (handlers[type] || []).forEach(function (f) {
                try { f(data); } catch (e) { /* a listener's own error */ }
            });
        }

        /* the fields every body carries */
        function body(b) {
            b.contentId = cid;
            if (off) { b.optOut = true; }
            return b;
        }

        /* the body with the token and session as they are when it leaves */
        function stamp(item) {
            var t = typeof token === "function" ? token() : token;
            if (t) { item.body.token = t; }
            if (item.body.sessionId) { item.body.sessionId = sid; }
            return JSON.stringify(item.body);
        }

        function request(item, keepalive) {
            return fetch(base + item.path, {
                method: item.method, body: stamp(item),
                headers: { "Content-Type": "application/json" },
                credentials: "omit", keepalive: keepalive, cache: "no-store"
            });
        }

        /* send with retries: network errors, 503 and 429 are retried with
           exponential backoff (0.5 s doubling to 30 s: 8 retries cover
           about a minute and a half), never sooner than the answer's
           Retry-After; the requestId stays the same, so the module counts
           a retried event once */
        function send(path, method, b, cb, once) {
            var item = { path: path, method: method, n: 0, cb: cb,
                         body: body(Object.assign({ requestId: rid() }, b)) };
            if (!once) { queue.push(item); }
            attempt(item, once);
            return item;
        }

        function attempt(item, once) {
            var wait = 0;
            ready.then(function () {
                return request(item, true);
            }).then(function (r) {
                if (r.status !== 503 && r.status !== 429) {
                    return r.json().catch(function () { return null; })
                        .then(function (d) { done(item, r.status, d); });
                }
                wait = +r.headers.get("Retry-After");
                retry(item, wait, once);
            }, function () { retry(item, 0, once); });
        }

        function retry(item, wait, once) {
            if (gone || item.dead) { return; }
            if (once || ++item.n > o.retries) {
                return done(item, 0, null);
            }
            /* exponential with jitter, never sooner than Retry-After */
            var d = Math.max(wait * 1e3 || 0,
                             Math.min(3e4, 500 * Math.pow(2, item.n - 1))
                             * (0.5 + Math.random() / 2));
            item.t = setTimeout(function () { attempt(item); }, d);
        }

        function done(item, status, d) {
            var i = queue.indexOf(item);
            if (i >= 0) { queue.splice(i, 1); }
            emit("response", { path: item.path, method: item.method,
                               status: status, body: d,
                               requestId: item.body.requestId });
            if (item.cb) { item.cb(status, d); }
        }

        /* ---- counts, reactions and the marked elements ---- */

        /* own: the answer to a reaction; while one is on its way, other
           answers (state, summary, stream) leave the reactions as shown */
        function setCounts(d, own) {
            if (!d) { return; }
            var keep = reacting && !own;
            COUNTS.forEach(function (k) {
                if (typeof d[k] === "number" && !(keep && k === "likes")) {
                    counts[k] = d[k];
                }
            });
            if (d.reactions && !keep) { counts.reactions = d.reactions; }
            if ("reaction" in d && d.userId !== undefined && !keep) {
                mine = d.reaction;
            }
            render();
            emit("counts", counts);
        }

        function all(sel) {
            return o.root ? Array.prototype.slice.call(
                o.root.querySelectorAll(sel)) : [];
        }

        function ours(el) {
            var c = el.getAttribute("data-engagement-content");
            return !c || c === cid;
        }

        function render() {
            all("[data-engagement-count]").forEach(function (el) {
                var k = el.getAttribute("data-engagement-count"),
                    v = k === "reaction" ? mine || "-"
                        : k in counts ? counts[k] : counts.reactions[k];
                if (ours(el) && v !== undefined) { el.textContent = v; }
            });
            all("[data-engagement-reaction]").forEach(function (el) {
                if (ours(el)) {
                    el.setAttribute("aria-pressed", String(
                        el.getAttribute("data-engagement-reaction") === mine));
                }
            });
        }

        /* optimistic: the counts change at once, the answer corrects them,
           a refusal puts back what the server says */
        function react(type) {
            var prev = mine, r = Object.assign({}, counts.reactions);
            type = type === undefined ? "like" : type;
            if (type === prev) {
                return Promise.resolve(mine);
            }
            if (prev && r[prev] > 0) { r[prev]--; }
            if (type) { r[type] = (r[type] || 0) + 1; }
            mine = type;
            setCounts({ reactions: r, likes: r.like }, true);
            emit("reaction", { reaction: type, previous: prev });
            reacting++;
            return new Promise(function (res) {
                send("/like", type ? "POST" : "DELETE",
                     { userId: user, reaction: type || undefined },
                     function (st, d) {
                         reacting--;
                         if (st === 200 && d) {
                             setCounts(d, true);
                         } else {
                             mine = prev;
                             state();
                         }
                         res(mine);
                     });
            });
        }

        function state() {
            return fetch(base + "/state?contentId=" + encodeURIComponent(cid)
                         + "&userId=" + encodeURIComponent(user),
                         { credentials: "omit", cache: "no-store" })
                .then(function (r) { return r.ok ? r.json() : null; })
                .then(function (d) { setCounts(d); return mine; },
                      function () { return mine; });
        }

        function summary() {
            fetch(base + "/summary/" + encodeURIComponent(cid),
                  { credentials: "omit", cache: "no-store" })
                .then(function (r) { return r.ok ? r.json() : null; })
                .then(setCounts, function () { /* the next poll */ });
        }

        function poll() {
            summary();
            timers.push(setInterval(summary, o.poll * 1e3));
        }

        /* the SSE stream when the location exists; polling otherwise */
        function live() {
            if (!o.live) { return; }
            if (!win.EventSource) { return poll(); }
            es = new EventSource(base + "/live/" + encodeURIComponent(cid));
            es.onmessage = function (e) {
                try { setCounts(JSON.parse(e.data)); } catch (x) { /* */ }
            };
            es.onerror = function () {
                if (es.readyState === 2) {          /* CLOSED: no stream */
                    es = null;
                    poll();
                }
            };
        }

        /* ---- watch time, views, heartbeats ---- */

        function view(extra) {
            send("/view", "POST", Object.assign({
                sessionId: sid, viewerId: o.viewerId,
                durationMs: Math.round(played * 1e3)
            }, extra));
        }

        function check() {
            if (!sentView && played >= o.viewAfter) {
                sentView = true;
                view();
            }
            if (!sentEngaged && played >= o.engagedAfter) {
                sentEngaged = sentView = true;
                view();
            }
        }

        function visible() {
            return !doc || doc.visibilityState !== "hidden";
        }

        /* add the media time played since the last tick, if it was played:
           not seeking, not paused, visible, and no faster than the clock */
        function tick() {
            var t = video.currentTime, now = Date.now();
            if (last !== null && !video.paused && !video.seeking
                && visible())
            {
                var d = t - last;
                if (d > 0 && d <= (now - wall) / 1e3
                                  * (video.playbackRate || 1) + 0.5)
                {
                    played += d;
                }
            }
            last = video.paused || !visible() ? null : t;
            wall = now;
            if (!video.paused) { check(); }
        }

        function heartbeat(st, beacon) {
            var b = { sessionId: sid, viewerId: o.viewerId, state: st,
                      positionMs: Math.round(video.currentTime * 1e3) || 0 };
            /* a signed-in user's position goes to resume and history
               (never when the viewer opted out) */
            if (o.userId && !off) { b.userId = o.userId; }
            if (isFinite(video.duration) && video.duration > 0) {
                b.durationMs = Math.round(video.duration * 1e3);
            }
            if (beacon) {
                return toBeacon({ path: "/heartbeat", method: "POST",
                                  body: body(Object.assign(
                                      { requestId: rid() }, b)) });
            }
            send("/heartbeat", "POST", b, function (s, d) {
                if (d && d.intervalMs > 0) { hbMs = d.intervalMs; }
            }, true);
        }

        function beat() {
            clearTimeout(hbTimer);
            if (!video.paused && !gone) {
                heartbeat(video.readyState < 3 ? "buffering" : "playing");
                hbTimer = setTimeout(beat, hbMs);
            }
        }

        function toBeacon(item) {
            var s = stamp(item);
            try {
                if (item.method === "POST" && nav.sendBeacon(base + item.path,
                        new Blob([s], { type: "application/json" }))) {
                    return;
                }
            } catch (e) { /* a browser that refuses JSON beacons */ }
            request(item, true).catch(function () { /* leaving anyway */ });
        }

        /* leaving or hidden: the last heartbeat and every pending event go
           now, as beacons; on pagehide nothing is retried afterwards */
        function away(e) {
            if (e.type !== "pagehide" && visible()) {
                last = null;
                return;
            }
            tick();
            last = null;
            if (played > 0) {
                /* a page that goes away ends its session: the module
                   stops counting it live at once */
                heartbeat(ended || (e.type === "pagehide" && !e.persisted)
                          ? "ended" : video.paused ? "paused" : "playing",
                          true);
            }
            queue.forEach(toBeacon);
            if (e.type === "pagehide" && !e.persisted) {
                stop();
            }
        }

        var on = {
            playing: function () {
                last = video.currentTime;
                wall = Date.now();
                if (ended) {
                    ended = false;
                    view({ replay: true });
                    emit("replay", {});
                }
                check();
                beat();
            },
            timeupdate: tick,
            seeking: function () { last = null; },
            seeked: function () {
                last = video.paused ? null : video.currentTime;
                wall = Date.now();
            },
            pause: function () {
                tick();
                clearTimeout(hbTimer);
                if (!video.ended) { heartbeat("paused"); }
            },
            waiting: function () { tick(); },
            ended: function () {
                tick();
                ended = true;
                clearTimeout(hbTimer);
                heartbeat("ended");
            }
        };

        /* an interaction event (POST /event): a name the module declares
           with engagement_interaction, at the video's current position */
        function interact(name) {
            return new Promise(function (res) {
                send("/event", "POST", {
                    type: "click", name: name, sessionId: sid,
                    viewerId: o.viewerId,
                    positionMs: Math.round((video.currentTime || 0) * 1e3)
                }, function (st, d) { res({ status: st, body: d }); });
            });
        }

        function click(e) {
            var el = e.target.closest && e.target.closest(
                "[data-engagement-reaction]");
            if (el && o.root && o.root.contains(el) && ours(el)) {
                var t = el.getAttribute("data-engagement-reaction");
                react(t === mine || t === "" ? null : t);
            }
            el = e.target.closest && e.target.closest(
                "[data-engagement-interaction]");
            if (el && o.root && o.root.contains(el) && ours(el)) {
                interact(el.getAttribute("data-engagement-interaction"));
            }
        }

        function stop() {
            gone = true;
            Object.keys(on).forEach(function (k) {
                video.removeEventListener(k, on[k]);
            });
            win.removeEventListener("pagehide", away);
            if (doc) {
                doc.removeEventListener("visibilitychange", away);
                doc.removeEventListener("click", click);
            }
            clearTimeout(hbTimer);
            timers.forEach(clearInterval);
            queue.forEach(function (i) { i.dead = 1; clearTimeout(i.t); });
            queue = [];
            if (es) { es.close(); }
        }

        Object.keys(on).forEach(function (k) {
            video.addEventListener(k, on[k]);
        });
        win.addEventListener("pagehide", away);
        if (doc) {
            doc.addEventListener("visibilitychange", away);
            doc.addEventListener("click", click);
        }
        /* the user's reaction: only where the page can show or change it
           (a state read is a Redis read) */
        if (o.userId || all("[data-engagement-reaction]").length) {
            state();
        }
        live();

        return {
            get sessionId() { return sid; },
            counts: counts,
            get reaction() { return mine; },
            get played() { return played; },
            get pending() { return queue.length; },
            on: function (type, f) {
                (handlers[type] = handlers[type] || []).push(f);
                return this;
            },
            react: react,
            unreact: function () { return react(null); },
            interact: interact,
            state: state,
            flush: function () { queue.forEach(toBeacon); },
            detach: stop
        };
    }

    return { attach: attach, version: "0.1.0" };
});
