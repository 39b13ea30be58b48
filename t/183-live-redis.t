# Guards live viewers across edges (issue 15): two nginx edges with their
# own edge ids share one real redis-server; each edge's live endpoint
# counts its own sessions and, within 5 s, the other's; a content with
# viewers only on the other edge is counted where it is read; when an
# edge's sessions stop, or the edge is killed outright, the other stops
# counting them (within two heartbeat intervals and two 2 s turns,
# resp. the 6 s a count stays current and a turn) and the dead edge's count is removed from Redis; a
# malformed count in Redis is ignored and removed; a key of another type
# is reported once and counted in the status, never a crash; with
# engagement_live_redis off nothing is written; with a heartbeat interval
# shorter than a turn, the other edges' count does not flicker.
#
# Edge "a" is the test's nginx, edge "b" a second nginx started here (its
# own prefix and port), stopped by pid. The redis-server is ours too.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes qw(sleep time);

our $rport = free_ports(400, 50, 1);
start_redis($rport);
$ENV{TEST_NGINX_REDIS_PORT} = $rport;

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
master_on();
workers(2);
add_response_body_check(post_check_hook());

our $HttpConfig = <<'_EOC_';
    engagement_zone engagement:1m;
    engagement_heartbeat_interval 2s;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms;
    engagement_flush_interval 200ms;
    engagement_edge_id edge-a;
_EOC_

our $Loc = <<'_EOC_';
    location = /engagement/heartbeat { engagement heartbeat; }
    location /engagement/live { engagement live; }
    location = /status { engagement status; }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    $block->set_value("config", $Loc) unless defined $block->config;
    $block->set_value("no_error_log", "[error]\n[alert]\nexited on signal\nAddressSanitizer\nLeakSanitizer\nruntime error")
        unless defined $block->no_error_log;
});

# edge "b": a second nginx on the same Redis, edge id edge-b
our ($BPort, $BPid);
sub start_b {
    my %o = @_;
    my $prefix = new_prefix('edge-b');
    $BPort = free_ports(450, 50, 1);
    write_conf($prefix, port => $BPort, workers => 2, http => qq(
    engagement_zone engagement:1m;
    engagement_heartbeat_interval 2s;
    engagement_redis 127.0.0.1:$rport timeout=500ms connect_timeout=500ms;
    engagement_flush_interval 200ms;
    engagement_edge_id edge-b;
    @{[ $o{http} // '' ]}
), server => q(
    location = /engagement/heartbeat { engagement heartbeat; }
    location /engagement/live { engagement live; }
));
    $BPid = start_nginx($prefix, $BPort) or die "edge b did not start";
    return $prefix;
}

sub beat {
    my ($port, $c, $s) = @_;
    my ($st) = http_request($port, 'POST', '/engagement/heartbeat',
        qq({"contentId":"$c","sessionId":"$s","state":"playing"}),
        'Content-Type' => 'application/json');
    return $st;
}

sub live_of {
    my ($port, $c) = @_;
    my ($st, $b) = http_request($port, 'GET', "/engagement/live?contentId=$c");
    return $b =~ /"live":(\d+),"peak":(\d+)/ ? ($1, $2) : (-1, -1);
}

# heartbeats of sessions on an edge, every interval, while $until() is false
sub beat_until {
    my ($until, $max, @sessions) = @_;
    my $t0 = time;
    my $ok = 1;
    while (time - $t0 < $max) {
        for my $s (@sessions) {
            $ok &&= beat(@$s) == 200;
        }
        my $round = time;
        while (time - $round < 1) {
            return ($ok, time - $t0) if $until->();
            sleep 0.1;
        }
    }
    return ($ok, undef);
}

run_tests();

__DATA__

=== TEST 1: two edges: each counts its own sessions and the other's within 5 s; stopped sessions and a killed edge drop out
--- request
GET /engagement/live?contentId=m1
--- response_body
{"contentId":"m1","live":0,"peak":0}
--- post_check
    my $prefix = main::start_b();
    my $A = nginx_port();
    my $B = $main::BPort;
    my @a = map { [$A, 'm1', "sa$_"] } 1 .. 3;
    my @b = map { [$B, 'm1', "sb$_"] } 1 .. 2;
    my @b2 = map { [$B, 'm2', "sc$_"] } 1 .. 4;
    # m2 is read on edge a from the start: it has viewers on b only
    main::live_of($A, 'm2');
    my $t0 = time;
    my ($ok, $took) = main::beat_until(sub {
        (main::live_of($A, 'm1'))[0] == 5 && (main::live_of($B, 'm1'))[0] == 5
            && (main::live_of($A, 'm2'))[0] == 4
    }, 12, @a, @b, @b2);
    Test::More::ok($ok, 'TEST 1 - every heartbeat is accepted');
    Test::More::ok(defined $took && $took <= 5,
        sprintf('TEST 1 - both edges show 5 live on m1, and edge a 4 on m2 (viewers on b only), %s s after the first heartbeats (<= 5 s)',
                defined $took ? sprintf('%.1f', $took) : 'never'));
    my %f = split /\n/, redis_cli($rport, undef, 'HGETALL', 'eng:{c:m1}:live');
    Test::More::like($f{'edge-a'} // '', qr/^3:\d+$/, "TEST 1 - Redis holds edge a's count of m1 (3)");
    Test::More::like($f{'edge-b'} // '', qr/^2:\d+$/, "TEST 1 - Redis holds edge b's count of m1 (2)");
    my $ttl = redis_cli($rport, undef, 'PTTL', 'eng:{c:m1}:live');
    Test::More::ok($ttl > 0 && $ttl <= 20000, "TEST 1 - the live key expires (PTTL $ttl ms <= 20 s)");
    my ($live, $peak) = main::live_of($A, 'm1');
    Test::More::ok($peak >= 5, "TEST 1 - edge a's peak of m1 counts both edges ($peak)");

    # the peak of all edges is in the minute's, hour's and day's buckets
    # (the minute may have turned since: the highest of the last two)
    my $bucket_peak = sub {
        my ($suffix) = @_;
        my $best = 0;
        for my $t (time, time - 60) {
            my @g = gmtime($t);
            my $m = sprintf('%04d%02d%02d%02d%02d', $g[5] + 1900, $g[4] + 1, @g[3, 2, 1]);
            my $k = 'eng:{c:m1}:' . $suffix->($m);
            my $v = redis_cli($rport, undef, 'HGET', $k, 'peak');
            $best = $v if $v =~ /^\d+$/ && $v > $best;
        }
        return $best;
    };
    my %sfx = (m => sub { "m:$_[0]" }, h => sub { 'h:' . substr($_[0], 0, 10) },
               d => sub { 'd:' . substr($_[0], 0, 8) });
    for my $b (qw(m h d)) {
        Test::More::ok(main::wait_until(sub { $bucket_peak->($sfx{$b}) == 5 }, 5),
            "TEST 1 - the $b bucket's peak of m1 is 5, both edges' viewers ("
            . $bucket_peak->($sfx{$b}) . ")");
    }
    my @g = gmtime(time);
    my $dk = sprintf('eng:{c:m1}:d:%04d%02d%02d', $g[5] + 1900, $g[4] + 1, $g[3]);
    my $dttl = redis_cli($rport, undef, 'TTL', $dk);
    Test::More::ok($dttl > 94000000 && $dttl <= 95040000, "TEST 1 - the day bucket made by the peak expires in 1100 days ($dttl s)");

    # b's sessions stop, a's go on: b drops them within two intervals
    # (4 s), takes its count back at its next turn (2 s) and a reads that
    # at its own next turn (2 s): a shows 3 again within 8 s, plus slack
    my $slack = $ENV{TEST_NGINX_ASAN} ? 3 : 1;
    my $stop = time;
    ($ok, $took) = main::beat_until(sub {
        # both read every time: m2 stays read on a
        my ($m1, $m2) = ((main::live_of($A, 'm1'))[0], (main::live_of($A, 'm2'))[0]);
        $m1 == 3 && $m2 == 4
    }, 12, @a, @b2);
    Test::More::ok(defined $took && time - $stop <= 8 + $slack,
        sprintf('TEST 1 - when b\'s sessions of m1 stop, a counts 3 on m1 within %.1f s (<= 8 s + %d), and still 4 on m2', time - $stop, $slack));
    # b took its count back: its field is gone
    Test::More::ok(main::wait_until(sub {
        redis_cli($rport, undef, 'HEXISTS', 'eng:{c:m1}:live', 'edge-b') eq '0' }, 5),
        "TEST 1 - edge b's field of m1 is removed once b has no viewers of it");

    # b is killed outright while its m2 sessions are live: a stops counting
    # them once b's count is no longer current (6 s), and the field goes
    Test::More::is((main::live_of($A, 'm2'))[0], 4, 'TEST 1 - a counts b\'s 4 viewers of m2 before b dies');
    # the whole edge dies at once: its master first (so that it respawns
    # no worker), then its workers
    my @workers = worker_pids($main::BPid);
    Test::More::is(scalar @workers, 2, 'TEST 1 - edge b runs 2 workers');
    kill 'KILL', $main::BPid;
    waitpid($main::BPid, 0);
    kill 'KILL', @workers;
    reap_children();
    # gone: no process, or a zombie waiting for whoever reaps orphans
    my $alive = sub {
        grep { my $st = slurp("/proc/$_/stat"); $st ne '' && $st !~ /^\d+ \(.*\) Z/ } @workers
    };
    Test::More::ok(main::wait_until(sub { !$alive->() }, 5),
                   'TEST 1 - edge b\'s workers are gone too');
    Engagement::Test::_stopped($main::BPid);
    reap_children();
    my $dead = time;
    my $gone = main::wait_until(sub {
        my $m2 = (main::live_of($A, 'm2'))[0];
        $m2 == 0 && redis_cli($rport, undef, 'HEXISTS', 'eng:{c:m2}:live', 'edge-b') eq '0'
    }, 15);
    Test::More::ok($gone && time - $dead <= 8 + $slack,
        sprintf('TEST 1 - a counts 0 on m2, and the dead edge\'s count is removed from Redis, %.1f s after b was killed (<= 8 s + %d: a count is current 6 s, a turn every 2 s)', time - $dead, $slack));

=== TEST 2: a malformed count in Redis is ignored and removed; a key of another type is reported once, never a crash
--- request
GET /engagement/live?contentId=m3
--- response_body
{"contentId":"m3","live":0,"peak":0}
--- no_error_log
[alert]
exited on signal
AddressSanitizer
--- post_check
    my $A = nginx_port();
    redis_cli($rport, undef, 'HSET', 'eng:{c:m3}:live', 'edge-x', 'lots');
    redis_cli($rport, undef, 'HSET', 'eng:{c:m3}:live', 'edge-y', '-5:1');
    redis_cli($rport, undef, 'SET', 'eng:{c:m4}:live', 'a string');
    my $t0 = time;
    my ($ok, $took) = main::beat_until(sub {
        redis_cli($rport, undef, 'HLEN', 'eng:{c:m3}:live') eq '1'
            && error_log_text() =~ /not shared: Redis said/
    }, 10, [$A, 'm3', 's1'], [$A, 'm3', 's2'], [$A, 'm4', 's3']);
    Test::More::ok(defined $took, 'TEST 2 - the malformed counts are removed and the key of another type reported');
    my %f = split /\n/, redis_cli($rport, undef, 'HGETALL', 'eng:{c:m3}:live');
    Test::More::is(join(',', sort keys %f), 'edge-a', "TEST 2 - only edge a's count is left in m3's live hash");
    Test::More::is((main::live_of($A, 'm3'))[0], 2, 'TEST 2 - m3 counts its 2 sessions, nothing of the malformed ones');
    Test::More::is((main::live_of($A, 'm4'))[0], 1, 'TEST 2 - m4 still counts its session here');
    Test::More::is(redis_cli($rport, undef, 'GET', 'eng:{c:m4}:live'), 'a string', 'TEST 2 - the key of another type is left alone');
    my $errors = status_metric('nginx_engagement_live_share_errors_total');
    Test::More::ok($errors >= 1, "TEST 2 - the status counts the refused shares ($errors)");
    my @said = error_log_text() =~ /not shared: Redis said/g;
    Test::More::ok(@said <= 4, 'TEST 2 - the error is said at most once per turn (' . scalar(@said) . ' times)');

=== TEST 3: engagement_live_redis off: nothing is written to Redis, live counts stay local
--- http_config
    engagement_zone engagement:1m;
    engagement_heartbeat_interval 2s;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms;
    engagement_edge_id edge-a;
    engagement_live_redis off;
--- request
POST /engagement/heartbeat
{"contentId":"m5","sessionId":"s1","state":"playing"}
--- more_headers
Content-Type: application/json
--- response_body_like: "live":1
--- post_check
    sleep 3;
    Test::More::is(redis_cli($rport, undef, 'EXISTS', 'eng:{c:m5}:live'), '0', 'TEST 3 - no live key in Redis with engagement_live_redis off');
    Test::More::is(status_metric('nginx_engagement_live_shared_total'), 0, 'TEST 3 - nothing shared');

=== TEST 4: a short heartbeat interval (300 ms) does not make the other edges' viewers flicker between turns
--- http_config
    engagement_zone engagement:1m;
    engagement_heartbeat_interval 300ms;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms;
    engagement_edge_id edge-a;
--- request
GET /engagement/live?contentId=m6
--- response_body
{"contentId":"m6","live":0,"peak":0}
--- post_check
    my $A = nginx_port();
    # another edge's current count of 2, renewed every 0.5 s on Redis's clock
    my $renew = sub {
        my ($s, $us) = split /\n/, redis_cli($rport, undef, 'TIME');
        redis_cli($rport, undef, 'HSET', 'eng:{c:m6}:live', 'edge-x',
                  sprintf('2:%d', $s * 1000 + int($us / 1000)));
    };
    $renew->();
    my $t0 = time;
    my $next = 0;
    my @seen;
    my $first;
    while (time - $t0 < 9) {
        if (time >= $next) { $renew->(); $next = time + 0.5 }
        my $l = (main::live_of($A, 'm6'))[0];
        $first //= time if $l == 2;
        push @seen, $l if defined $first;
        sleep 0.1;
    }
    Test::More::ok(defined $first, sprintf('TEST 4 - the other edge\'s 2 viewers show (after %.1f s)', ($first // time) - $t0));
    my $misses = grep { $_ != 2 } @seen;
    Test::More::is($misses, 0, sprintf('TEST 4 - then every one of %d reads over %.1f s shows them', scalar @seen, time - ($first // time)));
