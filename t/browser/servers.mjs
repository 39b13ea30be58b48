// The real servers of the browser tests: a redis-server and an nginx with
// the built module, on free loopback ports of TEST_NGINX_PORT's range
// (+700..+799), in a private prefix; each started as our child and stopped
// by its PID, so nothing is left running.
import { spawn, execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export const sleep = ms => new Promise(r => setTimeout(r, ms));

// polls fn until it returns a truthy value; throws naming what it waited for
export async function waitFor(fn, ms, what) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try { last = await fn(); } catch (e) { last = e; }
    if (last && !(last instanceof Error)) return last;
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}` +
                      (last instanceof Error ? ` (${last.message})` : ""));
    }
    await sleep(100);
  }
}

function bindable(port) {
  return new Promise(res => {
    const s = net.createServer();
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

export async function freePort(taken = []) {
  const base = +(process.env.TEST_NGINX_PORT || 1984) + 700;
  for (let i = 0; i < 200; i++) {
    const p = base + Math.floor(Math.random() * 100);
    if (!taken.includes(p) && await bindable(p)) return p;
  }
  throw new Error(`no free port in ${base}..${base + 99}`);
}

// what is missing to run the tests at all, or null
export function missing() {
  const need = [["nginx", nginxBinary()], ["redis-server", which("redis-server")],
                ["redis-cli", which("redis-cli")], ["ffmpeg", which("ffmpeg")],
                ["the module", fs.existsSync(modulePath()) && modulePath()]];
  const no = need.filter(([, p]) => !p).map(([n]) => n);
  return no.length ? no.join(", ") : null;
}

function which(cmd) {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

export function nginxBinary() {
  return process.env.TEST_NGINX_BINARY || which("nginx") ||
         (fs.existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : null);
}

export function modulePath() {
  const m = (process.env.TEST_NGINX_LOAD_MODULES || "").split(/\s+/)[0];
  return m || path.join(ROOT, "build/ngx_http_engagement_module.so");
}

// our children: whatever way this process ends, they are stopped by PID
// (SIGTERM: nginx's master then stops its workers itself)
const children = new Set();
process.on("exit", () => { for (const p of children) p.kill("SIGTERM"); });
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => process.exit(1));
}

// a child process that is stopped by its PID and awaited
function child(cmd, args, logFile) {
  const out = fs.openSync(logFile, "a");
  const p = spawn(cmd, args, { stdio: ["ignore", out, out] });
  fs.closeSync(out);
  children.add(p);
  p.exited = new Promise(res => p.once("exit", (code, sig) => {
    children.delete(p);
    res({ code, sig });
  }));
  return p;
}

async function stop(p, sig, ms = 10000) {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  p.kill(sig);
  const r = await Promise.race([p.exited, sleep(ms).then(() => null)]);
  if (!r) {
    p.kill("SIGKILL");
    await p.exited;
  }
}

export class Redis {
  constructor(dir, port) { this.dir = dir; this.port = port; }

  async start() {
    this.proc = child("redis-server",
                      ["--port", String(this.port), "--bind", "127.0.0.1",
                       "--save", "", "--appendonly", "no", "--daemonize", "no",
                       "--dir", this.dir],
                      path.join(this.dir, "redis.log"));
    await waitFor(() => this.proc.exitCode === null && this.cli("PING") === "PONG",
                  10000, `redis-server on port ${this.port}`);
    return this;
  }

  cli(...args) {
    return execFileSync("redis-cli", ["-p", String(this.port), ...args],
                        { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  }

  // kill -9 by PID: no goodbye to its clients
  async kill() { await stop(this.proc, "SIGKILL"); }
  async stop() { await stop(this.proc, "SIGTERM"); }
}

export class Nginx {
  constructor(prefix, port, redisPort) {
    this.prefix = prefix; this.port = port; this.redisPort = redisPort;
    this.url = `http://127.0.0.1:${port}`;
  }

  conf() {
    const user = process.getuid && process.getuid() === 0 ? "user root root;" : "";
    return `# written by t/browser/servers.mjs: the quick start's endpoints
# with a 2 s view policy and a fast flush
load_module ${modulePath()};
${user}
worker_processes 2;
daemon off;
master_process on;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    log_format t escape=none '$msec $request_method $uri $status $engagement_outcome '
                 '$engagement_reason $engagement_content_id $request_body';
    access_log logs/access.log t;
    client_body_temp_path temp/body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
    client_body_buffer_size 16k;
    types {
        text/html html;
        application/javascript js mjs;
        video/webm webm;
    }
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_redis 127.0.0.1:${this.redisPort} buckets=0;
    engagement_flush_interval 200ms;
    engagement_edge_id browser-tests;
    engagement_reactions like love laugh wow sad angry;
    engagement_live_zone 1m;
    engagement_heartbeat_interval 2s;
    engagement_live_push 250ms;
    engagement_token_secret "browser-tests-not-a-secret-0123456789abcdef";
    engagement_limit_zone likes_per_user:64k;
    engagement_interaction subscribe_button share_button;
    engagement_trending_bucket 2s;

    server {
        listen 127.0.0.1:${this.port};
        location = /engagement/view {
            engagement view;
            engagement_dedupe_window 30m;
            engagement_view_after 2s;
            engagement_engaged_after 4s;
        }
        location /engagement/summary { engagement summary; }
        location = /engagement/like { engagement like; }
        location = /engagement/state { engagement state; }
        location = /engagement/heartbeat { engagement heartbeat; }
        location = /engagement/resume { engagement resume; }
        location /engagement/live { engagement live; send_timeout 30s; }
        location = /engagement/status { engagement status; }
        location = /engagement/event { engagement event; }
        location = /engagement/analytics { engagement analytics; }
        location = /engagement/trending { engagement trending; }
        # the guarded flavour: views need a token from the bootstrap
        location = /guarded/bootstrap {
            engagement_token_bind $arg_contentId $arg_sessionId;
            default_type application/json;
            return 200 '{"token":"$engagement_token"}';
        }
        location = /guarded/view {
            engagement view;
            engagement_require_token on;
            engagement_view_after 2s;
            engagement_engaged_after 4s;
        }
        # the limited flavour: one reaction per user every 2 s
        location = /limited/like {
            engagement like;
            engagement_limit zone=likes_per_user key=$engagement_viewer_id rate=30r/m;
        }
        location /sdk/ { alias ${ROOT}/sdk/; }
        location / { root html; }
    }
}
`;
  }

  // nginx's arguments after -p and -c
  args() { return []; }

  async start() {
    for (const d of ["logs", "temp", "html/media"]) {
      fs.mkdirSync(path.join(this.prefix, d), { recursive: true });
    }
    fs.writeFileSync(path.join(this.prefix, "nginx.conf"), this.conf());
    this.proc = child(nginxBinary(),
                      ["-p", this.prefix + "/", "-c", path.join(this.prefix, "nginx.conf"),
                       ...this.args()],
                      path.join(this.prefix, "logs/stderr.log"));
    // ours is up when our pid file names our process and it answers
    const pidFile = path.join(this.prefix, "logs/nginx.pid");
    await waitFor(async () => {
      if (this.proc.exitCode !== null) throw new Error("nginx exited: " + this.log());
      if (!fs.existsSync(pidFile) ||
          +fs.readFileSync(pidFile, "utf8") !== this.proc.pid) return false;
      return (await fetch(this.url + "/sdk/engagement.js")).ok;
    }, 15000, `nginx on port ${this.port}`);
    return this;
  }

  log() {
    const f = path.join(this.prefix, "logs/stderr.log");
    return fs.existsSync(f) ? fs.readFileSync(f, "utf8").slice(-2000) : "";
  }

  // access log lines as {method, uri, status, outcome, reason, content, body}
  access() {
    const f = path.join(this.prefix, "logs/access.log");
    if (!fs.existsSync(f)) return [];
    return fs.readFileSync(f, "utf8").split("\n").filter(Boolean).map(l => {
      const [ts, method, uri, status, outcome, reason, content, ...body] = l.split(" ");
      return { ts: +ts, method, uri, status: +status, outcome, reason, content,
               body: body.join(" ") };
    });
  }

  async get(p) {
    const r = await fetch(this.url + p, { cache: "no-store" });
    return { status: r.status, body: await r.json().catch(() => null) };
  }

  async stop() { await stop(this.proc, "SIGTERM"); }
}

// conf-examples/quickstart.conf itself, as `./build.sh run` serves it: the
// same prefix layout (modules/, html/, sdk/, node_modules/ for hls.js from
// conf-examples' npm ci) and the same two rewrites (nginx's port, Redis's)
export class Quickstart extends Nginx {
  conf() {
    for (const [l, to] of [["modules/ngx_http_engagement_module.so", modulePath()],
                           ["sdk", path.join(ROOT, "sdk")],
                           ["node_modules", path.join(ROOT, "conf-examples/node_modules")]]) {
      const at = path.join(this.prefix, l);
      fs.mkdirSync(path.dirname(at), { recursive: true });
      fs.rmSync(at, { force: true });
      fs.symlinkSync(to, at);
    }
    return fs.readFileSync(path.join(ROOT, "conf-examples/quickstart.conf"), "utf8")
      .replace(/127\.0\.0\.1:8080/g, `127.0.0.1:${this.port}`)
      .replace(/127\.0\.0\.1:6379/g, `127.0.0.1:${this.redisPort}`);
  }

  // in the foreground; as root, workers that can read the private prefix
  args() {
    const root = process.getuid && process.getuid() === 0;
    return ["-g", "daemon off;" + (root ? " user root root;" : "")];
  }
}

// hls.js installed from conf-examples/package-lock.json (npm ci), or null
export function hlsJs() {
  const f = path.join(ROOT, "conf-examples/node_modules/hls.js/dist/hls.min.js");
  return fs.existsSync(f) ? f : null;
}

// a private prefix with the pages and the 10 s demo video made by ffmpeg
// (media/demo.webm, VP8; media/hls/, H.264 in 2 s HLS segments)
export function makePrefix() {
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), "engagement-browser-"));
  fs.mkdirSync(path.join(prefix, "html/media"), { recursive: true });
  fs.copyFileSync(path.join(ROOT, "t/browser/page.html"), path.join(prefix, "html/page.html"));
  for (const f of ["index.html", "dashboard.html", "dashboard.js"]) {
    fs.copyFileSync(path.join(ROOT, "conf-examples/html", f), path.join(prefix, "html", f));
  }
  execFileSync(path.join(ROOT, "conf-examples/make-demo-media.sh"),
               [path.join(prefix, "html/media")], { stdio: "ignore" });
  return prefix;
}
