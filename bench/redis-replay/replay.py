#!/usr/bin/env python3
"""
Redis's instructions per part of the module's flush, counted by callgrind.

A model of the module's Redis traffic, for comparing flush designs with a
figure that does not move with the machine's load: it replays a view
workload as the module's flush rounds, with the module's own flush script
(read from src/sink/redis/ngx_http_engagement_redis_scripts.c, or from a
git revision with --rev) and its argument layout, against a redis-server
run under `valgrind --tool=callgrind`, and dumps the counters between the
parts of a round:

  totals   one script call per round of up to 1,000 contents (a content
           first seen is read whole, as the module does), measured after a
           warmup of the same length so most content is known
  buckets  one round per 1,000 contents of a minute's bucket deltas, twice:
           a first minute (hour and day buckets created) and a second
  viewers  one PFADD per content of its viewer hashes

and composes a per-event figure with the workload's own ratios (content
rounds, content minutes and viewer hashes per event). The paced part of
bench/run measures the module itself (Redis's CPU time); this counts
instructions only (no cache misses, no system calls).

  bench/redis-replay/replay.py [--rev REV] [--rate 40000] [--seconds 6]
                               [--ids 100000] [--port 26390]
"""
import argparse, bisect, glob, itertools, os, random, re, shutil, socket
import subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = 'src/sink/redis/ngx_http_engagement_redis_scripts.c'


def flush_script(rev):
    if rev:
        src = subprocess.run(['git', '-C', ROOT, 'show', '%s:%s' % (rev, SCRIPTS)],
                             check=True, capture_output=True, text=True).stdout
    else:
        src = open(os.path.join(ROOT, SCRIPTS)).read()
    m = re.search(r'ngx_http_engagement_flush_lua\[\] =\n(.*?);\n', src, re.S)
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))
    return ''.join(parts).encode().decode('unicode_escape')


def resp(*args):
    out = [b'*%d\r\n' % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b'$%d\r\n%s\r\n' % (len(a), a))
    return b''.join(out)


class Redis:
    def __init__(self, port):
        self.s = socket.create_connection(('127.0.0.1', port))
        self.f = self.s.makefile('rb')

    def read(self):
        line = self.f.readline()
        t, v = line[:1], line[1:-2]
        if t == b'+':
            return v
        if t == b'-':
            raise RuntimeError(v.decode())
        if t == b':':
            return int(v)
        if t == b'$':
            n = int(v)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b'*':
            n = int(v)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError('bad reply %r' % line)

    def pipeline(self, cmds):
        out = []
        for i in range(0, len(cmds), 200):
            chunk = cmds[i:i + 200]
            self.s.sendall(b''.join(chunk))
            out += [self.read() for _ in chunk]
        return out

    def cmd(self, *a):
        return self.pipeline([resp(*a)])[0]


def dump_totals(tmp):
    """instructions of each callgrind dump in tmp, by the dump's name"""
    ir = {}
    for f in glob.glob(tmp + '/cg.out*'):
        name = None
        for line in open(f):
            if line.startswith('desc: Trigger:'):
                name = line.split()[-1]
            if line.startswith('summary:') or line.startswith('totals:'):
                ir[name] = int(line.split()[1])
                break
    return ir


def workload(o):
    rnd = random.Random(42)
    cdf = list(itertools.accumulate(1.0 / k for k in range(1, o.ids + 1)))
    top = cdf[-1]
    rounds = []
    for _ in range(2 * o.seconds):           # 1 s rounds: warmup, measured
        d = {}
        for _ in range(o.rate):
            c = bisect.bisect_left(cdf, rnd.random() * top)
            x = d.setdefault(c, [0, 0, 0, []])
            x[0] += 1
            x[1] += rnd.random() < 0.75
            x[2] += rnd.random() < 0.05
            x[3].append(rnd.getrandbits(64))
        rounds.append(d)
    return rounds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rev')
    ap.add_argument('--rate', type=int, default=40000)
    ap.add_argument('--seconds', type=int, default=6)
    ap.add_argument('--ids', type=int, default=100000)
    ap.add_argument('--port', type=int, default=26390)
    ap.add_argument('--design', choices=('script', 'packed'), default='script',
                    help='script: the module\'s flush script (default); packed:'
                         ' a sketch of a flush without a script, one MULTI/EXEC per'
                         ' round holding its batch key and one HINCRBY per content'
                         ' of its counters packed in one field (buckets: one per'
                         ' minute, hour and day key, EXPIRE with each minute and'
                         ' with the first hour/day write)')
    ap.add_argument('--hll-sparse-max-bytes', type=int,
                    help='redis-server\'s hll-sparse-max-bytes (its default: 3000)')
    o = ap.parse_args()

    script = flush_script(o.rev)
    rounds = workload(o)
    tmp = tempfile.mkdtemp(prefix='redis-replay.')
    vg = subprocess.Popen(
        ['valgrind', '--tool=callgrind', '--callgrind-out-file=%s/cg.out' % tmp,
         '--dump-instr=no', '--cache-sim=no', 'redis-server', '--port', str(o.port),
         '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
        + (['--hll-sparse-max-bytes', str(o.hll_sparse_max_bytes)]
           if o.hll_sparse_max_bytes is not None else []),
        stdout=open(os.path.join(tmp, 'redis.log'), 'w'), stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                r = Redis(o.port)
                r.cmd('PING')
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit('redis-server under valgrind did not start (port %d)' % o.port)
        sha = r.cmd('SCRIPT', 'LOAD', script).decode()
        head = ['86400', '691200', '34560000', '95040000', '2', 'like', 'love', '0']  # no milestones
        seq = [0]

        hd_seen = set()

        def packed(v, e, x):
            return v + (e << 21) + (x << 42)

        def call_packed(items, minute=None):
            seq[0] += 1
            out = [resp('MULTI'), resp('SET', 'eng:b:replay:%d' % seq[0], '1', 'EX', 86400)]
            for c, x, full in items:
                k = 'eng:{c:%d}' % c
                if minute:
                    for kind, b, ttl in (('m', minute, 691200), ('h', minute[:10], 34560000),
                                         ('d', minute[:8], 95040000)):
                        bk = '%s:%s:%s' % (k, kind, b)
                        out.append(resp('HINCRBY', bk, 'p', packed(*x[:3])))
                        if kind == 'm' or (bk not in hd_seen):
                            hd_seen.add(bk)
                            out.append(resp('EXPIRE', bk, ttl))
                    continue
                out.append(resp('HINCRBY', k, 'p', packed(*x[:3])))
                if full:
                    out.append(resp('HMGET', k, 'views', 'engaged', 'replays', 'r:like', 'r:love'))
            out.append(resp('EXEC'))
            return out

        def call(items, minute=None):
            if o.design == 'packed':
                return call_packed(items, minute)
            seq[0] += 1
            keys = ['eng:b:replay:%d' % seq[0]] + ['eng:{c:%d}' % c for c, _, _ in items]
            argv = list(head)
            for c, x, full in items:
                if minute:
                    argv += [2, 0, 0, 0, minute, x[0], x[1], x[2]]
                else:
                    argv += [1 if full else 0, x[0], x[1], x[2]]
            return [resp('EVALSHA', sha, len(keys), *keys, *argv)]

        def dump(name):
            subprocess.run(['callgrind_control', '-d', name, str(vg.pid)],
                           stdout=subprocess.DEVNULL, check=True)

        seen, minute, uv, n = set(), {}, {}, {}
        dump('start')
        for i, d in enumerate(rounds):
            if i == o.seconds:
                dump('warmup')
                n['content_rounds'] = 0
                n['events'] = 0
                minute, uv = {}, {}
            items = []
            for c, x in d.items():
                items.append((c, x, c not in seen))
                seen.add(c)
                m = minute.setdefault(c, [0, 0, 0])
                for j in range(3):
                    m[j] += x[j]
                uv.setdefault(c, []).extend(x[3])
            n['content_rounds'] = n.get('content_rounds', 0) + len(items)
            n['events'] = n.get('events', 0) + o.rate
            r.pipeline([c for k in range(0, len(items), 1000) for c in call(items[k:k + 1000])])
        dump('totals')
        mins = [(c, x, False) for c, x in minute.items()]
        for mm in ('202612061200', '202612061201'):
            r.pipeline([c for k in range(0, len(mins), 1000) for c in call(mins[k:k + 1000], mm)])
            dump('buckets' + mm[-1])
        r.pipeline([resp('PFADD', 'eng:{c:%d}:uv' % c, *['%016x' % h for h in hs])
                    for c, hs in uv.items()])
        dump('viewers')
        # a check that the rounds were applied: the totals of the top content
        total = sum(d.get(0, [0])[0] for d in rounds)
        got = int(r.cmd('HGET', 'eng:{c:0}', 'p' if o.design == 'packed' else 'views'))
        if o.design == 'packed':
            got &= (1 << 21) - 1
        if got != total:
            sys.exit('replay: views of content 0 are %d, sent %d' % (got, total))
    finally:
        vg.terminate()
        vg.wait()

    ir = dump_totals(tmp)
    shutil.rmtree(tmp)

    ev = n['events']
    hashes = sum(map(len, uv.values()))
    # a content's minute is written once per minute: the distinct content
    # of a minute's events, expected under the same Zipf law
    w = [1.0 / k for k in range(1, o.ids + 1)]
    top = sum(w)
    per_minute = o.rate * 60
    distinct = sum(1 - (1 - x / top) ** per_minute for x in w)
    parts = [
        ('content round (totals)', ir['totals'] / n['content_rounds'],
         n['content_rounds'] / ev),
        ('content minute (buckets; hour/day new)', ir['buckets0'] / len(mins), None),
        ('content minute (buckets)', ir['buckets1'] / len(mins), distinct / per_minute),
        ('viewer hash (PFADD)', ir['viewers'] / hashes, hashes / ev),
    ]
    print('flush script: %s' % (o.rev or 'working tree'))
    print('workload: %d events/s in 1 s rounds, Zipf(1) over %d ids, %d s measured'
          ' after %d s of warmup' % (o.rate, o.ids, o.seconds, o.seconds))
    print()
    print('| part | Redis instructions | per event | instructions per event |')
    print('|---|---|---|---|')
    total = 0
    for name, v, ratio in parts:
        if ratio is None:
            print('| %s | %s | | |' % (name, '{:,.0f}'.format(v)))
            continue
        total += v * ratio
        print('| %s | %s | %.3f | %s |' % (name, '{:,.0f}'.format(v), ratio,
                                           '{:,.0f}'.format(v * ratio)))
    print('| **per event** | | | **%s** |' % '{:,.0f}'.format(total))


if __name__ == '__main__':
    main()
