#!/usr/bin/env python3
"""
The least Redis can spend per event on the bench's view workload, whatever
the flush design: the cost of the cheapest command that can keep each
structure, times how often the workload needs it.

  totals   at least one command per content per round: one HINCRBY on an
           existing hash (all counters packed in one field, the issue's
           best case), pipelined, without MULTI or a script around it
  viewers  PFADD of the viewer hashes, batched per content (each counted
           view of the workload is a new viewer): per hash, in sparse
           HyperLogLogs (the workload's tail; batches of 20) and in dense
           ones (its head; batches of 1,000)
  buckets  not counted: any cost there only adds to the floor

and, for comparison, the same HINCRBYs made from a Lua script as the
module's flush script makes them (redis.call in a loop over the keys).

Each primitive is measured two ways against a real redis-server:
instructions under `valgrind --tool=callgrind` (deterministic), and CPU
time from `INFO cpu` (user + sys) over the same commands sent to a plain
redis-server, pipelined 1,000 at a time. The per-event floor uses the
workload's ratios as bench/redis-replay/replay.py computes them (content
rounds per event at 1 s rounds; one viewer hash per event).

  bench/redis-replay/floor.py [--port 26392] [--content-rounds 0.317]
"""
import argparse, os, random, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from replay import Redis, resp, dump_totals         # noqa: E402


def primitives(rnd):
    """name, setup commands, measured commands, units measured"""
    hk = ['eng:{c:%d}' % i for i in range(2000)]
    out = []
    out.append(('HINCRBY, per content round',
                [resp('HINCRBY', k, 'p', 1) for k in hk],
                [resp('HINCRBY', k, 'p', 3) for k in hk * 5], len(hk) * 5))

    # for comparison, not in the floor: the same HINCRBYs from a script,
    # one call per 1,000 contents, as the module's flush script makes them
    lua = ("for i = 1, #KEYS do redis.call('HINCRBY', KEYS[i], 'p', ARGV[1])"
           " end return 1")
    out.append(('HINCRBY from a script (redis.call), per content',
                [resp('HINCRBY', k, 'p', 1) for k in hk],
                [resp('EVAL', lua, 1000, *hk[j:j + 1000], 3)
                 for _ in range(5) for j in range(0, len(hk), 1000)],
                len(hk) * 5))

    def pf(keys, per, rounds):
        return [resp('PFADD', k, *['%016x' % rnd.getrandbits(64) for _ in range(per)])
                for _ in range(rounds) for k in keys]
    sk = ['eng:{c:%d}:uv' % i for i in range(1000)]
    out.append(('PFADD, per viewer hash, sparse (20 per command)',
                pf(sk, 20, 1), pf(sk, 20, 2), len(sk) * 40))
    dk = ['eng:{c:%d}:uv' % i for i in range(5000, 5004)]
    out.append(('PFADD, per viewer hash, dense (1,000 per command)',
                pf(dk, 1000, 4), pf(dk, 1000, 10), len(dk) * 10000))
    return out


def start(port, callgrind, tmp):
    argv = ['redis-server', '--port', str(port), '--bind', '127.0.0.1',
            '--save', '', '--appendonly', 'no']
    if callgrind:
        argv = ['valgrind', '--tool=callgrind', '--callgrind-out-file=%s/cg.out' % tmp,
                '--dump-instr=no', '--cache-sim=no'] + argv
    p = subprocess.Popen(argv, stdout=open(os.path.join(tmp, 'log'), 'a'),
                         stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            r = Redis(port)
            r.cmd('PING')
            return p, r
        except OSError:
            time.sleep(0.1)
    p.terminate()
    sys.exit('redis-server did not start on port %d' % port)


def cpu(r):
    d = dict(l.split(':', 1) for l in r.cmd('INFO', 'cpu').decode().split('\r\n') if ':' in l)
    return float(d['used_cpu_user']) + float(d['used_cpu_sys'])


def send(r, cmds):
    for i in range(0, len(cmds), 1000):
        chunk = cmds[i:i + 1000]
        r.s.sendall(b''.join(chunk))
        for _ in chunk:
            r.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=26392)
    ap.add_argument('--content-rounds', type=float, default=0.317)
    o = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='redis-floor.')
    res = {}
    try:
        # instructions
        p, r = start(o.port, True, tmp)
        try:
            for i, (name, setup, cmds, units) in enumerate(primitives(random.Random(7))):
                send(r, setup)
                subprocess.run(['callgrind_control', '-d', 'a%d' % i, str(p.pid)],
                               stdout=subprocess.DEVNULL, check=True)
                send(r, cmds)
                subprocess.run(['callgrind_control', '-d', 'b%d' % i, str(p.pid)],
                               stdout=subprocess.DEVNULL, check=True)
        finally:
            p.terminate()
            p.wait()
        ir = dump_totals(tmp)
        # CPU time, five runs each, the median
        p, r = start(o.port, False, tmp)
        try:
            for i, (name, setup, cmds, units) in enumerate(primitives(random.Random(7))):
                us = []
                for k in range(5):
                    r.cmd('FLUSHALL')
                    send(r, setup)
                    c0 = cpu(r)
                    send(r, cmds)
                    us.append((cpu(r) - c0) / units * 1e6)
                res[name] = (ir['b%d' % i] / units, sorted(us)[2], min(us), max(us))
        finally:
            p.terminate()
            p.wait()
    finally:
        shutil.rmtree(tmp)

    print('| primitive | Redis instructions | Redis CPU µs, median (min–max) of 5 |')
    print('|---|---|---|')
    for name, (i, med, lo, hi) in res.items():
        print('| %s | %s | %.3f (%.3f–%.3f) |' % (name, '{:,.0f}'.format(i), med, lo, hi))
    names = list(res)
    t, s, d = res[names[0]], res[names[2]], res[names[3]]
    print()
    print('floor per event at %.3f content rounds per event and one new viewer per event:'
          % o.content_rounds)
    for label, u in (('viewers all dense', d), ('viewers all sparse', s)):
        print('  %s: %s instructions, %.2f µs' % (
            label, '{:,.0f}'.format(o.content_rounds * t[0] + u[0]),
            o.content_rounds * t[1] + u[1]))


if __name__ == '__main__':
    main()
