'use strict';
// System "node": the app-server design of common tutorials. Node's http
// module and the `redis` npm package (one connection; node-redis pipelines
// the commands of concurrent requests on it), the same per-request logic
// as lua-naive: SET user_view:<viewer>:<content> 1 NX EX 1800 and, if new,
// INCR view:<content>. One process (no cluster), as the tutorials run it.
//
//   node server.js --port 8081 --redis-port 6390

const http = require('http');
const { createClient } = require('redis');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : def;
}

const port = Number(arg('port', 8081));
const redisPort = Number(arg('redis-port', 6379));

const client = createClient({ socket: { host: '127.0.0.1', port: redisPort } });
client.on('error', (err) => console.error('redis:', err.message));

function send(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

async function view(res, body) {
  let ev;
  try {
    ev = JSON.parse(body);
  } catch (e) {
    return send(res, 400, { error: 'invalid_body' });
  }
  if (!ev || typeof ev.contentId !== 'string' || typeof ev.viewerId !== 'string') {
    return send(res, 400, { error: 'invalid_body' });
  }
  try {
    const added = await client.set(`user_view:${ev.viewerId}:${ev.contentId}`, '1',
                                   { NX: true, EX: 1800 });
    if (added === null) {
      return send(res, 200, { counted: false, reason: 'duplicate', contentId: ev.contentId });
    }
    const views = await client.incr(`view:${ev.contentId}`);
    return send(res, 202, { counted: true, contentId: ev.contentId, views });
  } catch (e) {
    console.error('redis:', e.message);
    return send(res, 503, { error: 'unavailable' });
  }
}

async function summary(res, id) {
  if (!/^[A-Za-z0-9._:-]+$/.test(id)) {
    return send(res, 400, { error: 'invalid_id' });
  }
  try {
    const v = await client.get(`view:${id}`);
    return send(res, 200, { contentId: id, views: Number(v) || 0 });
  } catch (e) {
    return send(res, 503, { error: 'unavailable' });
  }
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/view') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 16384) {
        send(res, 413, { error: 'body_too_large' });
        req.destroy();
      }
    });
    req.on('end', () => { view(res, body); });
  } else if (req.method === 'GET' && req.url.startsWith('/summary/')) {
    summary(res, req.url.slice('/summary/'.length));
  } else {
    send(res, 404, { error: 'not_found' });
  }
});

client.connect().then(() => {
  server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
}, (err) => {
  console.error('redis connect:', err.message);
  process.exit(1);
});

function stop() {
  server.close();
  client.quit().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
