'use strict';
// The benchmark orchestrator that bench/run starts (after installing and
// building): starts every system's server on loopback ports of its own,
// runs the wrk workloads in interleaved rounds, measures, stops every
// process it started by PID, and writes the results. See bench/README.md.

const fs = require('fs');
const path = require('path');
const os = require('os');
const net = require('net');
const http = require('http');
const { spawn, spawnSync } = require('child_process');
const { createClient } = require('redis');
const report = require('./report');
const { paced } = require('./paced');

const BENCH = path.resolve(__dirname, '..');
const ROOT = path.resolve(BENCH, '..');
const NGINX = process.env.NGINX || '/usr/sbin/nginx';
const NGINX_MODULES = process.env.NGINX_MODULES || '/usr/lib/nginx/modules';
const MODULE_SO = process.env.ENGAGEMENT_MODULE
  || path.join(ROOT, 'build', 'ngx_http_engagement_module.so');
// BENCH_SYSTEMS=file.js runs another list (same format)
const ALL_SYSTEMS = require(process.env.BENCH_SYSTEMS
  ? path.resolve(process.env.BENCH_SYSTEMS) : path.join(BENCH, 'systems', 'systems.js'));

// ---------------------------------------------------------------- options

const USAGE = `usage: bench/run [options]

  --quick              smoke test: 1 round, 3 s, 1 s warmup, 2 s reads, paced 2000/s for
                       2 s, 3000 requests under callgrind; docs untouched
  --rounds N           interleaved rounds (default 3)
  --duration S         seconds of measured view load per system and round (default 10)
  --warmup S           seconds of warmup load before each measurement (default 2)
  --reads S            seconds of the read mix per system and round, 0 to skip (default 3)
  --connections N      wrk connections (default 32)
  --threads N          wrk threads (default 2)
  --systems a,b,...    run only these systems (default all; see --list)
  --seed N             workload seed (default 42)
  --probe-interval MS  freshness probe: one event every MS (default 100)
  --probe-poll MS      freshness probe: shortest poll interval (default 2)
  --probe-timeout S    freshness probe: give an event up after S (default: --drain-max)
  --drain-max S        longest wait for an asynchronous flush after the load (default 180)
  --rates R1,R2,...    paced (open-loop) part: events/s sent to each system on
                       schedule whatever the answers (default 2000,10000,40000;
                       --quick 2000; 0 skips the paced part)
  --paced-rounds N     interleaved rounds of the paced part (default 5; --quick 1)
  --paced-duration S   seconds of paced events per system, rate and round (default 10;
                       --quick 2)
  --paced-warmup S     seconds of paced warmup events (other ids) first (default 1)
  --paced-connections N  connections of the paced sender (default 64)
  --paced-systems a,b  systems of the paced part (default: every system run)
  --redis-idle S       seconds Redis's idle CPU is measured before each paced round
                       (default 3; --quick 1)
  --docs / --no-docs   write docs/benchmarks.md (default: yes, except with --quick)
  --no-instructions    skip the instruction count (callgrind, one nginx worker)
  --instructions-requests N   requests of the instruction count (default 20000; --quick 3000)
  --ports LO-HI        take every port of the run (Redis, each system) from this
                       range, checked free (default: free ephemeral ports)
  --list               list the systems and exit
  --no-install, --no-build   (bench/run itself) skip apt-get/npm, skip ./build.sh build`;

function parseArgs(argv) {
  const o = {
    rounds: 3, duration: 10, warmup: 2, reads: 3, connections: 32, threads: 2,
    seed: 42, probeInterval: 100, probePoll: 2, probeTimeout: null, drainMax: 180,
    systems: null, docs: null, quick: false, list: false,
    instructions: true, instructionsRequests: 20000,
    rates: [2000, 10000, 40000], pacedRounds: 5, pacedDuration: 10, pacedWarmup: 1,
    pacedConnections: 64, pacedSystems: null, redisIdle: 3,
  };
  const num = (i) => {
    const v = Number(argv[i + 1]);
    if (!Number.isFinite(v) || v < 0) die(`${argv[i]} needs a number\n\n${USAGE}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--quick': o.quick = true; break;
      case '--rounds': o.rounds = num(i++); o.roundsSet = true; break;
      case '--duration': o.duration = num(i++); o.durationSet = true; break;
      case '--warmup': o.warmup = num(i++); o.warmupSet = true; break;
      case '--reads': o.reads = num(i++); o.readsSet = true; break;
      case '--connections': o.connections = num(i++); break;
      case '--threads': o.threads = num(i++); break;
      case '--seed': o.seed = num(i++); break;
      case '--probe-interval': o.probeInterval = num(i++); break;
      case '--probe-poll': o.probePoll = num(i++); break;
      case '--probe-timeout': o.probeTimeout = num(i++) * 1000; break;
      case '--drain-max': o.drainMax = num(i++); break;
      case '--systems': o.systems = String(argv[++i] || '').split(',').filter(Boolean); break;
      case '--docs': o.docs = true; break;
      case '--no-docs': o.docs = false; break;
      case '--no-instructions': o.instructions = false; break;
      case '--instructions': o.instructions = true; break;
      case '--instructions-requests':
        o.instructionsRequests = num(i++); o.instructionsRequestsSet = true; break;
      case '--rates':
        o.rates = String(argv[++i] || '').split(',').filter(Boolean).map(Number)
          .filter((x) => x !== 0);
        if (o.rates.some((x) => !(x > 0))) die(`--rates needs events/s, e.g. 2000,10000,40000\n\n${USAGE}`);
        o.ratesSet = true;
        break;
      case '--paced-rounds': o.pacedRounds = num(i++); o.pacedRoundsSet = true; break;
      case '--paced-duration': o.pacedDuration = num(i++); o.pacedDurationSet = true; break;
      case '--paced-warmup': o.pacedWarmup = num(i++); break;
      case '--paced-connections': o.pacedConnections = num(i++); break;
      case '--paced-systems': o.pacedSystems = String(argv[++i] || '').split(',').filter(Boolean); break;
      case '--redis-idle': o.redisIdle = num(i++); o.redisIdleSet = true; break;
      case '--ports': o.ports = String(argv[++i] || ''); setPortRange(o.ports); break;
      case '--list': o.list = true; break;
      case '--no-install': case '--no-build': break;   // bench/run's
      case '-h': case '--help': console.log(USAGE); process.exit(0); break;
      default: die(`unknown option ${a}\n\n${USAGE}`);
    }
  }
  if (o.quick) {
    if (!o.roundsSet) o.rounds = 1;
    if (!o.durationSet) o.duration = 3;
    if (!o.warmupSet) o.warmup = 1;
    if (!o.readsSet) o.reads = 2;
    if (!o.instructionsRequestsSet) o.instructionsRequests = 3000;
    if (!o.ratesSet) o.rates = [2000];
    if (!o.pacedRoundsSet) o.pacedRounds = 1;
    if (!o.pacedDurationSet) o.pacedDuration = 2;
    if (!o.redisIdleSet) o.redisIdle = 1;
  }
  if (o.docs === null) o.docs = !o.quick;
  if (o.probeTimeout === null) o.probeTimeout = o.drainMax * 1000;
  for (const k of ['rounds', 'duration', 'connections', 'threads', 'instructionsRequests',
                   'pacedRounds', 'pacedConnections']) {
    if (!(o[k] >= 1) || !Number.isInteger(o[k])) die(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a whole number >= 1`);
  }
  for (const k of ['warmup', 'reads']) {
    if (!Number.isInteger(o[k])) die(`--${k} must be a whole number of seconds`);
  }
  if (o.connections < o.threads) die('--connections must be at least --threads');
  return o;
}

function die(msg) {
  console.error(msg);
  process.exit(2);
}

function log(msg) {
  const t = new Date().toISOString().slice(11, 19);
  console.error(`[${t}] ${msg}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// p, or null after ms; the timer does not outlive p (a pending timer would
// keep node from exiting at the end of the run)
function within(p, ms) {
  let timer;
  const t = new Promise((r) => { timer = setTimeout(() => r(null), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

// ------------------------------------------------ child processes, by PID

const children = new Map();   // pid -> { pid, name, proc, exited }
let pidFile = null;
let aborting = false;

function spawnChild(name, cmd, args, logFile, opts = {}) {
  const fd = fs.openSync(logFile, 'a');
  const proc = spawn(cmd, args, { stdio: ['ignore', fd, fd], ...opts });
  fs.closeSync(fd);
  let resolveExit;
  const exited = new Promise((r) => { resolveExit = r; });
  const c = { pid: proc.pid, name, proc, exited, status: null };
  proc.on('error', (err) => {
    c.status = { code: null, signal: null, error: err.message };
    if (c.pid) children.delete(c.pid);
    resolveExit(c.status);
  });
  proc.on('exit', (code, signal) => {
    c.status = { code, signal };
    children.delete(c.pid);
    resolveExit(c.status);
  });
  if (proc.pid) {
    children.set(proc.pid, c);
    if (pidFile) fs.appendFileSync(pidFile, `${proc.pid} ${path.basename(cmd)}\n`);
  }
  return c;
}

// every process below pid (nginx workers, ...), from /proc
function descendants(pid) {
  const kids = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = procStat(d);
    if (!st) continue;
    if (!kids.has(st.ppid)) kids.set(st.ppid, []);
    kids.get(st.ppid).push(Number(d));
  }
  const out = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop();
    for (const k of kids.get(p) || []) { out.push(k); todo.push(k); }
  }
  return out;
}

function killPid(pid, sig) {
  try { process.kill(pid, sig); } catch (e) { /* gone */ }
}

// stop one child: sig to it, then SIGKILL to it and anything below it
async function stopChild(c, sig = 'SIGTERM', graceMs = 8000) {
  if (!c || c.status) return c && c.status;
  killPid(c.pid, sig);
  const t = await within(c.exited, graceMs);
  if (t) return t;
  log(`${c.name} (pid ${c.pid}) did not stop on ${sig}: SIGKILL`);
  for (const p of [c.pid, ...descendants(c.pid)]) killPid(p, 'SIGKILL');
  return within(c.exited, 3000);
}

async function stopAll() {
  const list = [...children.values()];
  const below = new Map(list.map((c) => [c.pid, descendants(c.pid)]));
  for (const c of list) killPid(c.pid, c.name === 'nginx' ? 'SIGQUIT' : 'SIGTERM');
  await within(Promise.all(list.map((c) => c.exited)), 5000);
  for (const c of list) {
    for (const p of [c.pid, ...(below.get(c.pid) || [])]) {
      if (fs.existsSync(`/proc/${p}`)) killPid(p, 'SIGKILL');
    }
  }
  await within(Promise.all(list.map((c) => c.exited)), 3000);
}

function onSignal(sig) {
  if (aborting) return;
  aborting = true;
  log(`${sig}: stopping every process started by this run`);
  stopAll().then(() => process.exit(130));
}
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => onSignal(s));
process.on('exit', () => {
  for (const c of children.values()) {
    for (const p of [c.pid, ...descendants(c.pid)]) killPid(p, 'SIGKILL');
  }
});

// ----------------------------------------------------------- measurement

function procStat(pid) {
  let s;
  try { s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch (e) { return null; }
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15
  return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout) || 100;

// CPU seconds of one process: its threads' time on a CPU from the
// scheduler (/proc/<pid>/task/*/schedstat, nanoseconds), or, where that is
// missing, utime + stime (/proc/<pid>/stat, clock ticks of 10 ms: too
// coarse for a paced run of a few thousand events)
const SCHEDSTAT = fs.existsSync('/proc/self/schedstat');

function procCpu(pid) {
  if (SCHEDSTAT) {
    try {
      let ns = 0;
      for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
        ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      }
      return ns / 1e9;
    } catch (e) { /* gone, or a thread ended while read */ }
  }
  const st = procStat(pid);
  return st ? st.ticks / CLK_TCK : 0;
}

// CPU seconds of a process and everything below it
function treeCpu(pid) {
  let cpu = 0;
  for (const p of [pid, ...descendants(pid)]) cpu += procCpu(p);
  return cpu;
}

// Ports. Without --ports, the kernel picks a free ephemeral port for each
// server. With --ports LO-HI, every port of the run (Redis, each system, the
// node server) is taken from that range: a port is used only if nothing
// accepts a connection on it (any address: 127.0.0.1 reaches a wildcard
// listener too) and binding 127.0.0.1 to it works, and no port is handed out
// twice in one run. Runs given disjoint ranges can sit side by side.
const ports = { lo: 0, hi: 0, next: 0, used: new Set() };

function setPortRange(spec) {
  const m = /^(\d+)-(\d+)$/.exec(spec || '');
  if (!m || Number(m[1]) < 1024 || Number(m[2]) > 65535 || Number(m[1]) > Number(m[2])) {
    die(`--ports needs a range LO-HI within 1024-65535, e.g. 23000-23999 (not ${spec})`);
  }
  ports.lo = Number(m[1]);
  ports.hi = Number(m[2]);
  ports.next = ports.lo;
}

function canBind(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

async function portFree(port) {
  return !(await canConnect(port)) && canBind(port);
}

async function freePort() {
  if (!ports.lo) {
    return new Promise((resolve, reject) => {
      const s = net.createServer();
      s.on('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
    });
  }
  const span = ports.hi - ports.lo + 1;
  for (let k = 0; k < span; k++) {
    const port = ports.next;
    ports.next = port >= ports.hi ? ports.lo : port + 1;
    if (ports.used.has(port)) continue;
    if (await portFree(port)) {
      ports.used.add(port);
      return port;
    }
  }
  throw new Error(`no free port left in --ports ${ports.lo}-${ports.hi}`);
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

async function waitReady(c, port, timeoutMs, logFile) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (c.status) {
      throw new Error(`${c.name} exited (${JSON.stringify(c.status)}): ${tail(logFile)}`);
    }
    if (await canConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`${c.name} not accepting on port ${port} after ${timeoutMs} ms: ${tail(logFile)}`);
}

function tail(file, n = 8) {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-n).join(' | ');
  } catch (e) { return ''; }
}

function httpReq(agent, port, method, p, body) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    const req = http.request({ host: '127.0.0.1', port, method, path: p, agent, headers,
                               timeout: 10000 }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------- Redis

const REDIS_ADMIN = new Set(['info', 'config', 'flushall', 'ping', 'hello', 'client',
                             'select', 'command', 'quit', 'auth']);

async function startRedis(tmp) {
  const dir = path.join(tmp, 'redis');
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, 'redis.conf');
  fs.writeFileSync(conf, [
    `port ${port}`, 'bind 127.0.0.1', 'protected-mode yes', 'daemonize no',
    `dir ${dir}`, `logfile ${path.join(dir, 'redis.log')}`, 'save ""', 'appendonly no',
    'maxclients 10000', '',
  ].join('\n'));
  const logFile = path.join(dir, 'redis.stdout');
  const c = spawnChild('redis-server', 'redis-server', [conf], logFile);
  await waitReady(c, port, 10000, path.join(dir, 'redis.log'));
  const admin = createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: false } });
  admin.on('error', (e) => log(`redis admin: ${e.message}`));
  await admin.connect();
  await admin.ping();
  const info = parseInfo(await admin.info('server'));
  return { c, port, admin, version: info.redis_version };
}

function parseInfo(s) {
  const o = {};
  for (const line of s.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && line[0] !== '#') o[line.slice(0, i)] = line.slice(i + 1);
  }
  return o;
}

// commands processed so far (all of them, the harness's too): one cheap
// INFO, for polling
const REDIS_POLL_MS = 250;

async function redisProcessed(admin) {
  return Number(parseInfo(await admin.info('stats')).total_commands_processed);
}

// cumulative CPU seconds and commands (by name, harness commands excluded)
async function redisStats(admin) {
  const cpu = parseInfo(await admin.info('cpu'));
  const cs = parseInfo(await admin.info('commandstats'));
  const calls = {};
  const usec = {};
  for (const [k, v] of Object.entries(cs)) {
    const name = k.replace(/^cmdstat_/, '');
    if (REDIS_ADMIN.has(name.split('|')[0])) continue;
    const m = /calls=(\d+)/.exec(v);
    if (m) calls[name] = Number(m[1]);
    const u = /usec=(\d+)/.exec(v);
    if (u) usec[name] = Number(u[1]);
  }
  return { cpu: Number(cpu.used_cpu_sys) + Number(cpu.used_cpu_user), calls, usec };
}

// usec_by: Redis's own time per command (commandstats); a script's time
// (EVALSHA) includes the commands it ran, which are also listed
function redisDelta(a, b) {
  let cmds = 0;
  const by = {};
  const usecBy = {};
  for (const [k, v] of Object.entries(b.calls)) {
    const d = v - (a.calls[k] || 0);
    if (d > 0) { by[k] = d; cmds += d; }
    const u = ((b.usec || {})[k] || 0) - ((a.usec || {})[k] || 0);
    if (d > 0 && u > 0) usecBy[k] = u;
  }
  return { cpu: b.cpu - a.cpu, cmds, by, usec_by: usecBy };
}

// ------------------------------------------------------------- systems

function render(sys, vars) {
  let s = fs.readFileSync(path.resolve(BENCH, 'systems', sys.conf), 'utf8');
  for (const [k, v] of Object.entries(vars)) s = s.split(`@${k}@`).join(String(v));
  return s;
}

// the system's nginx.conf for its current port
function writeConf(sys, ctx) {
  const conf = path.join(sys.dir, 'nginx.conf');
  fs.writeFileSync(conf, render(sys, {
    PORT: sys.port, REDIS_PORT: ctx.redis ? ctx.redis.port : 0, MODULE: ctx.moduleSo,
    NGINX_MODULES, BENCH,
  }));
  sys.args = ['-p', sys.dir + '/', '-c', conf, '-e', path.join(sys.dir, 'error.log')];
}

// the system's port is still free (another server may have taken it since
// the last round): else a new one
async function checkPort(sys, ctx) {
  if (await portFree(sys.port)) return;
  const old = sys.port;
  sys.port = await freePort();
  log(`${sys.name}: port ${old} is taken now: ${sys.port} instead`);
  if (sys.kind === 'nginx') writeConf(sys, ctx);
}

async function prepare(sys, ctx) {
  const dir = path.join(ctx.tmp, sys.name);
  fs.mkdirSync(dir, { recursive: true });
  sys.dir = dir;
  sys.port = await freePort();
  if (sys.redis && !ctx.redis) {
    return `no Redis server: ${ctx.redisError || 'not started'}`;
  }
  if (sys.kind === 'nginx') {
    for (const t of ['client_body_temp', 'proxy_temp', 'fastcgi_temp', 'uwsgi_temp', 'scgi_temp', 'logs']) {
      fs.mkdirSync(path.join(dir, t), { recursive: true });
    }
    writeConf(sys, ctx);
    const t = spawnSync(NGINX, ['-t', ...sys.args], { encoding: 'utf8' });
    if (t.status !== 0) {
      const msg = (t.stderr || '').split('\n').filter((l) => /emerg|alert|crit|error/.test(l))
        .map((l) => l.replace(/^nginx: /, '')).join(' ') || (t.stderr || '').trim();
      return `nginx -t rejected its configuration: ${msg}`;
    }
  }
  return null;
}

async function startSystem(sys, ctx) {
  const logFile = path.join(sys.dir, 'stdout.log');
  let c;
  await checkPort(sys, ctx);
  if (sys.kind === 'nginx') {
    // every round starts from nothing: no state file of the module's
    // (unflushed deltas saved at the previous stop) may be restored
    for (const f of fs.readdirSync(path.join(sys.dir, 'logs'))) {
      if (f.startsWith('engagement.state')) fs.rmSync(path.join(sys.dir, 'logs', f), { force: true });
    }
    c = spawnChild('nginx', NGINX, [...sys.args, '-g', 'daemon off;'], logFile);
  } else if (sys.kind === 'node') {
    c = spawnChild('node', process.execPath,
      [path.join(BENCH, sys.script), '--port', String(sys.port),
       '--redis-port', String(ctx.redis ? ctx.redis.port : 0)], logFile);
  } else {
    throw new Error(`unknown kind ${sys.kind}`);
  }
  await waitReady(c, sys.port, 15000, sys.kind === 'nginx' ? path.join(sys.dir, 'error.log') : logFile);
  return c;
}

async function stopSystem(sys, c) {
  // nginx: graceful (a flushing module gets its final flush); node: SIGTERM
  await stopChild(c, sys.kind === 'nginx' ? 'SIGQUIT' : 'SIGTERM');
}

// --------------------------------------------------------------- readers

// a function id -> views, and how many requests/commands it has sent
function countReader(sys, ctx) {
  const st = { http: 0, redis: 0 };
  if (sys.counts.batch) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const many = async (ids) => {
      st.http++;
      const r = await httpReq(agent, sys.port, 'GET', sys.counts.batch + ids.join(','));
      if (r.status !== 200) throw new Error(`summary: HTTP ${r.status} ${r.body.slice(0, 200)}`);
      const j = JSON.parse(r.body);
      const items = j.items || [j];
      return items.map((x) => Number(x.views) || 0);
    };
    return { st, agent, batch: 100, one: async (id) => (await many([id]))[0], many,
             close: () => agent.destroy() };
  }
  const client = createClient({ socket: { host: '127.0.0.1', port: ctx.redis.port,
                                          reconnectStrategy: false } });
  client.on('error', () => {});
  const ready = client.connect();
  const many = async (ids) => {
    await ready;
    st.redis += ids.length;
    const rs = await Promise.all(ids.map((id) => client.sendCommand(sys.counts.redis(id))));
    return rs.map((v) => Number(v) || 0);
  };
  return { st, batch: 5000, one: async (id) => (await many([id]))[0], many,
           close: () => ready.then(() => client.quit()).catch(() => {}) };
}

// the sum of the views of the measured content ids c1..cN
async function readTotal(sys, ctx, n) {
  const rd = countReader(sys, ctx);
  try {
    let total = 0;
    let touched = 0;
    const chunks = [];
    for (let i = 1; i <= n; i += rd.batch) {
      const ids = [];
      for (let j = i; j < i + rd.batch && j <= n; j++) ids.push(`c${j}`);
      chunks.push(ids);
    }
    const par = sys.counts.batch ? 4 : 1;
    for (let i = 0; i < chunks.length; i += par) {
      const rs = await Promise.all(chunks.slice(i, i + par).map((ids) => rd.many(ids)));
      for (const r of rs) for (const v of r) { total += v; if (v) touched++; }
    }
    return { total, touched };
  } finally {
    await rd.close();
  }
}

// The freshness probe: posts one unique event every probeInterval ms (its
// own content id, so its count goes 0 -> 1) and polls where the counts are
// read until each one shows: at once after the 2xx, then every probePoll ms
// or 5% of the event's age, whichever is longer (about 170 reads for an
// event that takes 10 s, one for an event visible at once). Events not
// visible after probeTimeout ms are counted as timeouts.
function startProbe(sys, ctx, round) {
  const o = ctx.opt;
  const rd = countReader(sys, ctx);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const st = { samples: [], timeouts: 0, posted: 0, failed: 0, http: 0,
               get redis() { return rd.st.redis; } };
  const pending = new Map();   // id -> { t0, next }
  let posting = true;
  let finished = false;

  const poster = (async () => {
    let n = 0;
    while (posting) {
      const tick = nowMs();
      const id = `probe-${round}-${++n}`;
      const body = JSON.stringify({ contentId: id, sessionId: id, viewerId: id,
                                    requestId: id, durationMs: 1000 });
      try {
        st.http++;
        const r = await httpReq(agent, sys.port, 'POST', sys.viewPath, body);
        st.posted++;
        if (r.status >= 200 && r.status < 300) {
          const t = nowMs();
          pending.set(id, { t0: t, next: t });
        } else {
          st.failed++;
        }
      } catch (e) {
        st.failed++;
      }
      const wait = o.probeInterval - (nowMs() - tick);
      if (wait > 0 && posting) await sleep(wait);
    }
  })();

  const poller = (async () => {
    while (posting || pending.size) {
      const now = nowMs();
      const due = [...pending].filter(([, p]) => p.next <= now).map(([id]) => id);
      if (due.length) {
        let vals = null;
        try { vals = await rd.many(due); } catch (e) { vals = null; }
        const t = nowMs();
        due.forEach((id, i) => {
          const p = pending.get(id);
          if (vals && vals[i] >= 1) {
            st.samples.push(t - p.t0);
            pending.delete(id);
          } else if (t - p.t0 > o.probeTimeout) {
            st.timeouts++;
            pending.delete(id);
          } else {
            p.next = t + Math.max(o.probePoll, 0.05 * (t - p.t0));
          }
        });
      }
      await sleep(o.probePoll);
    }
  })();

  return {
    st,
    // stop posting; wait until every event posted is visible or timed out
    finish: async () => {
      if (finished) return;
      finished = true;
      posting = false;
      await poster;
      await poller;
      st.http += rd.st.http;
      agent.destroy();
      await rd.close();
    },
  };
}

// After the load: wait for the probe's events, then (Redis systems) until
// Redis has run no command for sys.quiet seconds: the last flush is in.
async function drain(sys, ctx, probe, loadEnd) {
  const o = ctx.opt;
  const min = (sys.settle !== undefined ? sys.settle : 0.5) * 1000;
  if (probe) await probe.finish();
  if (sys.redis) {
    const quiet = (sys.quiet || 1) * 1000;
    let last = await redisProcessed(ctx.redis.admin);
    let changed = Date.now();
    for (;;) {
      await sleep(REDIS_POLL_MS);
      const t = await redisProcessed(ctx.redis.admin);
      const now = Date.now();
      // the poll's own INFO is one command
      const busy = t - last > 1;
      last = t;
      if (busy) {
        changed = now;
      } else if (now - changed >= quiet && now - loadEnd >= min) {
        return { drain_s: (changed - loadEnd) / 1000, drained: true };
      }
      if (now - loadEnd > o.drainMax * 1000) {
        return { drain_s: (now - loadEnd) / 1000, drained: false };
      }
    }
  }
  const left = loadEnd + min - Date.now();
  if (left > 0) await sleep(left);
  return { drain_s: 0, drained: true };
}

// ------------------------------------------------------------------ wrk

let wrkSeq = 0;

async function runWrk(ctx, sys, script, duration, args, label) {
  const logFile = path.join(sys.dir, `wrk-${String(++wrkSeq).padStart(3, '0')}-${label}.log`);
  const argv = ['-t', String(ctx.opt.threads), '-c', String(ctx.opt.connections),
                '-d', `${duration}s`, '--latency', '--timeout', '5s',
                '-s', path.join(BENCH, 'wrk', script), `http://127.0.0.1:${sys.port}`,
                '--', ...args];
  fs.writeFileSync(logFile, `wrk ${argv.join(' ')}\n`);
  const c = spawnChild('wrk', 'wrk', argv, logFile);
  const st = await c.exited;
  const out = fs.readFileSync(logFile, 'utf8');
  const line = out.split('\n').find((l) => l.startsWith('BENCH '));
  if (st.code !== 0 || !line) {
    throw new Error(`wrk ${label} failed (${JSON.stringify(st)}): ${tail(logFile, 4)}`);
  }
  return JSON.parse(line.slice(6));
}

// ---------------------------------------------------------- one system run

// error lines a server logged since offset (nginx: [error] and worse;
// node: anything but its "listening" line)
function logSize(file) {
  try { return fs.statSync(file).size; } catch (e) { return 0; }
}

function loggedErrors(sys, file, offset) {
  let text = '';
  try {
    const fd = fs.openSync(file, 'r');
    const len = Math.max(0, fs.fstatSync(fd).size - offset);
    const buf = Buffer.alloc(Math.min(len, 64 * 2 ** 20));
    fs.readSync(fd, buf, 0, buf.length, offset);
    fs.closeSync(fd);
    text = buf.toString();
  } catch (e) { return { n: 0 }; }
  const bad = sys.kind === 'nginx'
    ? (l) => /\[(error|crit|alert|emerg)\]/.test(l)
    : (l) => l.trim() && !l.startsWith('listening');
  const lines = text.split('\n').filter(bad);
  return { n: lines.length, first: lines[0] };
}

// a run's end: its server stopped, the errors it logged since errOffset
// counted into res (and the first kept)
async function endRun(sys, c, res, errLog, errOffset) {
  if (c) await stopSystem(sys, c);
  const le = loggedErrors(sys, errLog, errOffset);
  res.logged_errors = le.n;
  if (le.first) res.logged_error_example = le.first.slice(0, 300);
}

async function runOne(sys, round, ctx) {
  const res = { system: sys.name, round, ok: false };
  const o = ctx.opt;
  let c = null;
  const errLog = path.join(sys.dir, sys.kind === 'nginx' ? 'error.log' : 'stdout.log');
  const errOffset = logSize(errLog);
  try {
    if (sys.redis) await ctx.redis.admin.flushAll();
    c = await startSystem(sys, ctx);
    const alive = () => {
      if (c.status) throw new Error(`server exited during the run (${JSON.stringify(c.status)})`);
    };
    const genArgs = (prefix, seed) => [`path=${sys.viewPath}`, `seed=${seed}`, `prefix=${prefix}`];

    if (o.warmup > 0) {
      await runWrk(ctx, sys, 'views.lua', o.warmup, genArgs('w', o.seed + 1000), `r${round}-warmup`);
      alive();
    }

    // the view load
    const cpu0 = treeCpu(c.pid);
    const rs0 = sys.redis ? await redisStats(ctx.redis.admin) : null;
    const probe = sys.counts ? startProbe(sys, ctx, round) : null;
    const t0 = Date.now();
    let w;
    try {
      w = await runWrk(ctx, sys, 'views.lua', o.duration, genArgs('c', o.seed), `r${round}-views`);
    } catch (e) {
      if (probe) await probe.finish();
      throw e;
    }
    const dr = await drain(sys, ctx, probe, t0 + o.duration * 1000);
    alive();
    const cpu1 = treeCpu(c.pid);
    const rs1 = sys.redis ? await redisStats(ctx.redis.admin) : null;

    const secs = w.duration_us / 1e6;
    const accepted = w.requests - w.errors.status;
    const httpReqs = w.requests + (probe ? probe.st.http : 0);
    const v = {
      requests: w.requests,
      rps: w.requests / secs,
      p50_ms: w.latency_us.p50 / 1000,
      p99_ms: w.latency_us.p99 / 1000,
      non2xx: w.errors.status,
      socket_errors: w.errors.connect + w.errors.read + w.errors.write + w.errors.timeout,
      sent: w.sent,
      accepted,
      truth: w.truth.unique,
      replay_matches: w.truth.replay_matches,
      server_cpu_s: cpu1 - cpu0,
      cpu_us_per_req: ((cpu1 - cpu0) * 1e6) / httpReqs,
      probe_http: probe ? probe.st.http : 0,
      drain_s: dr.drain_s,
      drained: dr.drained,
    };
    if (rs0) {
      const d = redisDelta(rs0, rs1);
      const probeCmds = probe ? probe.st.redis : 0;
      v.redis_cmds = d.cmds - probeCmds;
      v.redis_by = d.by;
      v.redis_usec_by = d.usec_by;
      v.redis_probe_cmds = probeCmds;
      v.redis_probe_cmd = sys.counts && sys.counts.redis
        ? String(sys.counts.redis('x')[0]).toLowerCase() : null;
      v.redis_cmds_per_event = v.redis_cmds / accepted;
      v.redis_cpu_us_per_event = (d.cpu * 1e6) / accepted;
    }
    if (probe) {
      v.freshness_ms = probe.st.samples;
      v.freshness_timeouts = probe.st.timeouts;
      v.probe_failed = probe.st.failed;
    }
    if (sys.counts) {
      const t = await readTotal(sys, ctx, 100000);
      v.counted = t.total;
      v.content_touched = t.touched;
      v.exactness = t.total - v.truth;
    }
    res.views = v;

    if (sys.status) {
      const agent = new http.Agent({ keepAlive: false });
      const r = await httpReq(agent, sys.port, 'GET', sys.status);
      res.zone = zoneFigures(r.body);
    }

    if (o.reads > 0) {
      const a0 = treeCpu(c.pid);
      const b0 = sys.redis ? await redisStats(ctx.redis.admin) : null;
      const rw = await runWrk(ctx, sys, 'reads.lua', o.reads,
                              [`path=${sys.readPath}`, `seed=${o.seed}`, 'prefix=c'], `r${round}-reads`);
      alive();
      const a1 = treeCpu(c.pid);
      const b1 = sys.redis ? await redisStats(ctx.redis.admin) : null;
      const rd = {
        requests: rw.requests,
        rps: rw.requests / (rw.duration_us / 1e6),
        p50_ms: rw.latency_us.p50 / 1000,
        p99_ms: rw.latency_us.p99 / 1000,
        non2xx: rw.errors.status,
        socket_errors: rw.errors.connect + rw.errors.read + rw.errors.write + rw.errors.timeout,
        cpu_us_per_req: ((a1 - a0) * 1e6) / rw.requests,
      };
      if (b0) {
        const d = redisDelta(b0, b1);
        rd.redis_cmds_per_req = d.cmds / rw.requests;
        rd.redis_cpu_us_per_req = (d.cpu * 1e6) / rw.requests;
      }
      res.reads = rd;
    }
    res.ok = true;
  } catch (e) {
    res.error = e.message;
  } finally {
    await endRun(sys, c, res, errLog, errOffset);
  }
  return res;
}

// the dedupe zone's figures from the module's Prometheus status
function zoneFigures(text) {
  const m = {};
  for (const line of text.split('\n')) {
    const x = /^(\w+)\{([^}]*)\}\s+(\S+)$/.exec(line);
    if (!x) continue;
    const labels = {};
    for (const kv of x[2].matchAll(/(\w+)="([^"]*)"/g)) labels[kv[1]] = kv[2];
    const key = x[1] + (labels.kind ? `.${labels.kind}` : '');
    m[key] = (m[key] || 0) + Number(x[3]);
  }
  const z = {
    dedupe_size: m['nginx_engagement_zone_size_bytes.dedupe'],
    dedupe_free: m['nginx_engagement_zone_free_bytes.dedupe'],
    dedupe_entries: m['nginx_engagement_zone_entries.dedupe'],
    counters_size: m['nginx_engagement_zone_size_bytes.counters'],
    counters_free: m['nginx_engagement_zone_free_bytes.counters'],
    counters_entries: m['nginx_engagement_zone_entries.counters'],
    dedupe_evictions: m.nginx_engagement_dedupe_evictions_total,
  };
  if (z.dedupe_entries > 0) z.dedupe_bytes_per_entry = (z.dedupe_size - z.dedupe_free) / z.dedupe_entries;
  if (z.counters_entries > 0) z.counters_bytes_per_entry = (z.counters_size - z.counters_free) / z.counters_entries;
  return z;
}

// ------------------------------------------- instructions per request

// The noise-free figure: the instructions (callgrind's Ir) that one nginx
// worker executes per request of a fixed, deterministic workload. Each
// system with `instructions: true` is started with one worker under
// `valgrind --tool=callgrind` (no cache or branch simulation, no
// per-instruction dump) twice: once serving the first N events of the
// view workload (wrk's first thread's stream, same seed; bench/wrk/fixed.lua
// writes them), sent one at a time over one keep-alive connection, and
// once serving none. Both are stopped gracefully (SIGQUIT: callgrind
// writes each process's totals at its exit), and
//   instructions per request = (Ir_worker(N) - Ir_worker(0)) / N
// so the worker's start-up and shutdown cost cancels out. Instruction
// counts do not depend on the machine's load, its frequency or the other
// processes on the cores: a change of the module's cost shows on a busy
// machine too.

function fixedBodies(ctx, n) {
  const file = path.join(ctx.tmp, `fixed-${n}.bodies`);
  const r = spawnSync('wrk', ['-t1', '-c1', '-d1s', '-s', path.join(BENCH, 'wrk', 'fixed.lua'),
                              'http://127.0.0.1:1'], {
    encoding: 'utf8',
    env: { ...process.env, BENCH_FIXED_N: String(n), BENCH_FIXED_OUT: file,
           BENCH_FIXED_SEED: String(ctx.opt.seed), BENCH_FIXED_PREFIX: 'c' },
  });
  const line = (r.stdout || '').split('\n').find((l) => l.startsWith('BENCH '));
  if (r.status !== 0 || !line) {
    throw new Error(`bench/wrk/fixed.lua failed: ${(r.stderr || r.stdout || '').trim().slice(0, 300)}`);
  }
  const bodies = fs.readFileSync(file, 'utf8').split('\n').slice(0, n);
  if (bodies.length !== n) throw new Error(`fixed.lua wrote ${bodies.length} bodies, not ${n}`);
  return { bodies, mix: JSON.parse(line.slice(6)) };
}

// callgrind's totals of every output file in dir: [{ pid, ir }]
function callgrindTotals(dir) {
  const out = [];
  for (const f of fs.readdirSync(dir)) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    const pid = /^pid:\s*(\d+)/m.exec(text);
    const tot = /^totals:\s*(\d+)/m.exec(text) || /^summary:\s*(\d+)/m.exec(text);
    if (pid && tot) out.push({ pid: Number(pid[1]), ir: Number(tot[1]), file: f });
  }
  return out;
}

// self instructions by function of one callgrind output file: Map
// "function (object)" -> Ir. Cost lines after a calls= line are the
// callee's inclusive cost, not the caller's own.
function callgrindSelf(file) {
  const names = { fn: new Map(), ob: new Map() };
  const self = new Map();
  let fn = '?';
  let ob = '?';
  let afterCall = false;
  const name = (kind, v) => {
    const m = /^\((\d+)\)(?:\s+(.*))?$/.exec(v);
    if (!m) return v;
    if (m[2] !== undefined) names[kind].set(m[1], m[2]);
    return names[kind].get(m[1]) || v;
  };
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const c = line.charCodeAt(0);
    if ((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 42) {   // 0-9 + - *
      if (afterCall) { afterCall = false; continue; }
      const ir = Number(line.split(' ')[1]);
      if (Number.isFinite(ir)) {
        const key = `${fn} (${path.basename(ob)})`;
        self.set(key, (self.get(key) || 0) + ir);
      }
    } else if (line.startsWith('fn=')) {
      fn = name('fn', line.slice(3));
    } else if (line.startsWith('ob=')) {
      ob = name('ob', line.slice(3));
    } else if (line.startsWith('cfn=')) {
      name('fn', line.slice(4));
    } else if (line.startsWith('cob=')) {
      name('ob', line.slice(4));
    } else if (line.startsWith('calls=')) {
      afterCall = true;
    }
  }
  return self;
}

// where the instructions per request go: (load - idle) / n by function
// (the top `count`) and by object (nginx, the module, libjansson, libc...)
function profile(loadFile, idleFile, n, count = 12) {
  const a = callgrindSelf(loadFile);
  const b = callgrindSelf(idleFile);
  const fns = [];
  const objs = new Map();
  for (const [k, v] of a) {
    const d = (v - (b.get(k) || 0)) / n;
    const ob = k.slice(k.lastIndexOf(' (') + 2, -1);
    objs.set(ob, (objs.get(ob) || 0) + d);
    if (d > 0) fns.push({ fn: k, ir_per_req: Math.round(d * 10) / 10 });
  }
  fns.sort((x, y) => y.ir_per_req - x.ir_per_req);
  const objects = [...objs].map(([ob, d]) => ({ object: ob, ir_per_req: Math.round(d * 10) / 10 }))
    .filter((x) => Math.abs(x.ir_per_req) >= 0.5)
    .sort((x, y) => y.ir_per_req - x.ir_per_req);
  return { functions: fns.slice(0, count), objects };
}

// one nginx (master + one worker) under callgrind serving bodies; the Ir
// of its worker and of its master
async function callgrindRun(sys, ctx, conf, bodies, label) {
  const dir = path.join(sys.dir, `callgrind-${label}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o1777);   // the worker runs as nginx's user (nobody)
  if (sys.redis) await ctx.redis.admin.flushAll();
  const stateFiles = () => fs.readdirSync(path.join(sys.dir, 'logs'))
    .filter((f) => f.startsWith('engagement.state'));
  for (const f of stateFiles()) fs.rmSync(path.join(sys.dir, 'logs', f), { force: true });
  const rs0 = sys.redis ? await redisStats(ctx.redis.admin) : null;
  const logFile = path.join(sys.dir, `callgrind-${label}.log`);
  const t0 = Date.now();
  // named nginx: stopAll() stops it with SIGQUIT, as an nginx master
  const c = spawnChild('nginx', 'valgrind', [
    '--tool=callgrind', '--dump-instr=no', '--dump-line=no', '--cache-sim=no',
    '--branch-sim=no', `--callgrind-out-file=${dir}/callgrind.out.%p`,
    NGINX, '-p', sys.dir + '/', '-c', conf, '-e', path.join(sys.dir, 'error.log'),
    '-g', 'daemon off;'], logFile);
  let worker;
  const st = { n: bodies.length, status: {} };
  try {
    await waitReady(c, sys.port, 120000, logFile);
    // bench/run's leftover check matches the PID file's name to
    // /proc/<pid>/comm: under valgrind that is the tool's (callgrind-amd64)
    if (pidFile && c.pid) {
      try {
        const comm = fs.readFileSync(`/proc/${c.pid}/comm`, 'utf8').trim();
        fs.appendFileSync(pidFile, `${c.pid} ${comm}\n`);
      } catch (e) { /* gone */ }
    }
    st.start_s = (Date.now() - t0) / 1000;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const t1 = Date.now();
    try {
      for (const b of bodies) {
        const r = await httpReq(agent, sys.port, 'POST', sys.viewPath, b);
        st.status[r.status] = (st.status[r.status] || 0) + 1;
        if (aborting) throw new Error('aborted');
        if (c.status) throw new Error(`nginx exited (${JSON.stringify(c.status)})`);
      }
    } finally {
      agent.destroy();
    }
    st.load_s = (Date.now() - t1) / 1000;
  } finally {
    const ex = await stopChild(c, 'SIGQUIT', 120000);
    st.exit = ex;
  }
  st.wall_s = (Date.now() - t0) / 1000;
  if (rs0) {
    // what the worker sent to Redis (its final flush included)
    const d = redisDelta(rs0, await redisStats(ctx.redis.admin));
    st.redis_cmds = d.cmds;
    st.redis_by = d.by;
  }
  // a state file: the final flush did not send everything (the master
  // saved the rest), so the worker's figure misses part of the flush
  const left = stateFiles();
  if (left.length) st.state_file_left = left;
  const files = callgrindTotals(dir);
  const master = files.find((f) => f.pid === c.pid);
  const workers = files.filter((f) => f.pid !== c.pid);
  if (workers.length !== 1) {
    throw new Error(`expected one worker's callgrind output in ${dir}, found ${workers.length}`
      + ` (valgrind: ${tail(logFile, 3)})`);
  }
  worker = workers[0];
  st.worker_ir = worker.ir;
  st.worker_file = path.join(dir, worker.file);
  st.master_ir = master ? master.ir : null;
  return st;
}

async function instructions(active, ctx) {
  const o = ctx.opt;
  const n = o.instructionsRequests;
  const res = { method: 'callgrind', requests: n, seed: o.seed, systems: [] };
  const v = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  if (v.status !== 0) {
    res.error = `valgrind not found (${(v.error && v.error.message) || v.stderr})`;
    log(`instructions per request: skipped: ${res.error}`);
    return res;
  }
  res.valgrind = v.stdout.trim();
  const systems = active.filter((s) => s.instructions && s.kind === 'nginx');
  if (!systems.length) return res;
  let fixed;
  try {
    fixed = fixedBodies(ctx, n);
  } catch (e) {
    res.error = e.message;
    log(`instructions per request: ${e.message}`);
    return res;
  }
  res.mix = fixed.mix;
  log(`instructions per request (callgrind, one worker, ${n} requests): `
      + systems.map((s) => s.name).join(' '));
  for (const sys of systems) {
    if (aborting) break;
    const r = { system: sys.name, ok: false };
    const t0 = Date.now();
    const errLog = path.join(sys.dir, 'error.log');
    const errOffset = logSize(errLog);
    try {
      await checkPort(sys, ctx);
      // the system's configuration with one worker
      const main = path.join(sys.dir, 'nginx-main-1worker.conf');
      fs.writeFileSync(main, fs.readFileSync(path.join(BENCH, 'systems', 'nginx-main.conf'), 'utf8')
        .replace(/^\s*worker_processes\s+[^;]*;/m, 'worker_processes 1;'));
      const conf = path.join(sys.dir, 'nginx-callgrind.conf');
      let text = fs.readFileSync(path.join(sys.dir, 'nginx.conf'), 'utf8')
        .split(path.join(BENCH, 'systems', 'nginx-main.conf')).join(main);
      fs.writeFileSync(conf, text);
      const t = spawnSync(NGINX, ['-t', '-p', sys.dir + '/', '-c', conf, '-e', errLog],
                          { encoding: 'utf8' });
      if (t.status !== 0) {
        throw new Error(`nginx -t rejected ${conf}: ${(t.stderr || '').trim().split('\n').slice(-2).join(' ')}`);
      }
      const idle = await callgrindRun(sys, ctx, conf, [], 'idle');
      const load = await callgrindRun(sys, ctx, conf, fixed.bodies, 'load');
      r.idle = idle;
      r.load = load;
      r.ir_per_req = (load.worker_ir - idle.worker_ir) / n;
      if (load.redis_cmds !== undefined) {
        r.redis_cmds_per_req = (load.redis_cmds - (idle.redis_cmds || 0)) / n;
      }
      if (load.state_file_left) {
        r.warning = 'the final flush did not send every delta (a state file was left): '
          + 'the figure misses part of the flush';
      }
      try {
        Object.assign(r, profile(load.worker_file, idle.worker_file, n));
      } catch (e) {
        r.functions_error = e.message;
      }
      delete idle.worker_file;
      delete load.worker_file;
      r.ok = true;
      log(`  ${sys.name}: ${Math.round(r.ir_per_req).toLocaleString('en-US')} instructions/request `
          + `(worker Ir ${load.worker_ir.toLocaleString('en-US')} - ${idle.worker_ir.toLocaleString('en-US')}; `
          + `${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
      r.error = e.message;
      log(`  ${sys.name}: failed: ${e.message}`);
    }
    r.wall_s = (Date.now() - t0) / 1000;
    const le = loggedErrors(sys, errLog, errOffset);
    r.logged_errors = le.n;
    if (le.first) r.logged_error_example = le.first.slice(0, 300);
    res.systems.push(r);
  }
  // x.ratios: against each ceiling (ceiling, ceiling-json)
  const ceils = res.systems.filter((x) => x.ok && systems.find((s) => s.name === x.system).ceiling);
  for (const c of ceils) {
    for (const x of res.systems) {
      if (x.ok && x !== c) (x.ratios = x.ratios || {})[c.system] = x.ir_per_req / c.ir_per_req;
    }
    const rs = res.systems.filter((x) => x.ratios && x.ratios[c.system])
      .map((x) => `${x.system} ${x.ratios[c.system].toFixed(2)}x`);
    if (rs.length) log(`  instructions per request against ${c.system}: ${rs.join(', ')}`);
  }
  return res;
}

// ------------------------------------------------------------------ main

function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout || ''}${r.stderr || ''}`.trim();
}

function machine() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = (/^model name\s*:\s*(.*)$/m.exec(cpuinfo) || [])[1] || 'unknown';
  return {
    nproc: Number(sh('nproc', [])),
    cpu: model.trim(),
    kernel: os.release(),
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    nginx: sh(NGINX, ['-v']).replace(/^nginx version:\s*/, ''),
    wrk: (sh('wrk', ['-v']).split('\n')[0] || '').replace(/\s*Copyright.*/, ''),
    node: process.version,
    debian: (fs.existsSync('/etc/debian_version') ? fs.readFileSync('/etc/debian_version', 'utf8').trim() : ''),
    module_commit: sh('git', ['-C', ROOT, 'describe', '--always', '--dirty']),
    loadavg_start: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    date: new Date().toISOString(),
  };
}

function stamp() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-`
    + `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  if (opt.list) {
    for (const s of ALL_SYSTEMS) console.log(`${s.name.padEnd(16)} ${s.title}${s.optional ? ' (optional)' : ''}`);
    return;
  }
  let systems = ALL_SYSTEMS.map((s) => ({ ...s }));
  if (opt.systems) {
    for (const n of opt.systems) {
      if (!systems.find((s) => s.name === n)) die(`unknown system ${n} (see --list)`);
    }
    systems = systems.filter((s) => opt.systems.includes(s.name));
  }
  for (const n of opt.pacedSystems || []) {
    if (!systems.find((s) => s.name === n)) die(`--paced-systems: ${n} is not a system of this run (see --list)`);
  }

  const ts = stamp();
  // smoke tests' results are kept apart (and out of git)
  const out = path.join(BENCH, 'results', opt.quick ? `quick-${ts}` : ts);
  const tmp = path.join(BENCH, 'results', 'tmp', ts);
  fs.mkdirSync(out, { recursive: true });
  fs.mkdirSync(tmp, { recursive: true });
  pidFile = process.env.BENCH_PIDFILE || path.join(tmp, 'pids');

  const ctx = { opt, tmp, redis: null };
  const run = { opt, machine: machine(), systems: [], results: [], out, tmp, ts, root: ROOT,
                command: `bench/run ${process.argv.slice(2).join(' ')}`.trim() };
  log(`results: ${path.relative(ROOT, out)}/ (scratch: ${path.relative(ROOT, tmp)}/)`);

  // the module as it is now: a rebuild during the run must not change it
  if (fs.existsSync(MODULE_SO)) {
    ctx.moduleSo = path.join(tmp, path.basename(MODULE_SO));
    fs.copyFileSync(MODULE_SO, ctx.moduleSo);
  } else {
    ctx.moduleSo = MODULE_SO;
    log(`warning: ${MODULE_SO} does not exist: the module systems will fail`);
  }

  if (systems.some((s) => s.redis)) {
    try {
      ctx.redis = await startRedis(tmp);
      run.machine.redis = ctx.redis.version;
      log(`redis-server ${ctx.redis.version} on 127.0.0.1:${ctx.redis.port} (pid ${ctx.redis.c.pid})`);
    } catch (e) {
      ctx.redisError = e.message;
      log(`redis-server failed to start: ${e.message}`);
    }
  }

  const active = [];
  for (const s of systems) {
    let why;
    try {
      why = await prepare(s, ctx);
    } catch (e) {
      why = e.message;
    }
    const entry = { name: s.name, title: s.title, ceiling: !!s.ceiling, async: !!s.quiet,
                    counts: !!s.counts, port: s.port, only: s.only };
    if (why && s.optional) {
      entry.skipped = why;
      log(`${s.name}: skipped: ${why}`);
    } else if (why) {
      entry.failed = why;
      log(`${s.name}: fails: ${why}`);
    } else {
      active.push(s);
    }
    run.systems.push(entry);
  }

  // the systems of the load rounds and the paced part
  const loaded = active.filter((s) => !s.only);
  const per = 1.5 + opt.warmup + opt.duration + 1.5 + opt.reads;
  const est = Math.round((per * loaded.length * opt.rounds) / 60 * 10) / 10;
  log(`${opt.rounds} round(s) x ${loaded.length} system(s) [${loaded.map((s) => s.name).join(' ')}]`
      + `, ${opt.duration} s views + ${opt.reads} s reads each: about ${est} min`
      + ' plus the time asynchronous flushes take to drain'
      + (opt.instructions && active.some((s) => s.instructions)
        ? `, plus the instruction count (${opt.instructionsRequests} requests under callgrind,`
          + ` about ${Math.round((active.filter((s) => s.instructions).length
                                  * (3 + opt.instructionsRequests * 0.0008)) / 6) / 10} min)` : ''));

  for (let r = 1; r <= opt.rounds && !aborting; r++) {
    for (const s of loaded) {
      if (aborting) break;
      log(`round ${r}/${opt.rounds}: ${s.name} on 127.0.0.1:${s.port}`);
      const res = await runOne(s, r, ctx);
      if (aborting) break;
      run.results.push(res);
      if (res.ok) {
        const v = res.views;
        log(`  ${Math.round(v.rps)} req/s, p99 ${v.p99_ms.toFixed(2)} ms, `
            + `${v.cpu_us_per_req.toFixed(1)} us CPU/req`
            + (v.exactness !== undefined ? `, exactness ${v.exactness >= 0 ? '+' : ''}${v.exactness}` : '')
            + (res.reads ? `; reads ${Math.round(res.reads.rps)} req/s` : '')
            + (res.logged_errors ? `; ${res.logged_errors} error lines logged` : ''));
      } else {
        log(`  failed: ${res.error}`);
      }
    }
  }

  if (opt.rates.length && !aborting) {
    run.paced = await paced(loaded, ctx, {
      log, sleep, nowMs, spawnChild, tail, startSystem, startProbe, drain,
      readTotal, redisStats, redisDelta, redisProcessed, REDIS_POLL_MS, treeCpu, logSize,
      endRun, aborting: () => aborting,
    });
  }

  // after the rounds (their servers are stopped), Redis still up
  if (opt.instructions && !aborting) {
    run.instructions = await instructions(active, ctx);
  }

  if (ctx.redis) {
    await ctx.redis.admin.quit().catch(() => {});
    await stopChild(ctx.redis.c, 'SIGTERM');
  }
  await stopAll();
  if (aborting) return;

  run.machine.loadavg_end = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  run.finished = new Date().toISOString();
  const files = report.write(run, { ROOT, BENCH });
  for (const f of files) log(`wrote ${path.relative(ROOT, f)}`);
}

main().catch(async (e) => {
  console.error(e && e.stack ? e.stack : e);
  await stopAll();
  process.exit(1);
});
