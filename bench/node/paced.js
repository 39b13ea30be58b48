'use strict';
// The paced (open-loop) part of a run, started by harness.js after the
// closed-loop rounds. See bench/README.md ("Paced (open-loop) events").
//
// wrk is closed-loop: a system's event rate is whatever it sustains, and
// Redis's cost per event depends on the rate (a flush every second merges
// more events per content at a higher rate). The paced part sends the
// same events at the same stated rates to every system, each at its
// scheduled time whatever the answers (bench/paced/paced.c, compiled
// here with the system's cc), in interleaved rounds:
//   for each round: Redis's idle CPU rate (nothing connected), then
//   for each rate, for each system: a fresh server, a paced warmup on
//   other ids, the measured events with the freshness probe beside them,
//   the drain, the counts read back.
// Redis CPU per event = (INFO cpu delta - idle rate x interval) / accepted.

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const BENCH = path.resolve(__dirname, '..');

// the harness's helpers (servers, probe, drain, Redis figures, logging),
// given to paced(); aborting() says whether the run is being stopped
let log; let sleep; let nowMs; let spawnChild; let tail; let startSystem;
let startProbe; let drain; let readTotal; let redisStats; let redisDelta; let redisProcessed;
let REDIS_POLL_MS; let treeCpu; let logSize; let endRun; let aborting;

function buildPaced(ctx) {
  const bin = path.join(ctx.tmp, 'paced');
  if (ctx.pacedBin) return ctx.pacedBin;
  const cc = process.env.CC || 'cc';
  const r = spawnSync(cc, ['-O2', '-Wall', '-o', bin, path.join(BENCH, 'paced', 'paced.c')],
                      { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`${cc} could not build bench/paced/paced.c: `
      + `${((r.stderr || '') + (r.error ? r.error.message : '')).trim().slice(0, 300)}`);
  }
  ctx.pacedBin = bin;
  return bin;
}

// n events of the workload's stream (wrk's first thread, seed, prefix),
// marked for the paced sender (kind, first of its pair): the file's path
function markedBodies(ctx, n, prefix, seed) {
  const file = path.join(ctx.tmp, `paced-${prefix}-${seed}-${n}.bodies`);
  if (fs.existsSync(file)) return file;
  const r = spawnSync('wrk', ['-t1', '-c1', '-d1s', '-s', path.join(BENCH, 'wrk', 'fixed.lua'),
                              'http://127.0.0.1:1'], {
    encoding: 'utf8',
    env: { ...process.env, BENCH_FIXED_N: String(n), BENCH_FIXED_OUT: file,
           BENCH_FIXED_SEED: String(seed), BENCH_FIXED_PREFIX: prefix, BENCH_FIXED_MARK: '1' },
  });
  if (r.status !== 0 || !/^BENCH /m.test(r.stdout || '')) {
    fs.rmSync(file, { force: true });
    throw new Error(`bench/wrk/fixed.lua failed: ${(r.stderr || r.stdout || '').trim().slice(0, 300)}`);
  }
  return file;
}

let pacedSeq = 0;

async function runPacedSender(ctx, sys, bodies, rate, duration, label) {
  const o = ctx.opt;
  const logFile = path.join(sys.dir, `paced-${String(++pacedSeq).padStart(3, '0')}-${label}.log`);
  const argv = ['--port', String(sys.port), '--path', sys.viewPath, '--bodies', bodies,
                '--rate', String(rate), '--duration', String(duration),
                '--connections', String(o.pacedConnections), '--drain', String(Math.min(o.drainMax, 30))];
  fs.writeFileSync(logFile, `paced ${argv.join(' ')}\n`);
  const c = spawnChild('paced', ctx.pacedBin, argv, logFile);
  const st = await c.exited;
  const out = fs.readFileSync(logFile, 'utf8');
  const line = out.split('\n').find((l) => l.startsWith('BENCH '));
  if (st.code !== 0 || !line) {
    throw new Error(`paced ${label} failed (${JSON.stringify(st)}): ${tail(logFile, 4)}`);
  }
  return JSON.parse(line.slice(6));
}

// Redis's own CPU rate with nothing connected but the harness, polling it
// as the drain does: µs per s
async function redisIdle(ctx, secs) {
  const a = await redisStats(ctx.redis.admin);
  const t0 = nowMs();
  while (nowMs() - t0 < secs * 1000) {
    await sleep(REDIS_POLL_MS);
    await redisProcessed(ctx.redis.admin);
  }
  const b = await redisStats(ctx.redis.admin);
  return ((b.cpu - a.cpu) * 1e6) / ((nowMs() - t0) / 1000);
}

async function runPacedOne(sys, round, rate, idle, ctx, files) {
  const o = ctx.opt;
  const res = { system: sys.name, round, rate, ok: false };
  let c = null;
  const errLog = path.join(sys.dir, sys.kind === 'nginx' ? 'error.log' : 'stdout.log');
  const errOffset = logSize(errLog);
  try {
    if (sys.redis) await ctx.redis.admin.flushAll();
    c = await startSystem(sys, ctx);
    const alive = () => {
      if (c.status) throw new Error(`server exited during the run (${JSON.stringify(c.status)})`);
    };
    if (o.pacedWarmup > 0) {
      await runPacedSender(ctx, sys, files.warm, rate, o.pacedWarmup, `r${round}-${rate}-warmup`);
      alive();
    }
    const cpu0 = treeCpu(c.pid);
    const rs0 = sys.redis ? await redisStats(ctx.redis.admin) : null;
    const r0 = nowMs();
    const probe = sys.counts ? startProbe(sys, ctx, `p${round}-${rate}`) : null;
    let p;
    try {
      p = await runPacedSender(ctx, sys, files.load, rate, o.pacedDuration, `r${round}-${rate}`);
    } catch (e) {
      if (probe) await probe.finish();
      throw e;
    }
    const dr = await drain(sys, ctx, probe, Date.now());
    alive();
    const cpu1 = treeCpu(c.pid);
    const rs1 = sys.redis ? await redisStats(ctx.redis.admin) : null;
    const secs = (nowMs() - r0) / 1000;
    const accepted = p.status['2xx'];
    const httpReqs = p.sent + (probe ? probe.st.http : 0);
    const v = {
      sender: p,
      achieved_rate: p.achieved_rate,
      answered_rate: p.answered_s > 0 ? p.answered / p.answered_s : 0,
      accepted,
      interval_s: secs,
      server_cpu_s: cpu1 - cpu0,
      server_cpu_us_per_event: ((cpu1 - cpu0) * 1e6) / httpReqs,
      drain_s: dr.drain_s,
      drained: dr.drained,
      truth: p.truth,
      views_answered: p.views_answered,
    };
    if (rs0) {
      const d = redisDelta(rs0, rs1);
      const probeCmds = probe ? probe.st.redis : 0;
      v.redis_cmds = d.cmds - probeCmds;
      v.redis_by = d.by;
      v.redis_cmds_per_event = v.redis_cmds / accepted;
      v.redis_cpu_raw_us = d.cpu * 1e6;
      v.redis_idle_us_per_s = idle;
      v.redis_cpu_us_per_event = (d.cpu * 1e6 - idle * secs) / accepted;
    }
    if (probe) {
      v.freshness_ms = probe.st.samples;
      v.freshness_timeouts = probe.st.timeouts;
    }
    if (sys.counts) {
      const t = await readTotal(sys, ctx, 100000);
      v.counted = t.total;
      v.exactness = t.total - p.truth;
      v.answered_vs_stored = t.total - p.views_answered;
    }
    res.views = v;
    res.ok = true;
  } catch (e) {
    res.error = e.message;
  } finally {
    await endRun(sys, c, res, errLog, errOffset);
  }
  return res;
}

async function paced(active, ctx, helpers) {
  ({ log, sleep, nowMs, spawnChild, tail, startSystem, startProbe, drain,
     readTotal, redisStats, redisDelta, redisProcessed, REDIS_POLL_MS, treeCpu, logSize,
     endRun, aborting } = helpers);
  const o = ctx.opt;
  const out = { rates: o.rates, rounds: o.pacedRounds, duration: o.pacedDuration,
                warmup: o.pacedWarmup, connections: o.pacedConnections, seed: o.seed,
                idle: [], results: [] };
  const systems = active.filter((s) => !o.pacedSystems || o.pacedSystems.includes(s.name));
  out.systems = systems.map((s) => s.name);
  if (!systems.length) return out;
  const files = {};
  try {
    buildPaced(ctx);
    const max = Math.max(...o.rates);
    files.load = markedBodies(ctx, Math.ceil(max * o.pacedDuration) + 1, 'c', o.seed);
    files.warm = markedBodies(ctx, Math.ceil(max * Math.max(o.pacedWarmup, 0.001)) + 1, 'w', o.seed + 1000);
  } catch (e) {
    out.error = e.message;
    log(`paced part: ${e.message}`);
    return out;
  }
  const per = o.pacedWarmup + o.pacedDuration + 4;
  log(`paced part: ${o.pacedRounds} round(s) x rates ${o.rates.join(',')} events/s x `
      + `${systems.length} system(s) [${out.systems.join(' ')}], ${o.pacedDuration} s each: about `
      + `${Math.round((per * o.rates.length * systems.length + o.redisIdle) * o.pacedRounds / 6) / 10} min`
      + ' plus the drains');
  for (let r = 1; r <= o.pacedRounds && !aborting(); r++) {
    let idle = null;
    if (ctx.redis) {
      idle = await redisIdle(ctx, o.redisIdle);
      out.idle.push({ round: r, redis_cpu_us_per_s: idle });
      log(`paced round ${r}/${o.pacedRounds}: Redis idle ${idle.toFixed(0)} us CPU/s`);
    }
    for (const rate of o.rates) {
      for (const s of systems) {
        if (aborting()) break;
        log(`paced round ${r}/${o.pacedRounds}: ${s.name} at ${rate} events/s`);
        const res = await runPacedOne(s, r, rate, idle || 0, ctx, files);
        if (aborting()) break;
        out.results.push(res);
        if (!res.ok) {
          log(`  failed: ${res.error}`);
          continue;
        }
        const v = res.views;
        const lat = v.sender.latency_us;
        log(`  sent ${Math.round(v.achieved_rate)}/s, answered ${Math.round(v.answered_rate)}/s, `
            + `p50/p99 ${(lat.p50 / 1000).toFixed(2)}/${(lat.p99 / 1000).toFixed(2)} ms, `
            + `server ${v.server_cpu_us_per_event.toFixed(1)} us/event`
            + (v.redis_cpu_us_per_event !== undefined
              ? `, Redis ${v.redis_cpu_us_per_event.toFixed(2)} us/event, `
                + `${v.redis_cmds_per_event.toFixed(3)} cmds/event` : '')
            + (v.exactness !== undefined ? `, exactness ${v.exactness >= 0 ? '+' : ''}${v.exactness}` : '')
            + (res.logged_errors ? `; ${res.logged_errors} error lines logged` : ''));
      }
    }
  }
  return out;
}

module.exports = { paced };
