'use strict';
// Turns a run (harness.js) into results.json, results.md, plot.dat,
// plot.gp and plot.png (gnuplot) under bench/results/<timestamp>/, and,
// for full runs, docs/benchmarks.md.

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

// ------------------------------------------------------------ statistics

function quantile(xs, q) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i];
}

function median(xs) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function summary(xs) {
  xs = xs.filter((x) => Number.isFinite(x));
  if (!xs.length) return null;
  return { med: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

// ------------------------------------------------------------ formatting

function num(x, d) {
  if (!Number.isFinite(x)) return '–';
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

// "54.2k (50.1–56.0k)" style cells; d decimals; unit 'k' divides by 1000
function cell(s, d, k) {
  if (!s) return '–';
  const f = (x) => (k ? num(x / 1000, d) : num(x, d));
  const suffix = k ? 'k' : '';
  if (s.n === 1 || f(s.min) === f(s.max)) return `${f(s.med)}${suffix}`;
  return `${f(s.med)}${suffix} (${f(s.min)}–${f(s.max)}${suffix})`;
}

function ratioCell(s) {
  if (!s) return '–';
  const f = (x) => num(x, 2);
  if (s.n === 1 || f(s.min) === f(s.max)) return `${f(s.med)}×`;
  return `${f(s.med)}× (${f(s.min)}–${f(s.max)})`;
}

function signed(x) {
  return `${x > 0 ? '+' : x < 0 ? '−' : ''}${Math.abs(x).toLocaleString('en-US')}`;
}

// ------------------------------------------------------------ aggregation

// the ceiling of the main tables' ratio columns: the JSON ceiling (issue
// 13's targets are stated against it) when the run has it
function mainCeiling(ceilings) {
  return ceilings.find((c) => (c.sys || c).name === 'ceiling-json') || ceilings[0];
}

function aggregate(run) {
  const byRound = {};
  for (const r of run.results) {
    if (r.ok) (byRound[r.round] = byRound[r.round] || {})[r.system] = r;
  }
  const ceilings = run.systems.filter((s) => s.ceiling);
  const rows = [];
  for (const sys of run.systems.filter((x) => !x.only)) {
    const rs = run.results.filter((r) => r.system === sys.name);
    const ok = rs.filter((r) => r.ok);
    const row = { sys, rounds: rs, ok };
    const pick = (f) => ok.map(f).filter((x) => x !== undefined && x !== null);
    row.rps = summary(pick((r) => r.views.rps));
    row.p50 = summary(pick((r) => r.views.p50_ms));
    row.p99 = summary(pick((r) => r.views.p99_ms));
    row.cpu = summary(pick((r) => r.views.cpu_us_per_req));
    row.redisCmds = summary(pick((r) => r.views.redis_cmds_per_event));
    row.redisCpu = summary(pick((r) => r.views.redis_cpu_us_per_event));
    row.totalCpu = summary(pick((r) => r.views.cpu_us_per_req
      + (r.views.redis_cpu_us_per_event || 0) * (r.views.accepted / (r.views.requests + r.views.probe_http))));
    row.exact = pick((r) => r.views.exactness);
    row.fresh = [].concat(...pick((r) => r.views.freshness_ms));
    row.freshTimeouts = pick((r) => r.views.freshness_timeouts).reduce((a, b) => a + b, 0);
    row.reads = {
      rps: summary(pick((r) => r.reads && r.reads.rps)),
      p50: summary(pick((r) => r.reads && r.reads.p50_ms)),
      p99: summary(pick((r) => r.reads && r.reads.p99_ms)),
      cpu: summary(pick((r) => r.reads && r.reads.cpu_us_per_req)),
      redisCmds: summary(pick((r) => r.reads && r.reads.redis_cmds_per_req)),
      redisCpu: summary(pick((r) => r.reads && r.reads.redis_cpu_us_per_req)),
    };
    // paired ratios: this system and each ceiling in the same round
    row.vs = {};
    for (const ceiling of ceilings) {
      if (ceiling === sys) continue;
      const rr = [];
      const cr = [];
      const rrr = [];
      for (const r of ok) {
        const c = byRound[r.round] && byRound[r.round][ceiling.name];
        if (!c) continue;
        rr.push(r.views.rps / c.views.rps);
        cr.push(r.views.cpu_us_per_req / c.views.cpu_us_per_req);
        if (r.reads && c.reads) rrr.push(r.reads.rps / c.reads.rps);
      }
      row.vs[ceiling.name] = { rps: summary(rr), cpu: summary(cr), reads: summary(rrr) };
    }
    // the main ceiling's, for the columns of the main tables
    const first = mainCeiling(ceilings);
    if (first && first !== sys) {
      row.rpsRatio = row.vs[first.name].rps;
      row.cpuRatio = row.vs[first.name].cpu;
      row.readsRatio = row.vs[first.name].reads;
    }
    const zones = ok.map((r) => r.zone).filter(Boolean);
    if (zones.length) {
      const z = (f) => summary(zones.map(f).filter((x) => Number.isFinite(x)));
      row.zone = {
        entries: z((x) => x.dedupe_entries),
        used: z((x) => x.dedupe_size - x.dedupe_free),
        size: zones[0].dedupe_size,
        perEntry: z((x) => x.dedupe_bytes_per_entry),
        cEntries: z((x) => x.counters_entries),
        cPerEntry: z((x) => x.counters_bytes_per_entry),
        evictions: zones.reduce((a, x) => a + (x.dedupe_evictions || 0), 0),
      };
    }
    rows.push(row);
  }
  return rows;
}

function status(row) {
  if (row.sys.skipped) return `skipped: ${row.sys.skipped}`;
  if (row.sys.failed) return `failed: ${row.sys.failed}`;
  const bad = row.rounds.filter((r) => !r.ok);
  if (!row.ok.length) return `failed in every round: ${bad.length ? bad[0].error : 'not run'}`;
  if (bad.length) return `failed in round(s) ${bad.map((r) => r.round).join(', ')}: ${bad[0].error}`;
  return null;
}

// one line, no table-breaking pipes, paths relative to the repository
function clean(text, root, max = 400) {
  let t = String(text).replace(/\s+/g, ' ').trim();
  if (root) t = t.split(root + '/').join('');
  t = t.replace(/\|/g, '\\|');
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

function exactCell(row) {
  if (!row.exact.length) return row.sys.ceiling ? 'n/a' : '–';
  const all = row.exact.every((x) => x === row.exact[0]);
  if (all) return row.exact.length > 1 ? `${signed(row.exact[0])} (all rounds)` : signed(row.exact[0]);
  return row.exact.map(signed).join(' / ');
}

function freshCell(row) {
  if (!row.sys.counts && row.sys.ceiling) return 'n/a';
  if (!row.fresh.length) return row.freshTimeouts ? `never (${row.freshTimeouts} timeouts)` : '–';
  const d = (x) => (x < 10 ? num(x, 1) : num(x, 0));
  let s = `${d(quantile(row.fresh, 0.5))} / ${d(quantile(row.fresh, 0.99))} (${row.fresh.length} events`;
  s += row.freshTimeouts ? `, ${row.freshTimeouts} never seen)` : ')';
  return s;
}

// ------------------------------------------------------------- markdown

// the instruction count (harness.js, instructions()): table and note
function instructionsMd(run, { functions }) {
  const ins = run.instructions;
  if (!ins) return [];
  const L = [];
  L.push('### Instructions per request (callgrind, one worker)');
  L.push('');
  if (ins.error) {
    L.push(`Not measured: ${clean(ins.error, run.root)}`);
    L.push('');
    return L;
  }
  if (!ins.systems.length) return [];
  const mix = ins.mix || {};
  L.push(`Each system once more, with one nginx worker under \`valgrind --tool=callgrind\``
    + ` (${ins.valgrind || 'valgrind'}; no cache simulation), serving the first`
    + ` ${num(ins.requests, 0)} events of the view workload (seed ${ins.seed}: ${num(mix.new, 0)} new,`
    + ` ${num(mix.retry, 0)} exact retries, ${num(mix.progress, 0)} progress repeats,`
    + ` ${num(mix.malformed, 0)} malformed), one at a time on one keep-alive connection, then stopped`
    + ' gracefully; and once serving none. Instructions per request = (the worker\'s instructions'
    + ` with the load − without) / ${num(ins.requests, 0)}. Instruction counts do not depend on the`
    + ' machine\'s load or clock: a change of a few percent shows even on a busy machine'
    + ' (they are not time: cache misses, locks and system calls\' kernel work are not in them).');
  L.push('');
  const ceils = ins.systems.filter((x) => x.ok && run.systems.some((s) => s.ceiling && s.name === x.system));
  const red = ins.systems.some((x) => x.redis_cmds_per_req !== undefined);
  const ch = ceils.map((c) => ` × ${c.system} |`).join('');
  L.push(`| system | instructions / request |${ch} by object (instructions / request) | answers |${red ? ' Redis cmds / request |' : ''} wall time |`);
  L.push(`|---|---|${ceils.map(() => '---|').join('')}---|---|${red ? '---|' : ''}---|`);
  for (const x of ins.systems) {
    if (!x.ok) {
      L.push(`| ${x.system} | failed: ${clean(x.error, run.root, 200)} |${ceils.map(() => ' |').join('')} | |${red ? ' |' : ''} ${num(x.wall_s, 1)} s |`);
      continue;
    }
    const rc = ceils.map((c) => ` ${x === c ? '1×' : `${num(x.ir_per_req / c.ir_per_req, 2)}×`} |`).join('');
    const objs = (x.objects || []).filter((o) => o.ir_per_req >= 1).slice(0, 5)
      .map((o) => `${o.object.replace(/\.so(\.[\d.]+)?$/, '')} ${num(o.ir_per_req, 0)}`).join(', ');
    const answers = Object.entries(x.load.status).sort()
      .map(([k, v]) => `${k}: ${num(v, 0)}`).join(', ');
    L.push(`| ${x.system}${x.logged_errors || x.warning ? ' ⚠' : ''} | ${num(x.ir_per_req, 0)} |${rc}`
      + ` ${objs || '–'} | ${answers} |`
      + `${red ? ` ${x.redis_cmds_per_req !== undefined ? num(x.redis_cmds_per_req, 3) : '–'} |` : ''}`
      + ` ${num(x.wall_s, 1)} s |`);
  }
  L.push('');
  for (const name of ['module', 'module-redis']) {
    const mod = ins.systems.find((x) => x.ok && x.system === name);
    if (!mod || !ceils.length) continue;
    L.push(`${name}: ${ceils.map((c) => `${num(mod.ir_per_req / c.ir_per_req, 2)}× ${c.system}'s`
      + ` instructions per request (${num(mod.ir_per_req - c.ir_per_req, 0)} more)`).join(', ')}.`);
    L.push('');
  }
  const jc = ceils.find((c) => c.system === 'ceiling-json');
  const jm = ins.systems.find((x) => x.ok && x.system === 'module');
  const c204 = ceils.find((c) => c.system === 'ceiling');
  const cd = ins.systems.find((x) => x.ok && x.system === 'ceiling-discard');
  if (c204 && cd) {
    const read = c204.ir_per_req - cd.ir_per_req;
    L.push(`Reading the body into a buffer (ceiling, \`echo_read_request_body\`) instead of discarding it`
      + ` (ceiling-discard, \`return 204\`) costs ${num(read, 0)} instructions per request.`
      + (jc && jm ? ` ceiling-json discards the body too; a JSON ceiling that read it would be about`
        + ` ${num(jc.ir_per_req + read, 0)}, and the module ${num(jm.ir_per_req / (jc.ir_per_req + read), 2)}× that.` : ''));
    L.push('');
  }
  if (jc && jm) {
    const r = jm.ir_per_req / jc.ir_per_req;
    L.push(`Issue 13's target for the view path: ≤ 1.3× ceiling-json's instructions (stretch ≤ 1.15×):`
      + ` ${num(r, 2)}×, ${r <= 1.15 ? 'stretch met' : r <= 1.3 ? 'met' : 'not met'}.`);
    L.push('');
  }
  for (const x of ins.systems) {
    if (x.warning) L.push(`- **${x.system}**: ${clean(x.warning, run.root)}`, '');
    if (x.logged_errors) {
      L.push(`- **${x.system}**: the server logged ${x.logged_errors} error line(s) during the count, e.g.: `
        + `${clean(x.logged_error_example, run.root)}`);
      L.push('');
    }
  }
  if (functions) {
    const fx = ins.systems.filter((x) => x.ok && x.functions && x.functions.length);
    if (fx.length) {
      L.push('The functions with the most instructions of their own per request (load − idle;'
        + ' `0x…` are functions of a stripped library, by address):');
      L.push('');
      for (const x of fx) {
        L.push(`- **${x.system}**: ${x.functions.slice(0, 10)
          .map((f) => `\`${f.fn.replace(/ \((.*)\)$/, '\` ($1)')} ${num(f.ir_per_req, 0)}`).join(', ')}`);
      }
      L.push('');
    }
  }
  return L;
}


// the paced (open-loop) part (harness.js, paced()): one table per rate
function pacedMd(run) {
  const pc = run.paced;
  if (!pc) return [];
  const L = [];
  L.push('### Paced view events (open loop, the same events at the same rate to every system)');
  L.push('');
  if (pc.error) {
    L.push(`Not measured: ${clean(pc.error, run.root)}`);
    L.push('');
    return L;
  }
  const idle = summary(pc.idle.map((x) => x.redis_cpu_us_per_s));
  L.push(`${pc.rounds} interleaved round(s); in each, for each rate and system: a fresh server,`
    + ` ${pc.warmup} s of paced warmup on other ids, then ${pc.duration} s of the view workload`
    + ` (seed ${pc.seed}) sent by \`bench/paced/paced.c\` on ${pc.connections} connections, each event at`
    + ' its scheduled time whatever the answers (pipelined behind the answers outstanding when every'
    + ' connection is busy); latency from the scheduled time. Redis CPU per event is `INFO cpu`'
    + ' (user + sys) over the load and the drain, minus Redis\'s idle rate measured at the start of'
    + ` the same round (${idle ? `${cell(idle, 0)} µs of CPU per second` : 'no Redis'}) times that interval,`
    + ' divided by the accepted events (2xx). The window is shorter than the module\'s `buckets=` (60 s)'
    + ' and about its `uniques=` (10 s), and the drain ends when Redis is quiet, not when shared memory'
    + ' is empty: the module\'s figure covers the totals and only the minute buckets and viewer hashes that'
    + ' came due in the window, so it understates a steady state, which writes each content\'s buckets'
    + ' about once a minute and its viewer hashes about once every 10 s (the closed-loop table by command'
    + ' shows their share). Exactness: the views read back minus the truth of the'
    + ' events sent; answered vs stored: the views read back minus the 202 answers that counted a view.'
    + ' Cells: median (min–max) over the rounds.');
  L.push('');
  // server CPU against a ceiling at the same rate, paired by round
  const ceil = ['ceiling-json', 'ceiling'].find((c) => pc.systems.includes(c));
  const cpuOf = (name, rate, round) => {
    const x = pc.results.find((y) => y.ok && y.system === name && y.rate === rate && y.round === round);
    return x ? x.views.server_cpu_us_per_event : undefined;
  };
  for (const rate of pc.rates) {
    L.push(`#### ${num(rate, 0)} events/s`);
    L.push('');
    L.push(`| system | sent /s | answered /s | p50 / p99 ms | server CPU µs/event |${ceil ? ` × ${ceil} |` : ''} Redis CPU µs/event | Redis cmds/event | exactness | answered vs stored | freshness p50 / p99 ms |`);
    L.push(`|---|---|---|---|---|${ceil ? '---|' : ''}---|---|---|---|---|`);
    for (const name of pc.systems) {
      const rs = pc.results.filter((x) => x.system === name && x.rate === rate);
      const ok = rs.filter((x) => x.ok);
      if (!ok.length) {
        L.push(`| ${name} | failed: ${clean((rs[0] || {}).error || 'not run', run.root, 200)} | | | |${ceil ? ' |' : ''} | | | | |`);
        continue;
      }
      const pick = (f) => summary(ok.map(f).filter((x) => x !== undefined && x !== null));
      const v = (x) => x.views;
      const p50 = pick((x) => v(x).sender.latency_us.p50 / 1000);
      const p99 = pick((x) => v(x).sender.latency_us.p99 / 1000);
      const list = (f) => {
        const xs = ok.map(f).filter((x) => x !== undefined);
        if (!xs.length) return 'n/a';
        return xs.every((x) => x === xs[0])
          ? `${signed(xs[0])}${xs.length > 1 ? ' (all rounds)' : ''}` : xs.map(signed).join(' / ');
      };
      const fresh = [].concat(...ok.map((x) => v(x).freshness_ms || []));
      const timeouts = ok.reduce((a, x) => a + (v(x).freshness_timeouts || 0), 0);
      const d = (x) => (x < 10 ? num(x, 1) : num(x, 0));
      const fr = fresh.length ? `${d(quantile(fresh, 0.5))} / ${d(quantile(fresh, 0.99))}`
        + `${timeouts ? ` (${timeouts} never seen)` : ''}` : (timeouts ? 'never' : 'n/a');
      const bad = rs.length > ok.length || ok.some((x) => x.logged_errors
        || v(x).sender.lost || v(x).sender.unanswered);
      L.push(`| ${name}${bad ? ' ⚠' : ''} | ${cell(pick((x) => v(x).achieved_rate), 0)} `
        + `| ${cell(pick((x) => v(x).answered_rate), 0)} | ${cell(p50, 2)} / ${cell(p99, 2)} `
        + `| ${cell(pick((x) => v(x).server_cpu_us_per_event), 1)} `
        + (!ceil ? '' : name === ceil ? '| 1× '
          : `| ${ratioCell(pick((x) => v(x).server_cpu_us_per_event / cpuOf(ceil, rate, x.round)))} `)
        + `| ${cell(pick((x) => v(x).redis_cpu_us_per_event), 2)} `
        + `| ${cell(pick((x) => v(x).redis_cmds_per_event), 3)} `
        + `| ${list((x) => v(x).exactness)} | ${list((x) => v(x).answered_vs_stored)} | ${fr} |`);
    }
    L.push('');
  }
  const notes = [];
  for (const x of pc.results) {
    const where = `${x.system} at ${num(x.rate, 0)}/s, round ${x.round}`;
    if (!x.ok) { notes.push(`${where}: failed: ${x.error}`); continue; }
    const s = x.views.sender;
    if (s.lost || s.unanswered) {
      notes.push(`${where}: ${num(s.lost, 0)} requests lost to broken connections,`
        + ` ${num(s.unanswered, 0)} not answered within the sender's drain`);
    }
    if (x.logged_errors) notes.push(`${where}: the server logged ${x.logged_errors} error line(s), e.g.: ${x.logged_error_example}`);
    if (x.views.drained === false) notes.push(`${where}: the flush was not done after ${num(x.views.drain_s, 0)} s`);
  }
  for (const n of notes.slice(0, 20)) L.push(`- ${clean(n, run.root)}`);
  if (notes.length > 20) L.push(`- … and ${notes.length - 20} more (results.json)`);
  if (notes.length) L.push('');
  return L;
}

// every system against each ceiling: throughput, CPU per request
// (paired by round) and instructions per request
function ceilingsMd(run, rows, ceilings) {
  const L = [];
  if (ceilings.length < 1) return L;
  const ins = (run.instructions && run.instructions.systems) || [];
  const ir = (name) => (ins.find((x) => x.ok && x.system === name) || {}).ir_per_req;
  L.push('### Against the ceilings');
  L.push('');
  L.push('`ceiling`: nginx reads the body and answers 204. `ceiling-json`: nginx answers the'
    + ' module\'s own 202 JSON (same status, headers, body length, URI and locations). Throughput'
    + ' and CPU ratios are paired (the system and the ceiling of the same round; median, min–max);'
    + ' instructions from the callgrind count below.');
  L.push('');
  const h = (what) => ceilings.map((c) => ` ${what} × ${c} |`).join('');
  L.push(`| system |${h('req/s')}${h('CPU µs/req')}${h('instructions/req')}`);
  L.push(`|---|${ceilings.map(() => '---|---|---|').join('')}`);
  for (const r of rows) {
    if (!r.ok.length && !ir(r.sys.name)) continue;
    const cells = (f) => ceilings.map((c) => ` ${c === r.sys.name ? '1×' : f(c)} |`).join('');
    const irc = (c) => (ir(r.sys.name) && ir(c) ? `${num(ir(r.sys.name) / ir(c), 2)}×` : '–');
    L.push(`| ${r.sys.name} |${cells((c) => ratioCell(r.vs && r.vs[c] && r.vs[c].rps))}`
      + `${cells((c) => ratioCell(r.vs && r.vs[c] && r.vs[c].cpu))}${cells(irc)}`);
  }
  L.push('');
  const mod = rows.find((r) => r.sys.name === 'module');
  const j = ceilings.includes('ceiling-json') ? 'ceiling-json' : ceilings[0];
  const v = mod && mod.vs && mod.vs[j];
  if (v && v.rps && v.cpu) {
    const okR = v.rps.med >= 0.85;
    const okC = v.cpu.med <= 1.3;
    L.push(`Targets for the module (shared memory only) against ${j} of the same round: `
      + `throughput ${num(v.rps.med, 2)}× (target ≥ 0.85×: ${okR ? 'met' : 'not met'}), `
      + `CPU per request ${num(v.cpu.med, 2)}× (target ≤ 1.3×: ${okC ? 'met' : 'not met'}).`);
    L.push('');
  }
  return L;
}

function markdown(run, rows, { plotLink, runLink, readmeLink, functions = true }) {
  const m = run.machine;
  const o = run.opt;
  const L = [];
  const shown = rows.filter((r) => r.ok.length);
  L.push(`Run \`${run.command}\` of ${m.date.replace('T', ' ').replace(/\..*/, '')} UTC`
         + ` (finished ${run.finished.replace('T', ' ').replace(/\..*/, '')} UTC): `
         + `${o.rounds} interleaved round(s), ${o.duration} s of view events per system and round `
         + `after ${o.warmup} s of warmup, ${o.reads} s of the read mix, wrk with ${o.threads} thread(s) `
         + `and ${o.connections} keep-alive connections, seed ${o.seed}. `
         + `Cells are medians over the rounds (min–max). Raw data: ${runLink}.`);
  L.push('');
  L.push('### Machine');
  L.push('');
  L.push('| | |');
  L.push('|---|---|');
  L.push(`| cores (nproc) | ${m.nproc} |`);
  L.push(`| CPU | ${m.cpu} |`);
  L.push(`| memory | ${m.memory_gib} GiB |`);
  L.push(`| kernel | ${m.kernel} |`);
  L.push(`| Debian | ${m.debian} |`);
  L.push(`| nginx | ${m.nginx} |`);
  if (m.redis) L.push(`| Redis | ${m.redis} |`);
  L.push(`| Node.js | ${m.node} |`);
  L.push(`| wrk | ${m.wrk} |`);
  L.push(`| module (git describe) | ${m.module_commit} |`);
  L.push(`| load average (1/5/15 min) at start, end | ${m.loadavg_start}; ${m.loadavg_end} |`);
  L.push(`| date | ${m.date} |`);
  L.push('');
  L.push('wrk, the servers, Redis and the probe all share these cores, over loopback.');
  L.push('');

  L.push('### View events (POST)');
  L.push('');
  const ceilings = rows.filter((r) => r.sys.ceiling).map((r) => r.sys.name);
  const c0 = ceilings.includes('ceiling-json') ? 'ceiling-json' : ceilings[0] || 'ceiling';
  L.push(`| system | req/s | × ${c0} | p50 ms | p99 ms | server CPU µs/req | × ${c0} | Redis cmds/event | Redis CPU µs/event | server+Redis CPU µs/req | exactness | freshness p50 / p99 ms |`);
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const st = status(r);
    if (!r.ok.length) {
      L.push(`| ${r.sys.name} | ${r.sys.skipped ? 'skipped' : 'failed'} (see below) | | | | | | | | | | |`);
      continue;
    }
    const red = r.redisCmds !== null;
    L.push(`| ${r.sys.name}${st ? ' ⚠' : ''} | ${cell(r.rps, 1, true)} | ${r.sys.name === c0 ? '1×' : ratioCell(r.rpsRatio)} `
      + `| ${cell(r.p50, 2)} | ${cell(r.p99, 2)} | ${cell(r.cpu, 1)} | ${r.sys.name === c0 ? '1×' : ratioCell(r.cpuRatio)} `
      + `| ${red ? cell(r.redisCmds, 3) : '–'} | ${red ? cell(r.redisCpu, 2) : '–'} | ${cell(r.totalCpu, 1)} `
      + `| ${exactCell(r)} | ${freshCell(r)} |`);
  }
  L.push('');
  L.push(...ceilingsMd(run, rows, ceilings));
  const notes = rows.map((r) => [r.sys.name, status(r)]).filter((x) => x[1]);
  for (const r of rows) {
    const errs = r.rounds.filter((x) => x.logged_errors);
    if (errs.length) {
      const n = errs.reduce((a, x) => a + x.logged_errors, 0);
      notes.push([r.sys.name, `the server logged ${n.toLocaleString('en-US')} error line(s)`
        + ` (rounds ${errs.map((x) => x.round).join(', ')}), e.g.: ${errs[0].logged_error_example}`]);
    }
  }
  for (const [n, s] of notes) L.push(`- **${n}**: ${clean(s, run.root)}`);
  if (notes.length) L.push('');

  if (o.reads > 0) {
    L.push('### Read mix (GET the summary of hot content)');
    L.push('');
    L.push(`| system | req/s | × ${c0} | p50 ms | p99 ms | server CPU µs/req | Redis cmds/read | Redis CPU µs/read |`);
    L.push('|---|---|---|---|---|---|---|---|');
    for (const r of shown) {
      const x = r.reads;
      if (!x.rps) continue;
      L.push(`| ${r.sys.name} | ${cell(x.rps, 1, true)} | ${r.sys.name === c0 ? '1×' : ratioCell(r.readsRatio)} `
        + `| ${cell(x.p50, 2)} | ${cell(x.p99, 2)} | ${cell(x.cpu, 1)} `
        + `| ${x.redisCmds ? cell(x.redisCmds, 2) : '–'} | ${x.redisCpu ? cell(x.redisCpu, 2) : '–'} |`);
    }
    L.push('');
  }

  L.push(...pacedMd(run));

  L.push(...instructionsMd(run, { functions }));

  const zr = shown.filter((r) => r.zone);
  if (zr.length) {
    L.push('### The module\'s shared memory (after the view load)');
    L.push('');
    L.push('| system | dedupe zone | dedupe entries | used bytes | bytes per dedupe entry | counter entries | bytes per counter entry | dedupe evictions |');
    L.push('|---|---|---|---|---|---|---|---|');
    for (const r of zr) {
      const z = r.zone;
      L.push(`| ${r.sys.name} | ${num(z.size / 2 ** 20, 0)} MiB | ${cell(z.entries, 0)} | ${cell(z.used, 0)} `
        + `| ${cell(z.perEntry, 1)} | ${cell(z.cEntries, 0)} | ${cell(z.cPerEntry, 1)} | ${z.evictions} |`);
    }
    L.push('');
  }

  L.push('### What was sent (measured interval, per round)');
  L.push('');
  L.push('| system | round | events sent | new | exact retries | progress repeats | malformed | non-2xx answers | socket errors | unique views (truth) | counted | exactness | server error lines logged | last flush after the load (asynchronous systems) |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of shown) {
    for (const x of r.ok) {
      const v = x.views;
      const s = v.sent;
      L.push(`| ${r.sys.name} | ${x.round} | ${num(s.total, 0)} | ${num(s.new, 0)} | ${num(s.retry, 0)} `
        + `| ${num(s.progress, 0)} | ${num(s.malformed, 0)} | ${num(v.non2xx, 0)} | ${num(v.socket_errors, 0)} `
        + `| ${num(v.truth, 0)}${v.replay_matches ? '' : ' (replay mismatch!)'} `
        + `| ${v.counted !== undefined ? num(v.counted, 0) : 'n/a'} `
        + `| ${v.exactness !== undefined ? signed(v.exactness) : 'n/a'} `
        + `| ${x.logged_errors || 0} `
        + `| ${!r.sys.async ? '–' : v.drained === false ? `not done after ${num(v.drain_s, 0)} s` : `${num(v.drain_s, 1)} s`} |`);
    }
  }
  L.push('');

  const rr = shown.filter((r) => r.ok.some((x) => x.views.redis_by));
  if (rr.length) {
    L.push('### Redis commands per accepted event, by command (median over the rounds)');
    L.push('');
    L.push('Commands run inside a script (EVALSHA) are counted too, under their own names.');
    L.push('');
    L.push('| system | commands |');
    L.push('|---|---|');
    for (const r of rr) {
      const names = new Set();
      for (const x of r.ok) for (const k of Object.keys(x.views.redis_by || {})) names.add(k);
      const parts = [];
      for (const k of names) {
        const per = median(r.ok.map((x) => {
          const v = x.views;
          let c = (v.redis_by || {})[k] || 0;
          if (k === v.redis_probe_cmd) c = Math.max(0, c - (v.redis_probe_cmds || 0));
          return c / v.accepted;
        }));
        if (per >= 0.0005) parts.push([k, per]);
      }
      parts.sort((a, b) => b[1] - a[1]);
      L.push(`| ${r.sys.name} | ${parts.map(([k, x]) => `${k.toUpperCase()} ${num(x, 3)}`).join(', ')} |`);
    }
    L.push('');

    const ru = rr.filter((r) => r.ok.some((x) => x.views.redis_usec_by));
    if (ru.length) {
      L.push('### Redis time per accepted event, by command (µs, median over the rounds)');
      L.push('');
      L.push('Redis\'s own accounting (`INFO commandstats`). A script\'s time (EVALSHA) includes the commands it ran, which are listed too; the script\'s time minus theirs is the cost of running the script itself (Lua, its arguments and the calls from Lua into Redis).');
      L.push('');
      L.push('| system | by command | script overhead |');
      L.push('|---|---|---|');
      for (const r of ru) {
        const names = new Set();
        for (const x of r.ok) for (const k of Object.keys(x.views.redis_usec_by || {})) names.add(k);
        const per = {};
        for (const k of names) {
          per[k] = median(r.ok.map((x) => ((x.views.redis_usec_by || {})[k] || 0) / x.views.accepted));
        }
        const parts = Object.entries(per).filter(([, x]) => x >= 0.005).sort((a, b) => b[1] - a[1]);
        let overhead = '–';
        if (per.evalsha !== undefined) {
          let innerSum = 0;
          for (const [k, x] of Object.entries(per)) if (k !== 'evalsha') innerSum += x;
          // commands outside a script (the probe's reads) are few next to it
          overhead = num(Math.max(0, per.evalsha - innerSum), 2);
        }
        L.push(`| ${r.sys.name} | ${parts.map(([k, x]) => `${k.toUpperCase()} ${num(x, 2)}`).join(', ')} | ${overhead} |`);
      }
      L.push('');
    }
  }
  if (plotLink) {
    L.push(`![requests/s, CPU per request and p99 latency per system](${plotLink})`);
    L.push('');
  }
  L.push(`How each figure is measured, and the caveats: [bench/README.md](${readmeLink}).`);
  return L.join('\n') + '\n';
}

// ----------------------------------------------------------------- plot

function plot(run, rows, dir) {
  const shown = rows.filter((r) => r.ok.length && r.rps);
  if (!shown.length) return null;
  const dat = path.join(dir, 'plot.dat');
  const lines = ['# idx system rps_med rps_min rps_max cpu_med cpu_min cpu_max total_med total_min total_max p99_med p99_min p99_max'];
  shown.forEach((r, i) => {
    const t = r.totalCpu || r.cpu;
    lines.push([i, r.sys.name, r.rps.med, r.rps.min, r.rps.max, r.cpu.med, r.cpu.min, r.cpu.max,
                t.med, t.min, t.max, r.p99.med, r.p99.min, r.p99.max]
      .map((x) => (typeof x === 'number' ? +x.toFixed(4) : x)).join(' '));
  });
  fs.writeFileSync(dat, lines.join('\n') + '\n');
  const n = shown.length;
  const title = `nginx-engagement bench ${run.ts}: ${run.machine.nproc} cores (${run.machine.cpu}), `
    + `median of ${run.opt.rounds} round(s), bars = min-max`;
  const gp = path.join(dir, 'plot.gp');
  fs.writeFileSync(gp, `# gnuplot ${path.basename(gp)}  (from ${path.basename(dir)}/)
set terminal pngcairo size 1500,560 font "DejaVu Sans,10"
set output 'plot.png'
set datafile commentschars "#"
set style fill solid 0.65 border -1
set grid ytics
set xrange [-0.6:${n - 0.4}]
set yrange [0:*]
set xtics rotate by 30 right nomirror
set multiplot layout 1,3 title "${title.replace(/"/g, "'")}"
set boxwidth 0.6
set title "View events: requests/s (higher is better)"
plot 'plot.dat' using 1:3:xtic(2) with boxes lc rgb "#4477aa" notitle, \\
     '' using 1:4:(0):($5-$4) with vectors heads size screen 0.006,90 lc rgb "black" lw 1.5 notitle
set boxwidth 0.35
set title "CPU per request, µs (lower is better)"
set key top left
plot 'plot.dat' using ($1-0.18):6:xtic(2) with boxes lc rgb "#228833" title "server", \\
     '' using ($1-0.18):7:(0):($8-$7) with vectors heads size screen 0.006,90 lc rgb "black" lw 1.5 notitle, \\
     '' using ($1+0.18):9 with boxes lc rgb "#ccbb44" title "server + Redis", \\
     '' using ($1+0.18):10:(0):($11-$10) with vectors heads size screen 0.006,90 lc rgb "black" lw 1.5 notitle
set boxwidth 0.6
set title "p99 latency, ms (lower is better)"
plot 'plot.dat' using 1:12:xtic(2) with boxes lc rgb "#ee6677" notitle, \\
     '' using 1:13:(0):($14-$13) with vectors heads size screen 0.006,90 lc rgb "black" lw 1.5 notitle
unset multiplot
`);
  const r = spawnSync('gnuplot', [path.basename(gp)], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`gnuplot failed: ${(r.stderr || r.error || '').toString().trim()}`);
    return null;
  }
  return path.join(dir, 'plot.png');
}

// ---------------------------------------------------------------- write

function write(run, { ROOT }) {
  const dir = run.out;
  const files = [];
  const rows = aggregate(run);

  const json = path.join(dir, 'results.json');
  const { out, tmp, ...plain } = run;
  fs.writeFileSync(json, JSON.stringify(plain, null, 1) + '\n');
  files.push(json);

  const png = plot(run, rows, dir);
  if (png) files.push(path.join(dir, 'plot.dat'), path.join(dir, 'plot.gp'), png);

  const rel = path.relative(ROOT, dir);
  const md = path.join(dir, 'results.md');
  fs.writeFileSync(md, `# Benchmark run ${run.ts}\n\n`
    + markdown(run, rows, { plotLink: png ? 'plot.png' : null, runLink: '`results.json` beside this file',
                     readmeLink: '../../README.md' }));
  files.push(md);

  if (run.opt.docs) {
    const doc = path.join(ROOT, 'docs', 'benchmarks.md');
    fs.mkdirSync(path.dirname(doc), { recursive: true });
    fs.writeFileSync(doc, `# Benchmarks

The latest figures of \`bench/run\`, the benchmark harness: this module's
view endpoint against two ceilings (the same nginx reading the same bodies
and answering 204; the same nginx answering the module's own JSON answer
on the same URI and locations) and against the designs people build today
(OpenResty Lua with Redis per request, Lua with batched flushes, Node.js
with Redis): closed-loop under wrk, paced (open-loop: the same events at
the same rates to every system, with Redis's CPU per event net of its idle
rate), and in instructions per request of one nginx worker under
callgrind, a figure that does not move with the machine's load. How the
harness works, what each system is and how each figure is measured:
[bench/README.md](../bench/README.md). This page is written by
\`bench/run\` (full runs only; \`--quick\` leaves it alone): re-run it rather
than editing by hand.

## Latest run

`
      + markdown(run, rows, {
        plotLink: png ? `../${rel}/plot.png` : null,
        runLink: `[\`${rel}/\`](../${rel}/)`,
        readmeLink: '../bench/README.md',
      }));
    files.push(doc);
  }
  return files;
}

module.exports = { write, aggregate, markdown, quantile, median };

// node bench/node/report.js bench/results/<timestamp> [--docs]
// re-renders a run's tables and plot from its results.json
if (require.main === module) {
  const dir = path.resolve(process.argv[2] || '');
  const file = path.join(dir, 'results.json');
  if (!process.argv[2] || !fs.existsSync(file)) {
    console.error('usage: node bench/node/report.js bench/results/<timestamp> [--docs]');
    process.exit(2);
  }
  const run = JSON.parse(fs.readFileSync(file, 'utf8'));
  const ROOT = path.resolve(__dirname, '..', '..');
  run.out = dir;
  run.root = ROOT;
  run.opt.docs = process.argv.includes('--docs');
  for (const f of write(run, { ROOT })) console.error(`wrote ${path.relative(ROOT, f)}`);
}
