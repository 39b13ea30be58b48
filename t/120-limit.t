# Guards the edge's rate limits and late events: leaky buckets per IP and
# per viewer, burst, exact 429 answers (Retry-After, JSON body), several
# rules in one location, dry run, nothing counted when limited, the
# status figures, a tiny zone that fills (LRU eviction, counted), the
# like endpoint, the access-log variables, directive errors at start, and
# client timestamps on both sides of engagement_ts_window.
use Test::Nginx::Socket 'no_plan';
use File::Temp ();
use FindBin;
use lib "$FindBin::Bin/lib";    # after Test::Nginx::Socket: the real one wins
use Engagement::Block;

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
workers(2);

our $HttpConfig = <<'_EOC_';
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
    engagement_limit_zone per_ip:1m;
    engagement_limit_zone per_viewer:1m;
_EOC_

our $Status = <<'_EOC_';
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
_EOC_

our $Limited = qq({"error":"rate_limited","zone":"per_ip","retryAfter":60,"message":"too many requests; nothing was recorded, retry after retryAfter seconds"}\n);

sub view { my ($body) = @_; return "POST /engagement/view\n$body" }
sub ev { my ($c, $s, $extra) = @_; $extra //= ""; return view(qq({"contentId":"$c","sessionId":"$s"$extra})) }
# ts values are computed when the file is read: margins of minutes, not
# seconds, keep them valid however slowly (ASan) the blocks before run
sub ts_ev {
    my ($s, $offset_ms, $uri) = @_;
    my $ts = int(time() * 1000) + $offset_ms;
    return "POST " . ($uri // '/engagement/view') . "\n"
           . qq({"contentId":"late","sessionId":"$s","ts":$ts});
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    $block->set_value("more_headers", "Content-Type: application/json")
        unless defined $block->more_headers;
    $block->set_value("no_error_log", "[error]\n[warn]\n[alert]")
        unless defined $block->no_error_log;
});

# the Prometheus text of a block named "... promtool" passes promtool
add_response_body_check(sub {
    my ($block, $body) = @_;
    return unless $block->name =~ /promtool/ && $body =~ /^# HELP/;
    SKIP: {
        Test::More::skip('promtool not installed', 1) unless -x '/usr/bin/promtool';
        # a temporary file outside the server root, which the real
        # Test::Nginx removes only when it holds nothing it did not make
        my $tmp = File::Temp->new(TMPDIR => 1, SUFFIX => '.prom');
        print $tmp $body;
        close $tmp;
        my $out = `/usr/bin/promtool check metrics < $tmp 2>&1`;
        Test::More::is($?, 0, $block->name . " - promtool check metrics")
            or Test::More::diag($out);
    }
});

# a line that one of many requests writes (--- block_error_log)
block_error_log_section();

run_tests();

__DATA__

=== TEST 1: per IP: burst 2 lets 3 through, then 429 with Retry-After, nothing counted
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m burst=2;
    }
    location /engagement/summary { engagement summary; }
--- request eval
[ (map { main::ev('ip', "s$_") } 1..5), "GET /engagement/summary/ip" ]
--- error_code eval
[202, 202, 202, 429, 429, 200]
--- response_body eval
[ qq({"counted":true,"contentId":"ip","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"counted":true,"contentId":"ip","metrics":["view"],"views":2,"engagedViews":0,"replays":0}\n),
  qq({"counted":true,"contentId":"ip","metrics":["view"],"views":3,"engagedViews":0,"replays":0}\n),
  $main::Limited, $main::Limited,
  qq({"contentId":"ip","views":3,"engagedViews":0,"replays":0}\n) ]
--- response_headers eval
[ "!Retry-After", "!Retry-After", "!Retry-After",
  "Retry-After: 60\nContent-Type: application/json\nCache-Control: no-store",
  "Retry-After: 60", "!Retry-After" ]

=== TEST 2: the status figures move exactly (Prometheus and JSON)
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m burst=1;
    }
    location = /status { engagement status; }
--- request eval
[ (map { main::ev('st', "s$_") } 1..5), "GET /status", "GET /status?format=json" ]
--- error_code eval
[202, 202, 429, 429, 429, 200, 200]
--- response_body_like eval
[ qr/"counted":true/, qr/"counted":true/, qr/rate_limited/, qr/rate_limited/,
  qr/rate_limited/,
  qr/nginx_engagement_refused_total\{zone="engagement",reason="rate_limited"\}\ 3\n.*
      \Qnginx_engagement_limit_requests_total{zone="per_ip",result="passed"} 2\E\n
      \Qnginx_engagement_limit_requests_total{zone="per_viewer",result="passed"} 0\E\n
      \Qnginx_engagement_limit_requests_total{zone="per_ip",result="limited"} 3\E\n
      \Qnginx_engagement_limit_requests_total{zone="per_viewer",result="limited"} 0\E\n
      \Qnginx_engagement_limit_requests_total{zone="per_ip",result="dry_run"} 0\E\n
      .*\Qnginx_engagement_limit_entries{zone="per_ip"} 1\E\n
      \Qnginx_engagement_limit_entries{zone="per_viewer"} 0\E\n/sx,
  qr/"refused_total_rate_limited":3,.*\{"zone":"per_ip","kind":"limit","limit_requests_total_passed":2,"limit_requests_total_limited":3,"limit_requests_total_dry_run":0,"limit_entries":1,"limit_expired_total":0,"limit_evictions_total":0,"limit_alloc_failures_total":0,"limit_zone_size_bytes":1048576,"limit_zone_used_bytes":\d+\}/ ]

=== TEST 3: status with limit zones: one HELP/TYPE per family, promtool
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m;
    }
    location = /status { engagement status; }
--- request eval
[ main::ev('p', 's1'), main::ev('p', 's2'), "GET /status" ]
--- error_code eval
[202, 429, 200]
--- response_body_unlike eval
[ qr/^\z/, qr/^\z/,
  qr/# TYPE nginx_engagement_limit_requests_total counter\n.*# TYPE nginx_engagement_limit_requests_total/s ]

=== TEST 4: per viewer: each viewer has a bucket; events without viewerId are not limited by it
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_viewer key=$engagement_viewer_id rate=1r/m;
    }
    location /engagement/summary { engagement summary; }
--- request eval
[ main::ev('pv', 's1', ',"viewerId":"a"'),
  main::ev('pv', 's2', ',"viewerId":"a"'),
  main::ev('pv', 's3', ',"viewerId":"b"'),
  main::ev('pv', 's4'),
  main::ev('pv', 's5'),
  main::ev('pv', 's6', ',"viewerId":"b"'),
  "GET /engagement/summary/pv" ]
--- error_code eval
[202, 429, 202, 202, 202, 429, 200]
--- response_body_like eval
[ qr/"views":1,/, qr/^\{"error":"rate_limited","zone":"per_viewer","retryAfter":60,/,
  qr/"views":2,/, qr/"views":3,/, qr/"views":4,/, qr/"zone":"per_viewer"/,
  qr/^\{"contentId":"pv","views":4,/ ]

=== TEST 5: per session key, rate in r/s: Retry-After rounds up to whole seconds
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_viewer key=$engagement_session_id rate=2r/s burst=1;
    }
--- request eval
[ main::ev('rs', 'x'), main::ev('rs2', 'x'), main::ev('rs3', 'x') ]
--- error_code eval
[202, 202, 429]
--- response_headers eval
[ "!Retry-After", "!Retry-After", "Retry-After: 1" ]
--- response_body_like eval
[ qr/"counted":true/, qr/"counted":true/, qr/"retryAfter":1,/ ]

=== TEST 6: two rules: a request refused by the second is not charged to the first
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m burst=1;
        engagement_limit zone=per_viewer key=$engagement_viewer_id rate=1r/m;
    }
    location /engagement/summary { engagement summary; }
--- request eval
[ main::ev('two', 's1', ',"viewerId":"a"'),
  main::ev('two', 's2', ',"viewerId":"a"'),
  main::ev('two', 's3', ',"viewerId":"b"'),
  main::ev('two', 's4', ',"viewerId":"c"'),
  "GET /engagement/summary/two" ]
--- error_code eval
[202, 429, 202, 429, 200]
--- response_body_like eval
[ qr/"views":1,/, qr/"zone":"per_viewer"/, qr/"views":2,/, qr/"zone":"per_ip"/,
  qr/^\{"contentId":"two","views":2,/ ]

=== TEST 7: a bucket made for a request that a later rule refused is dropped again
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_viewer key=$engagement_viewer_id rate=1r/m;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m;
    }
    location = /status { engagement status; }
--- request eval
[ main::ev('drop', 's1', ',"viewerId":"a"'),
  main::ev('drop', 's2', ',"viewerId":"b"'),
  main::ev('drop', 's3', ',"viewerId":"b"'),
  "GET /status" ]
--- error_code eval
[202, 429, 429, 200]
--- response_body_like eval
[ qr/"counted":true/, qr/"zone":"per_ip"/, qr/"zone":"per_ip"/,
  qr/\Qnginx_engagement_limit_requests_total{zone="per_viewer",result="passed"} 1\E\n.*\Qnginx_engagement_limit_entries{zone="per_ip"} 1\E\n\Qnginx_engagement_limit_entries{zone="per_viewer"} 1\E\n/s ]

=== TEST 8: rules inherited from the server level
--- config
    engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m;
    location = /engagement/view { engagement view; }
--- request eval
[ main::ev('inh', 's1'), main::ev('inh', 's2') ]
--- error_code eval
[202, 429]

=== TEST 9: dry run: nothing refused, everything counted, the would-be refusals counted
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m dry_run;
    }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
--- request eval
[ (map { main::ev('dry', "s$_") } 1..4), "GET /engagement/summary/dry", "GET /status" ]
--- error_code eval
[202, 202, 202, 202, 200, 200]
--- response_body_like eval
[ qr/"views":1,/, qr/"views":2,/, qr/"views":3,/, qr/"views":4,/,
  qr/^\{"contentId":"dry","views":4,/,
  qr/reason="rate_limited"\} 0\n.*zone="per_ip",result="passed"\} 1\n.*zone="per_ip",result="limited"\} 0\n.*zone="per_ip",result="dry_run"\} 3\n/s ]

=== TEST 10: a limited request is visible in the access-log variables
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_viewer key=$engagement_viewer_id rate=1r/m;
        add_header X-Engagement "$engagement_outcome $engagement_reason $engagement_viewer_id $engagement_session_id $engagement_content_id" always;
    }
--- request eval
[ main::ev('var', 's1', ',"viewerId":"u1"'), main::ev('var', 's2', ',"viewerId":"u1"') ]
--- error_code eval
[202, 429]
--- response_headers eval
[ "X-Engagement: counted  u1 s1 var", "X-Engagement: refused rate_limited u1 s2 var" ]

=== TEST 11: a key over many request headers (a long, odd one) is hashed, never stored raw
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_ip key=$http_x_client:$binary_remote_addr rate=1r/m;
    }
--- more_headers eval
"Content-Type: application/json\nX-Client: " . ("\x01\"\\\xff" x 1000)
--- request eval
[ main::ev('odd', 's1'), main::ev('odd', 's2') ]
--- error_code eval
[202, 429]

=== TEST 12: invalid bodies are refused (400) before any limit is charged
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m;
    }
--- request eval
[ main::view('{"contentId":"bad id","sessionId":"s"}'), main::view('not json'),
  main::ev('inv', 's1'), main::ev('inv', 's2') ]
--- error_code eval
[400, 400, 202, 429]

=== TEST 13: hostile: a script inventing viewers and spoofing X-Forwarded-For is still stopped per address
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m burst=1;
        engagement_limit zone=per_viewer key=$engagement_viewer_id rate=1r/m;
    }
    location /engagement/summary { engagement summary; }
--- more_headers eval
"Content-Type: application/json\nX-Forwarded-For: 10.$$.0.1\nX-Real-IP: 10.0.0.9"
--- request eval
[ (map { main::ev('spoof', "s$_", qq(,"viewerId":"bot$_")) } 1..6), "GET /engagement/summary/spoof" ]
--- error_code eval
[202, 202, 429, 429, 429, 429, 200]
--- response_body_like eval
[ qr/"views":1,/, qr/"views":2,/, (qr/"zone":"per_ip"/) x 4,
  qr/^\{"contentId":"spoof","views":2,/ ]

=== TEST 14: hostile: timestamps at the parser's bounds are valid, and outside the window
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
--- request eval
[ main::view('{"contentId":"tsb","sessionId":"s1","ts":946684800000}'),
  main::view('{"contentId":"tsb","sessionId":"s2","ts":7258118400000}'),
  main::view('{"contentId":"tsb","sessionId":"s3","ts":946684799999}'),
  main::view('{"contentId":"tsb","sessionId":"s4","ts":7258118400001}'),
  "GET /engagement/summary/tsb" ]
--- error_code eval
[200, 200, 400, 400, 200]
--- response_body eval
[ qq({"counted":false,"reason":"too_old","contentId":"tsb"}\n),
  qq({"counted":false,"reason":"in_future","contentId":"tsb"}\n),
  qq({"error":"invalid_field","field":"ts","message":"must be milliseconds since the epoch (years 2000-2200)"}\n),
  qq({"error":"invalid_field","field":"ts","message":"must be milliseconds since the epoch (years 2000-2200)"}\n),
  qq({"contentId":"tsb","views":0,"engagedViews":0,"replays":0}\n) ]

=== TEST 15: a tiny zone fills: least recently used buckets are evicted, counted, logged
--- http_config
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
    engagement_limit_zone tiny:32k;
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=tiny key=$engagement_session_id rate=1r/m;
    }
    location = /status { engagement status; }
--- request eval
[ (map { main::ev('full', "s$_") } 1..600),
  main::ev('probe', 's1'), main::ev('probe', 's600'),
  "GET /status?format=json" ]
--- error_code eval
[ (202) x 600, 202, 429, 200 ]
--- response_body_like eval
[ (qr/"counted":true/) x 600, qr/"counted":true/, qr/"zone":"tiny"/,
  qr/"zone":"tiny","kind":"limit","limit_requests_total_passed":601,"limit_requests_total_limited":1,"limit_requests_total_dry_run":0,"limit_entries":[1-5]\d\d,"limit_expired_total":0,"limit_evictions_total":[1-9]\d*,"limit_alloc_failures_total":0,/ ]
--- block_error_log
engagement_limit_zone "tiny" is full: the least recently used bucket was evicted
--- no_error_log
[error]
[alert]

=== TEST 16: likes are limited too, before Redis is asked (here Redis is down: 503, then 429)
--- http_config
    engagement_zone engagement:1m;
    engagement_limit_zone per_user:1m;
    engagement_redis 127.0.0.1:1 connect_timeout=100ms timeout=100ms backoff=50ms:100ms;
--- config
    location = /engagement/like {
        engagement like;
        engagement_limit zone=per_user key=$engagement_viewer_id rate=1r/m;
    }
    location = /status { engagement status; }
--- request eval
[ "POST /engagement/like\n{\"contentId\":\"c\",\"userId\":\"u1\"}",
  "DELETE /engagement/like\n{\"contentId\":\"c\",\"userId\":\"u1\"}",
  "POST /engagement/like\n{\"contentId\":\"c\",\"userId\":\"u1\",\"reaction\":\"love\"}",
  "GET /status" ]
--- error_code eval
[503, 429, 429, 200]
--- response_body_like eval
[ qr/backend_unavailable/,
  qr/^\{"error":"rate_limited","zone":"per_user","retryAfter":60,/,
  qr/"zone":"per_user"/,
  qr/nginx_engagement_reaction_requests_total\{zone="engagement",result="rate_limited"\} 2\n/ ]
--- response_headers eval
[ "Retry-After: 1", "Retry-After: 60", "Retry-After: 60", "" ]
--- no_error_log
[alert]

=== TEST 17: late events: within 24 h back and 5 min ahead count; outside, a reason
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
--- request eval
[ main::ts_ev('a', -25 * 3600 * 1000),
  main::ts_ev('b', 10 * 60 * 1000),
  main::ts_ev('c', -23 * 3600 * 1000),
  main::ts_ev('d', 4 * 60 * 1000),
  main::ts_ev('e', 0),
  "GET /engagement/summary/late", "GET /status" ]
--- error_code eval
[200, 200, 202, 202, 202, 200, 200]
--- response_body_like eval
[ qr/^\Q{"counted":false,"reason":"too_old","contentId":"late"}\E\n\z/,
  qr/^\Q{"counted":false,"reason":"in_future","contentId":"late"}\E\n\z/,
  qr/^\Q{"counted":true,"contentId":"late","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\E\n\z/,
  qr/^\Q{"counted":true,"contentId":"late","metrics":["view"],"views":2,"engagedViews":0,"replays":0}\E\n\z/,
  qr/^\Q{"counted":true,"contentId":"late","metrics":["view"],"views":3,"engagedViews":0,"replays":0}\E\n\z/,
  qr/^\Q{"contentId":"late","views":3,"engagedViews":0,"replays":0}\E\n\z/,
  qr/reason="too_old"\} 1\nnginx_engagement_not_counted_total\{zone="engagement",reason="in_future"\} 1\n/ ]

=== TEST 18: a window of our own: 1h back, nothing ahead; "off" takes any ts
--- config
    location = /engagement/view { engagement view; engagement_ts_window 1h 0s; }
    location = /any { engagement view; engagement_ts_window off; }
    location = /status { engagement status; }
--- request eval
[ main::ts_ev('a', -2 * 3600 * 1000),
  main::ts_ev('b', -30 * 60 * 1000),
  main::ts_ev('c', 10 * 60 * 1000),
  main::ts_ev('d', -20 * 365 * 86400 * 1000, '/any'),
  main::ts_ev('e', 100 * 365 * 86400 * 1000, '/any'),
  "GET /status?format=json" ]
--- error_code eval
[200, 202, 200, 202, 202, 200]
--- response_body_like eval
[ qr/"reason":"too_old"/, qr/"counted":true/, qr/"reason":"in_future"/,
  qr/"counted":true/, qr/"counted":true/,
  qr/"not_counted_total_too_old":1,"not_counted_total_in_future":1,/ ]

=== TEST 19: a late event is not marked seen: the same session within the window counts later
--- config
    location = /engagement/view { engagement view; }
--- request eval
[ main::ts_ev('same', -48 * 3600 * 1000), main::ts_ev('same', 0) ]
--- error_code eval
[200, 202]

=== TEST 20: engagement_limit with an unknown zone
--- config
    location = /x { engagement view; engagement_limit zone=nope key=$binary_remote_addr rate=1r/s; }
--- must_die
--- error_log
engagement_limit: unknown engagement_limit_zone "nope" in

=== TEST 21: a counters zone is not a limit zone
--- http_config
    engagement_zone cz:64k;
--- config
    location = /x { engagement view; engagement_limit zone=cz key=$binary_remote_addr rate=1r/s; }
--- must_die
--- error_log
engagement_limit: unknown engagement_limit_zone "cz" in

=== TEST 22: bad rates
--- config
    location = /x { engagement view; engagement_limit zone=per_ip key=$binary_remote_addr rate=10r/h; }
--- must_die
--- error_log
engagement_limit: invalid rate "rate=10r/h": expected rate=Nr/s or rate=Nr/m, N from 1 to 100000

=== TEST 23: a zero rate
--- config
    location = /x { engagement view; engagement_limit zone=per_ip key=$binary_remote_addr rate=0r/s; }
--- must_die
--- error_log
engagement_limit: invalid rate "rate=0r/s"

=== TEST 24: a rate without a number
--- config
    location = /x { engagement view; engagement_limit zone=per_ip key=$binary_remote_addr rate=r/s; }
--- must_die
--- error_log
engagement_limit: invalid rate "rate=r/s"

=== TEST 25: the key is missing
--- config
    location = /x { engagement view; engagement_limit zone=per_ip rate=1r/s; }
--- must_die
--- error_log
engagement_limit: "key=" is required, e.g. key=$binary_remote_addr

=== TEST 26: an empty key
--- config
    location = /x { engagement view; engagement_limit zone=per_ip key= rate=1r/s; }
--- must_die
--- error_log
engagement_limit: empty "key="

=== TEST 27: the zone is missing
--- config
    location = /x { engagement view; engagement_limit key=$binary_remote_addr rate=1r/s; }
--- must_die
--- error_log
engagement_limit: "zone=" is required

=== TEST 28: the rate is missing
--- config
    location = /x { engagement view; engagement_limit zone=per_ip key=$binary_remote_addr; }
--- must_die
--- error_log
engagement_limit: "rate=" is required, e.g. rate=10r/s

=== TEST 29: a bad burst
--- config
    location = /x { engagement view; engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/s burst=-1; }
--- must_die
--- error_log
engagement_limit: invalid burst "burst=-1": a number from 0 to 100000

=== TEST 30: an unknown parameter
--- config
    location = /x { engagement view; engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/s nodelay; }
--- must_die
--- error_log
engagement_limit: invalid parameter "nodelay"

=== TEST 31: an unknown variable in the key
--- config
    location = /x { engagement view; engagement_limit zone=per_ip key=$engagement_nope rate=1r/s; }
--- must_die
--- error_log
unknown "engagement_nope" variable

=== TEST 32: a limit zone declared twice
--- http_config
    engagement_limit_zone l:64k;
    engagement_limit_zone l:128k;
--- config
--- must_die
--- error_log
engagement_limit_zone "l" is already declared

=== TEST 33: a limit zone named like a counters zone
--- http_config
    engagement_zone same:64k;
    engagement_limit_zone same:64k;
--- config
--- must_die
--- error_log
shared memory zone "same" is already in use

=== TEST 34: limit zone without a size, too small, bad size
--- http_config
    engagement_limit_zone l;
--- config
--- must_die
--- error_log
invalid engagement_limit_zone "l": expected name:size, e.g. per_ip:10m

=== TEST 35: limit zone too small
--- http_config
    engagement_limit_zone l:8k;
--- config
--- must_die
--- error_log
engagement_limit_zone "l:8k" is too small: at least 32k

=== TEST 36: more rules than a location takes
--- config
    location = /x {
        engagement view;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/s;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=2r/s;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=3r/s;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=4r/s;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=5r/s;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=6r/s;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=7r/s;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=8r/s;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=9r/s;
    }
--- must_die
--- error_log
at most 8 engagement_limit rules per location

=== TEST 37: engagement_ts_window with a bad time
--- config
    location = /x { engagement view; engagement_ts_window 1y; }
--- must_die
--- error_log
engagement_ts_window: invalid time "1y": expected e.g. 24h or 5m (under 24d), or off

=== TEST 38: engagement_ts_window twice
--- config
    location = /x { engagement view; engagement_ts_window 1h; engagement_ts_window 2h; }
--- must_die
--- error_log
"engagement_ts_window" directive is duplicate

=== TEST 39: a burst that would take weeks to drain
--- config
    location = /x { engagement view; engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m burst=100000; }
--- must_die
--- error_log
engagement_limit: burst=100000 at this rate would take over 24 days to drain; use a higher rate or a smaller burst
