// The creator dashboard: reads the module's JSON endpoints and draws them
// with hand-written SVG and HTML bars; no library, no build step.
//   /engagement/summary/{id}     totals
//   /engagement/live?contentId=  watching now
//   /engagement/analytics?...    views over time, breakdowns
//   /engagement/trending?...     the trending list
"use strict";

const base = "/engagement";
const ranges = {
  "1h":  { secs: 3600,       step: "minute" },
  "24h": { secs: 86400,      step: "hour" },
  "30d": { secs: 30 * 86400, step: "day" }
};
const fmt = new Intl.NumberFormat("en");

function $(sel, root) { return (root || document).querySelector(sel); }

function setErr(card, text) {
  const e = $("[data-err]", card);
  if (e) e.textContent = text || "";
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) {
    const why = body && (body.message || body.error) ? (body.message || body.error) : r.statusText;
    throw new Error(r.status + " " + why);
  }
  return body;
}

// the analytics answer's points, as [{t, v}] for one metric
function points(doc, metric) {
  return (doc.points || []).map(p => ({ t: p.t, v: Number(p[metric]) || 0 }));
}

// the analytics answer with by=: {value: total over the range}
function breakdown(doc, metric) {
  const out = {};
  const series = doc.series || {};
  for (const k of Object.keys(series)) {
    out[k] = (series[k] || []).reduce((a, p) => a + (Number(p[metric]) || 0), 0);
  }
  return out;
}

function label(t, step) {
  const d = new Date(t * 1000);
  const iso = d.toISOString();
  return step === "day" ? iso.slice(5, 10) : iso.slice(11, 16);
}

function drawSeries(svg, pts, step) {
  const W = 800, H = 220, L = 44, B = 22, T = 10, R = 8;
  const max = Math.max(1, ...pts.map(p => p.v));
  const n = Math.max(1, pts.length);
  const bw = (W - L - R) / n;
  const y = v => T + (H - T - B) * (1 - v / max);
  let s = "";
  for (const f of [0, 0.5, 1]) {
    const v = Math.round(max * f);
    s += `<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`
       + `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${fmt.format(v)}</text>`;
  }
  pts.forEach((p, i) => {
    const h = H - B - y(p.v);
    s += `<rect x="${(L + i * bw + bw * 0.1).toFixed(1)}" y="${y(p.v).toFixed(1)}" `
       + `width="${Math.max(1, bw * 0.8).toFixed(1)}" height="${Math.max(0, h).toFixed(1)}" `
       + `fill="#3a6fd8" data-t="${p.t}" data-v="${p.v}"><title>${label(p.t, step)}: ${p.v}</title></rect>`;
  });
  const every = Math.max(1, Math.ceil(n / 8));
  pts.forEach((p, i) => {
    if (i % every === 0) {
      s += `<text x="${(L + i * bw + bw / 2).toFixed(1)}" y="${H - 6}" text-anchor="middle">${label(p.t, step)}</text>`;
    }
  });
  svg.innerHTML = s;
}

function drawBars(box, totals) {
  const rows = Object.entries(totals).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, 8);
  const max = Math.max(1, ...rows.map(r => r[1]));
  box.innerHTML = rows.length ? "" : '<p class="muted">no views in this range</p>';
  for (const [k, v] of rows) {
    const d = document.createElement("div");
    d.dataset.value = k;
    d.innerHTML = `<span></span><i style="width:${(100 * v / max).toFixed(1)}%"></i><em>${fmt.format(v)}</em>`;
    d.firstChild.textContent = k;
    box.appendChild(d);
  }
}

async function totals(id) {
  const card = $("#totals");
  $("[data-field=content]", card).textContent = id;
  try {
    const s = await getJSON(`${base}/summary/${encodeURIComponent(id)}`);
    for (const k of ["views", "engagedViews", "replays", "uniqueViewers", "likes"]) {
      const v = s[k];
      $(`[data-kpi=${k}]`, card).textContent = v === undefined || v === null ? "-" : fmt.format(v);
    }
    setErr(card, "");
  } catch (e) {
    setErr(card, "summary: " + e.message);
  }
  try {
    const l = await getJSON(`${base}/live?contentId=${encodeURIComponent(id)}`);
    $("[data-kpi=live]", card).textContent = fmt.format(l.live || 0);
  } catch (e) {
    $("[data-kpi=live]", card).textContent = "-";
  }
}

async function series(id, range) {
  const card = $("#series");
  const r = ranges[range];
  const now = Math.floor(Date.now() / 1000);
  const q = `contentId=${encodeURIComponent(id)}&from=${now - r.secs}&to=${now}&step=${r.step}&metric=views`;
  try {
    const doc = await getJSON(`${base}/analytics?${q}`);
    const pts = points(doc, "views");
    drawSeries($("svg", card), pts, r.step);
    const sum = pts.reduce((a, p) => a + p.v, 0);
    $("[data-note]", card).textContent = `${fmt.format(sum)} views in ${pts.length} ${r.step}s`;
    card.dataset.sum = sum;
    setErr(card, "");
  } catch (e) {
    setErr(card, "analytics: " + e.message);
  }
}

async function breakdowns(id, range) {
  const r = ranges[range];
  const now = Math.floor(Date.now() / 1000);
  for (const by of ["country", "device", "source"]) {
    const card = $(`#by-${by}`);
    const q = `contentId=${encodeURIComponent(id)}&from=${now - r.secs}&to=${now}&step=${r.step}&metric=views&by=${by}`;
    try {
      drawBars($(".bars", card), breakdown(await getJSON(`${base}/analytics?${q}`), "views"));
      setErr(card, "");
    } catch (e) {
      setErr(card, "analytics: " + e.message);
    }
  }
}

async function trending(win) {
  const card = $("#trending");
  try {
    const doc = await getJSON(`${base}/trending?window=${win}&limit=10`);
    const ol = $("ol", card);
    ol.innerHTML = "";
    for (const it of doc.items || []) {
      const li = document.createElement("li");
      li.dataset.content = it.contentId;
      li.innerHTML = "<a href='#'></a> <small></small>";
      li.firstChild.textContent = it.contentId;
      li.firstChild.addEventListener("click", ev => {
        ev.preventDefault();
        $("#pick").content.value = it.contentId;
        refresh();
      });
      li.lastChild.textContent = `${fmt.format(it.views || 0)} views`
        + (it.viewsPerMinute !== undefined ? `, ${Number(it.viewsPerMinute).toFixed(1)}/min` : "");
      ol.appendChild(li);
    }
    if (!ol.children.length) ol.innerHTML = '<p class="muted">nothing trending yet</p>';
    setErr(card, "");
  } catch (e) {
    setErr(card, "trending: " + e.message);
  }
}

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  const f = $("#pick");
  const id = f.content.value.trim() || "demo-video";
  const params = new URLSearchParams({ content: id, range: f.range.value, window: f.window.value });
  history.replaceState(null, "", "?" + params);
  try {
    await Promise.all([totals(id), series(id, f.range.value), breakdowns(id, f.range.value), trending(f.window.value)]);
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } finally {
    busy = false;
  }
}

(function start() {
  const p = new URLSearchParams(location.search);
  const f = $("#pick");
  if (p.get("content")) f.content.value = p.get("content");
  if (ranges[p.get("range")]) f.range.value = p.get("range");
  if (p.get("window")) f.window.value = p.get("window");
  f.addEventListener("submit", ev => { ev.preventDefault(); refresh(); });
  refresh();
  setInterval(refresh, 5000);
})();
