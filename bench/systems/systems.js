'use strict';
// The systems bench/run compares, in this order in every round. Adding a
// system is one entry here (plus its configuration file beside this one).
//
//   name       short id (results, --systems)
//   title      what it is, for the tables
//   kind       'nginx' (conf: a template in this directory, run with the
//              system nginx as `nginx -p <dir> -c <dir>/nginx.conf -g
//              'daemon off;'`) or 'node' (script: a file under bench/,
//              run as `node <script> --port P --redis-port R`)
//   conf       nginx template; @PORT@, @REDIS_PORT@, @MODULE@ (the module
//              .so, copied for the run), @NGINX_MODULES@ (Debian's module
//              directory) and @BENCH@ (bench/) are replaced
//   redis      uses the run's Redis server (flushed before each round)
//   optional   when `nginx -t` rejects the configuration, the system is
//              skipped with a note in the results instead of failing
//   ceiling    a reference the ratios are computed against (every
//              system's figures are given against each ceiling)
//   viewPath   where view events are POSTed
//   readPath   prefix of the summary GET of the read mix (+ content id)
//   counts     where the counts are read back, for exactness and freshness:
//                { batch: '/path?ids=' }   the module's batch summary (HTTP)
//                { redis: id => [command...] }   one Redis command per id,
//                                          answering the views of that id
//   status     the module's status endpoint (zone memory figures)
//   settle     seconds to wait at least after the load before reading the
//              counts; default 0.5
//   quiet      (redis systems) the load is over and flushed once Redis has
//              run no command for this many seconds: longer than the
//              system's flush interval; default 1 (bounded by --drain-max)
//   only       'instructions': measured by the instruction count alone
//              (no load rounds, no paced part)
//   instructions  (nginx systems) measured by the instruction count too:
//              one worker under callgrind serving a fixed workload
//              (bench/README.md, "Instructions per request")

module.exports = [
  {
    name: 'ceiling',
    title: 'ceiling: nginx reads the body, 204',
    kind: 'nginx',
    conf: 'ceiling.conf',
    ceiling: true,
    viewPath: '/ceiling',
    instructions: true,
    readPath: '/ceiling/summary/',
  },
  {
    name: 'ceiling-json',
    title: 'JSON ceiling: nginx answers the module\'s 202 JSON, same URI and locations',
    kind: 'nginx',
    conf: 'ceiling-json.conf',
    ceiling: true,
    viewPath: '/engagement/view',
    instructions: true,
    readPath: '/engagement/summary/',
  },
  {
    name: 'ceiling-discard',
    title: 'ceiling with return 204 (discards the body): what reading it costs',
    kind: 'nginx',
    conf: 'ceiling-discard.conf',
    only: 'instructions',
    viewPath: '/ceiling',
    instructions: true,
    readPath: '/ceiling/summary/',
  },
  {
    name: 'module',
    title: 'engagement module, shared memory only',
    kind: 'nginx',
    conf: 'module.conf',
    instructions: true,
    viewPath: '/engagement/view',
    readPath: '/engagement/summary/',
    counts: { batch: '/engagement/summary?ids=' },
    status: '/engagement/status',
  },
  {
    name: 'module-redis',
    title: 'engagement module + Redis flush',
    kind: 'nginx',
    conf: 'module-redis.conf',
    instructions: true,
    redis: true,
    optional: true,
    viewPath: '/engagement/view',
    readPath: '/engagement/summary/',
    // the flush script's totals hash (src/sink/redis/ngx_http_engagement_flush.c)
    counts: { redis: (id) => ['HGET', `eng:{c:${id}}`, 'views'] },
    status: '/engagement/status',
    quiet: 2.5,   // engagement_flush_interval 1s
  },
  {
    name: 'lua-naive',
    title: 'Lua + Redis per request (OpenResty tutorial)',
    kind: 'nginx',
    conf: 'lua-naive.conf',
    instructions: true,
    redis: true,
    viewPath: '/view',
    readPath: '/summary/',
    counts: { redis: (id) => ['GET', `view:${id}`] },
  },
  {
    name: 'lua-batched',
    title: 'Lua shared dicts + 1 s batched INCRBY flush',
    kind: 'nginx',
    conf: 'lua-batched.conf',
    instructions: true,
    redis: true,
    viewPath: '/view',
    readPath: '/summary/',
    counts: { redis: (id) => ['GET', `view:${id}`] },
    quiet: 2.5,   // the 1 s flush timer
  },
  {
    name: 'node',
    title: 'Node.js http + redis (app-server tutorial)',
    kind: 'node',
    script: 'node/server.js',
    redis: true,
    viewPath: '/view',
    readPath: '/summary/',
    counts: { redis: (id) => ['GET', `view:${id}`] },
  },
];
