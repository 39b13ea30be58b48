#!/usr/bin/env python3
"""
The capacity model of docs/capacity.md, from measured multi-edge runs.

  bench/multi-edge/model.py bench/results/<ts>-multi-edge [more runs...]
        [--rates 50000,500000] [--edges 2,3,6,12,30] [--catalogue 100000,1000000]
        [--interval 1] [--target 0.5] [--viewer-us 0.42]

From each run's results.json it takes (median over the runs given):
  w   nginx worker CPU µs per event (load and totals drain)
  a   Redis CPU µs per content round (the load window: totals rounds and the
      viewer hashes due meanwhile, net of Redis's idle rate)
  b   Redis CPU µs per content-minute (the minute-end window: minute, hour
      and day buckets, the series rows and viewer hashes written then)
each per unit the flush sent and per unit the formula below predicts for
the run (the model uses the latter, so that it gives back each run's own
Redis CPU at the run's own rate), and checks the formula against what the
run's flush sent (content rounds per event, content-minutes per event). Then, for a total rate R
spread evenly over E edges, with content ids drawn from Zipf(1) over a
catalogue of N ids (the bench's workload law; N = 100,000 in the runs):

  content rounds/s per edge  = D(R/E x interval) / interval
  content-minutes/s per edge = D(R/E x 60) / 60
  D(k) = sum over ids of 1 - (1 - p_i)^k   (distinct ids among k events)

  Redis CPU (cores) = [E x (a x rounds/s + b x minutes/s) + v x R] / 1e6
  nginx CPU (cores) = w x R / 1e6
  at a target utilisation (0.5): cores = CPU / target, shards = Redis / target

The minute's buckets are written in the first rounds after it ends: the
last two columns give that burst's Redis CPU (b x content-minutes of a
minute, all edges) and the shards that write it within --burst-window
seconds (10) while the totals keep flowing.

Memory per edge: the dedupe zone holds a window of events, the counters
and series zones about two minutes of distinct contents (see the printed
note under each table).

v (µs per viewer hash element, --viewer-us) adds the PFADD element cost
that a and b carry only at the runs' rates (bench/redis-replay/floor.py:
0.10 dense to 0.42 sparse). Prints markdown.
"""
import argparse, json, math, os, statistics, sys


def zipf_p(n, s=1.0):
    w = [1.0 / (i ** s) for i in range(1, n + 1)]
    t = sum(w)
    return [x / t for x in w]


def distinct(p, k):
    """expected distinct ids among k draws"""
    if k <= 0:
        return 0.0
    return sum(-math.expm1(k * math.log1p(-q)) for q in p)


_P100K = []


def load(d, interval=1.0):
    if not _P100K:
        _P100K.append(zipf_p(100000))      # the runs' workload
    f = d if d.endswith('.json') else os.path.join(d, 'results.json')
    with open(f) as fh:
        R = json.load(fh)
    m = R['module']
    wl, wm = m['windows']['load'], m['windows']['minute']
    edges = R['options']['edges']
    rate_edge = m['req_s'] / edges
    # the formula's prediction for the run itself: content rounds per event
    # at its rate per edge, content-minutes per event over its load (which
    # stays within one minute)
    n_ev = m['accepted'] / edges
    pred_rounds = distinct(_P100K[0], rate_edge * interval) / (rate_edge * interval)
    pred_minutes = distinct(_P100K[0], n_ev) / n_ev
    return {
        'pred_rounds': pred_rounds, 'pred_minutes': pred_minutes,
        # per unit the formula counts: the model then gives back the run's
        # own Redis CPU at the run's own rate
        'a_cal': 1e6 * wl['redis_cpu_net_s'] / (pred_rounds * m['accepted']),
        'b_cal': 1e6 * wm['redis_cpu_net_s'] / (pred_minutes * m['accepted']),
        'id': R['id'], 'edges': edges, 'series': R['options']['series'],
        'clickhouse': bool(R['options'].get('clickhouse')),
        'series_zone': R['options'].get('series_zone', '16m'),
        'drops': (sum(m['drops'].values()) if m.get('drops') else None),
        'ch_us': (m.get('clickhouse') or {}).get('us_per_event'),
        'rate': m['req_s'], 'rate_edge': rate_edge, 'duration': R['options']['duration'],
        'w': m['worker_us_per_req'],
        'ceiling_w': R['ceiling']['worker_us_per_req'] if R.get('ceiling') else None,
        'a': 1e6 * wl['redis_cpu_net_s'] / max(1, wl['units']['content_rounds']),
        'b': 1e6 * wm['redis_cpu_net_s'] / max(1, wm['units']['bucket_writes']),
        'rounds_per_event': wl['units']['content_rounds'] / m['accepted'],
        'minutes_per_event': (wl['units']['bucket_writes'] + wm['units']['bucket_writes']) / m['accepted'],
        'accepted': m['accepted'], 'load_s': m['load_s'],
        'redis_all': m['redis_us_per_event_all'], 'redis_load': m['redis_us_per_event_load'],
        'load_avg': R['machine'].get('load average (1/5/15 min) at start; end'),
        'lost': m['lost'],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('runs', nargs='+')
    ap.add_argument('--rates', default='50000,500000')
    ap.add_argument('--edges', default='3,6,12,30')
    ap.add_argument('--catalogue', default='100000,1000000')
    ap.add_argument('--interval', type=float, default=1.0)
    ap.add_argument('--target', type=float, default=0.5)
    ap.add_argument('--viewer-us', type=float, default=0.42)
    ap.add_argument('--dedupe-window', type=float, default=1800.0,
                    help='engagement_dedupe_window in seconds (30m)')
    ap.add_argument('--series-rows', type=float, default=1.0,
                    help='series rows per content-minute (1 in the bench workload: one '
                         'country, device and source; real traffic has more)')
    ap.add_argument('--burst-window', type=float, default=10.0,
                    help='seconds after a minute ends in which its buckets should be written')
    ap.add_argument('--series', choices=('on', 'off'), default='on',
                    help='the model takes the runs with series on (the default) or off')
    o = ap.parse_args()
    runs = []
    for d in o.runs:
        f = d if d.endswith('.json') else os.path.join(d, 'results.json')
        if os.path.exists(f):
            runs.append(load(d))      # the runs flushed every second
        else:
            print('model.py: %s: no results.json (a run under way?), left out' % d, file=sys.stderr)
    # the model's unit costs: runs without the ClickHouse writer (its cost
    # is given apart), with series as asked
    # and, with series, a series zone that held the minute (runs before the
    # 128m default used the module's 16m, too small here: rows dropped)
    used = [r for r in runs if r['series'] == o.series and not r['clickhouse']
            and (r['series'] == 'off' or (r['series_zone'] != '16m' and r['drops'] == 0))]
    if not used:
        sys.exit('no run with series %s among those given' % o.series)
    med = lambda k: statistics.median(r[k] for r in used)
    w, a, b = med('w'), med('a_cal'), med('b_cal')
    print('## Unit costs (the model: median of the %d run(s) with series %s)' % (len(used), o.series))
    print()
    print('| run | series, writer | edges | events/s | worker µs/event | ceiling µs/req | Redis µs per content round sent / per round of the formula (a) | Redis µs per content-minute written / per content-minute of the formula (b) | content rounds/event: run / Zipf model | content-minutes/event: run / model | Redis µs/event: load / all | lost | load average |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    for r in runs:
        pred_rounds, pred_minutes = r['pred_rounds'], r['pred_minutes']
        print('| %s | %s | %d | %s | %.2f | %s | %.2f / %.2f | %.1f / %.1f | %.3f / %.3f | %.3f / %.3f | %.2f / %.2f | %d | %s |' % (
            r['id'], (r['series'] + (' (zone %s%s)' % (r['series_zone'], ', drops not recorded' if r['series_zone'] == '16m' else '')
                                     if r['series'] == 'on' else '')
                      + (', ClickHouse %.1f µs/event' % r['ch_us'] if r['clickhouse'] else '')
                      + ('' if r in used else ', not in the model')), r['edges'], '{:,.0f}'.format(r['rate']), r['w'],
            '%.2f' % r['ceiling_w'] if r['ceiling_w'] else '–', r['a'], r['a_cal'], r['b'], r['b_cal'],
            r['rounds_per_event'], pred_rounds, r['minutes_per_event'], pred_minutes,
            r['redis_load'], r['redis_all'], r['lost'], r['load_avg']))
    print()
    print('Model inputs: w = %.2f µs/event, a = %.2f µs/content round, b = %.1f µs/content-minute, '
          'v = %.2f µs/viewer hash, flush interval %g s, target utilisation %.0f%%.'
          % (w, a, b, o.viewer_us, o.interval, 100 * o.target))
    print()
    for n in [int(x) for x in o.catalogue.split(',')]:
        p = zipf_p(n)
        print('### Catalogue of %s ids, Zipf(1)' % '{:,}'.format(n))
        print()
        print('| events/s | edges | events/s per edge | content rounds/s per edge | content-minutes/s per edge | nginx cores busy (all edges) | cores per edge at %.0f%% | Redis: totals / buckets+series / viewer elements (cores busy) | Redis cores busy | Redis shards at %.0f%% | minute-end burst: Redis CPU s | shards to write it in %g s |' % (100 * o.target, 100 * o.target, o.burst_window))
        print('|---|---|---|---|---|---|---|---|---|---|---|---|')
        for rate in [int(x) for x in o.rates.split(',')]:
            for e in [int(x) for x in o.edges.split(',')]:
                re_ = rate / e
                rounds = distinct(p, re_ * o.interval) / o.interval
                minutes = distinct(p, re_ * 60) / 60
                tot = e * a * rounds / 1e6
                bk = e * b * minutes / 1e6
                vw = o.viewer_us * rate / 1e6
                redis = tot + bk + vw
                ng = w * rate / 1e6
                burst = bk * 60
                print('| %s | %d | %s | %s | %s | %.2f | %.2f | %.2f / %.2f / %.2f | %.2f | %d | %.1f | %d |' % (
                    '{:,}'.format(rate), e, '{:,.0f}'.format(re_), '{:,.0f}'.format(rounds),
                    '{:,.0f}'.format(minutes), ng, ng / e / o.target, tot, bk, vw, redis,
                    max(1, math.ceil(redis / o.target)), burst,
                    max(1, math.ceil(burst / o.burst_window))))
        print()
        print('Memory per edge (from the README\'s sizes, extrapolated): dedupe zone = events/s per edge x '
              'window (%gs) x 64 bytes (an event with a requestId: two 32-byte entries) / 0.7 (evictions '
              'start at about 70 %% of the entries); counters zone = 2 x distinct contents per minute x 630 '
              'bytes; series zone = 2 x content-minutes x %g rows x 688 bytes.' % (o.dedupe_window, o.series_rows))
        print()
        print('| events/s | edges | dedupe zone per edge | counters zone per edge | series zone per edge |')
        print('|---|---|---|---|---|')
        for rate in [int(x) for x in o.rates.split(',')]:
            for e in [int(x) for x in o.edges.split(',')]:
                re_ = rate / e
                cm = distinct(p, re_ * 60)
                print('| %s | %d | %.1f GB | %.0f MB | %.0f MB |' % (
                    '{:,}'.format(rate), e, re_ * o.dedupe_window * 64 / 0.7 / 1e9,
                    2 * cm * 630 / 1e6, 2 * cm * o.series_rows * 688 / 1e6))
        print()


if __name__ == '__main__':
    main()
