# The Redis flush in rounds (issue 13): a round of many contents is one
# Redis call; a round whose answer is lost is resent whole and applied
# once; minute, hour and day buckets equal the totals once their write
# interval has passed (engagement_redis buckets=), and not before; unique
# viewers are right on read after their interval (uniques=); a kill -9 of
# Redis while rounds are in flight loses nothing (its append-only file
# keeps what it applied, the edge resends what it did not confirm).
#
# Each block gets its own redis-server (append-only, fsync always) on a
# free port; "--- proxy" puts our fault proxy (t/lib/Engagement/Proxy.pm)
# between nginx and Redis. The steps after the block's request are the
# Perl of its "--- post_check" section.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes qw(sleep time);
use POSIX qw(strftime);
use Engagement::Proxy;

our $port = nginx_port();
our ($rport, $ctl, $ppid, $state);

master_on();
workers(2);
log_level('info');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

# the http{} of the blocks: $TEST_NGINX_INTERVALS is the block's
# "--- intervals" (buckets= and uniques=), none by default
our $HttpConfig = <<'EOC';
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_TARGET_PORT timeout=500ms connect_timeout=500ms backoff=50ms:200ms $TEST_NGINX_INTERVALS;
    engagement_flush_interval 200ms;
    engagement_flush_deadline 2s;
    engagement_state_file $TEST_NGINX_STATE_FILE;
EOC

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value('http_config', $HttpConfig);
    $block->set_value('request', 'GET /status');
    $block->set_value('response_body_like', '^# HELP nginx_engagement_');
    $block->set_value('config', '
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }');
    $rport = free_ports(300, 50, 1);
    start_redis($rport);
    $ENV{TEST_NGINX_REDIS_PORT} = $rport;
    $ENV{TEST_NGINX_TARGET_PORT} = $rport;
    $ENV{TEST_NGINX_INTERVALS} = $block->{intervals} ? $block->{intervals}[0] : '';
    $state = scratch_dir('state') . "/fr-block" . $block->seq_num . ".state";
    unlink $state, "$state.restored";
    $ENV{TEST_NGINX_STATE_FILE} = $state;
    # "--- before": Perl run before nginx starts (Redis is up)
    if ($block->{before}) {
        eval $block->{before}[0];
        die $@ if $@;
    }
    if ($block->{proxy}) {
        $ctl = scratch_dir('proxy') . "/ctl172-" . $block->seq_num;
        open my $fh, '>', $ctl or die $!; print $fh "0"; close $fh;
        my $pport = free_ports(360, 50, 1);
        $ppid = Engagement::Proxy::start($pport, $rport, $ctl, 0);
        $ENV{TEST_NGINX_TARGET_PORT} = $pport;
    }
});

sub fr_status { (http_request($port, 'GET', '/status'))[1] }

sub fr_metric {
    my ($name) = @_;
    my $t = fr_status();
    return $t =~ /^nginx_engagement_\Q$name\E\{zone="engagement"(?:,[^}]*)?\} (\d+)$/m ? $1 : 0;
}

sub fr_ready {
    return wait_until { fr_metric('redis_ready_workers') == 2 } 10;
}

# no totals pending or in flight (buckets and viewers may wait)
sub fr_flushed {
    my ($secs) = @_;
    return wait_until {
        my $t = fr_status();
        $t =~ /^nginx_engagement_pending_contents\{zone="engagement"\} 0$/m
            && $t =~ /^nginx_engagement_inflight_contents\{zone="engagement"\} 0$/m;
    } $secs // 10;
}

# nothing waits at all: buckets and viewers written too
sub fr_settled {
    my ($secs) = @_;
    return wait_until {
        fr_flushed(0.1) && fr_metric('waiting_contents') == 0;
    } $secs // 10;
}

sub fr_total {
    my ($key, $field) = @_;
    my $v = redis_cli($rport, undef, 'HGET', $key, $field // 'views');
    return $v eq '' ? 0 : $v;
}

sub fr_calls {
    my ($cmd) = @_;
    my $s = redis_cli($rport, undef, 'INFO', 'commandstats');
    return $s =~ /^cmdstat_\Q$cmd\E:calls=(\d+)/m ? $1 : 0;
}


sub fr_stop_proxy {
    return unless $ppid;
    kill 'TERM', $ppid;
    waitpid($ppid, 0);
    undef $ppid;
}

END { local $?; fr_stop_proxy() }

run_tests();

__DATA__

=== TEST 1: a round of many contents is one Redis call; buckets and uniques wait for their interval
--- intervals: buckets=60s uniques=60s
--- post_check
    ok(fr_ready(), "both workers ready");
    sleep 0.3;
    redis_cli($rport, undef, 'CONFIG', 'RESETSTAT');
    my $calls0 = fr_metric('flush_calls_total');
    my $m = strftime("%Y%m%d%H%M", gmtime);
    for my $i (1 .. 40) {
        post_view($port, qq({"contentId":"r$i","sessionId":"s$i","viewerId":"v$i"}));
    }
    ok(fr_flushed(), "flushed");
    my $calls = fr_metric('flush_calls_total') - $calls0;
    my $ev = fr_calls('evalsha');
    is($ev, $calls, "one EVALSHA per round call ($ev)");
    ok($ev >= 1 && $ev <= 10, "40 contents took $ev Redis calls, not 40");
    is(fr_metric('flush_contents_total'), 40, "40 contents sent");
    my $sum = 0;
    $sum += fr_total("eng:{c:r$_}") for 1 .. 40;
    is($sum, 40, "every total is in Redis");
    is(fr_calls('hmget') + 0, 40, "first-seen contents are read whole once (40 HMGET)");
    is(fr_calls('pfadd') + 0, 0, "no PFADD before the uniques interval");
    is(fr_calls('pfcount') + 0, 0, "no PFCOUNT in a flush");
    my $now = strftime("%Y%m%d%H%M", gmtime);
    SKIP: {
        skip "a minute boundary passed", 1 if $now ne $m;
        is(redis_cli($rport, undef, 'EXISTS', "eng:{c:r1}:m:$m"), 0,
           "the minute bucket waits for its minute's end");
    }
    ok(fr_metric('waiting_contents') >= 1, "contents wait for their buckets and viewers");
    # a second round for the same contents: HINCRBY answers, no read-back
    redis_cli($rport, undef, 'CONFIG', 'RESETSTAT');
    post_view($port, qq({"contentId":"r$_","sessionId":"t$_"})) for 1 .. 40;
    ok(fr_flushed(), "flushed again");
    is(fr_calls('hmget') + 0, 0, "known totals are not read back");
    SKIP: {
        # a minute's end writes the contents' buckets (3 HINCRBY more each)
        skip "a minute boundary passed", 1 if strftime("%Y%m%d%H%M", gmtime) ne $m;
        is(fr_calls('hincrby') + 0, 40, "one HINCRBY per content and field changed");
    }
    my (undef, $b) = http_request($port, 'GET', '/engagement/summary/r7');
    like($b, qr/"views":2,/, "the summary shows the new total");
    log_is_clean('round');



=== TEST 2: a round whose answer is lost is resent whole and applied once
--- proxy
--- intervals: buckets=0 uniques=0
--- post_check
    ok(fr_ready(), "both workers connected through the proxy");
    open my $fh, '>', $ctl; print $fh "2"; close $fh;
    my $n = 0;
    for my $round (1 .. 4) {
        for my $i (1 .. 10) {
            post_view($port, qq({"contentId":"l$i","sessionId":"r${round}s$i","viewerId":"v$round-$i"}));
            $n++;
        }
        sleep 0.3;
    }
    ok(fr_settled(15), "flushed despite two cut answers");
    is(slurp($ctl), "0", "the proxy cut two rounds after Redis applied them");
    my $sum = 0;
    $sum += fr_total("eng:{c:l$_}") for 1 .. 10;
    is($sum, $n, "no double count: $n views in Redis");
    is(fr_total("eng:{c:l3}"), 4, "each content exactly (4)");
    my ($rep) = fr_status() =~ /^nginx_engagement_flush_commands_total\{zone="engagement",result="repeat"\} (\d+)$/m;
    ok(($rep // 0) >= 10, "the resent rounds were recognised as applied, whole (" . ($rep // 0) . " contents)");
    my $m = 0;
    for my $k (split /\n/, redis_cli($rport, undef, 'KEYS', 'eng:{c:l3}:m:*')) {
        $m += fr_total($k);
    }
    is($m, 4, "the minute buckets of a resent round: exactly once");
    is(redis_cli($rport, undef, 'PFCOUNT', 'eng:{c:l3}:uv'), 4, "its viewers: 4");
    fr_stop_proxy();
    log_is_clean('lost answers');



=== TEST 3: buckets equal the totals after their interval; uniques right on read
--- intervals: buckets=1s uniques=1s
--- post_check
    ok(fr_ready(), "both workers ready");
    my %n;
    for my $i (1 .. 60) {
        my $c = "b" . ($i % 3);
        post_view($port, qq({"contentId":"$c","sessionId":"s$i","viewerId":"v$i","durationMs":40000}));
        $n{$c}++;
        sleep 0.05 if $i % 10 == 0;
    }
    ok(fr_settled(10), "totals, buckets and viewers all written");
    for my $c (sort keys %n) {
        my $total = fr_total("eng:{c:$c}");
        is($total, $n{$c}, "$c: total $n{$c}");
        my %sum;
        for my $kind (qw(m h d)) {
            for my $k (split /\n/, redis_cli($rport, undef, 'KEYS', "eng:{c:$c}:$kind:*")) {
                $sum{$kind} += fr_total($k);
                ok(redis_cli($rport, undef, 'TTL', $k) > 0, "$k has a TTL");
            }
            is($sum{$kind} // 0, $total, "$c: the $kind buckets add up to the total");
        }
        is(fr_total("eng:{c:$c}", 'engaged'), $n{$c}, "$c: engaged views too");
        # (a HyperLogLog's estimate: it may be 1 off from the truth)
        my $hll = redis_cli($rport, undef, 'PFCOUNT', "eng:{c:$c}:uv") + 0;
        ok(abs($hll - $n{$c}) <= 1, "$c: Redis estimates $hll unique viewers of $n{$c}");
        my (undef, $b) = http_request($port, 'GET', "/engagement/summary/$c");
        like($b, qr/"uniqueViewers":$hll,/, "$c: the summary reads the unique viewers ($hll)");
    }
    # one more viewer: the next summary after its write reads it again
    post_view($port, q({"contentId":"b1","sessionId":"x","viewerId":"new-viewer"}));
    ok(fr_settled(10), "written");
    my (undef, $b) = http_request($port, 'GET', '/engagement/summary/b1');
    my $want = redis_cli($rport, undef, 'PFCOUNT', "eng:{c:b1}:uv") + 0;
    ok(abs($want - ($n{b1} + 1)) <= 1, "the new viewer is in the HyperLogLog ($want)");
    like($b, qr/"uniqueViewers":$want,/, "uniques right on the first read after the write ($want)");
    log_is_clean('buckets');



=== TEST 4: a kill -9 of Redis while rounds are in flight loses nothing
--- intervals: buckets=0 uniques=0
--- post_check
    ok(fr_ready(), "both workers ready");
    my $sent = 0;
    my $killed = 0;
    my $t0 = time;
    while (time - $t0 < 4) {
        for my $i (1 .. 25) {
            my ($st) = post_view($port, qq({"contentId":"k$i","sessionId":"s$sent"}));
            $sent++ if $st == 202;
        }
        if (!$killed && time - $t0 > 1.2) {
            kill 'KILL', redis_pid($rport);
            waitpid(redis_pid($rport), 0);
            $killed = 1;
            sleep 0.3;
            start_redis($rport, keep => 1);
        }
    }
    ok($killed, "Redis was killed and restarted");
    ok(fr_settled(20), "everything flushed after the restart");
    my $sum = 0;
    $sum += fr_total("eng:{c:k$_}") for 1 .. 25;
    is($sum, $sent, "Redis totals equal the $sent accepted events");
    my $m = 0;
    for my $i (1 .. 25) {
        $m += fr_total($_) for split /\n/, redis_cli($rport, undef, 'KEYS', "eng:{c:k$i}:m:*");
    }
    is($m, $sent, "and so do the minute buckets");
    log_is_clean('redis kill');



=== TEST 5: a content Redis refuses in a round whose answer is lost stays refused on the resend: counted once the key is fixed
--- proxy
--- intervals: buckets=0 uniques=0
--- post_check
    ok(fr_ready(), "both workers connected through the proxy");
    redis_cli($rport, undef, 'SET', 'eng:{c:wt}', 'not-a-hash');
    open my $fh, '>', $ctl; print $fh "1"; close $fh;
    post_view($port, q({"contentId":"wt","sessionId":"s1"}));
    post_view($port, qq({"contentId":"ok$_","sessionId":"s1"})) for 1 .. 5;
    ok(scalar(wait_until { slurp($ctl) eq "0" } 10), "the round's answer was cut");
    ok(scalar(wait_until { error_log_text() =~ /flush of "wt" failed: .*(?:WRONGTYPE|refused)/ } 10),
       "the refusal is logged");
    ok(scalar(wait_until { fr_total('eng:{c:ok5}') == 1 } 10), "the other contents are applied");
    my $sum = 0;
    $sum += fr_total("eng:{c:ok$_}") for 1 .. 5;
    is($sum, 5, "once each");
    ok(fr_metric('pending_contents') + fr_metric('inflight_contents') >= 1,
       "the refused content is still held, not taken for applied");
    redis_cli($rport, undef, 'DEL', 'eng:{c:wt}');
    ok(fr_settled(10), "flushed once the key is fixed");
    is(fr_total('eng:{c:wt}'), 1, "exact after the fix: 1");
    fr_stop_proxy();



=== TEST 6: a state file of the earlier version: its in-flight batches are checked against the old flush marks
--- intervals: buckets=0 uniques=0
--- before
    my $t = int(time);
    redis_cli($rport, undef, 'HSET', 'eng:{c:old1}', 'views', 2);
    # Redis had applied old1's batch (3 of stream aa) before the stop
    redis_cli($rport, undef, 'HSET', 'eng:{c:old1}:fl', 's:00000000000000aa', 3);
    open my $fh, '>', $state or die $!;
    print $fh "zone engagement 7\n",
              "c old1 3:00000000000000aa 2 0 0 $t 0 0 0 $t 0 0\n",
              "c old2 4:00000000000000aa 5 0 0 $t 1 0 0 $t 0 0\n";
    close $fh;
--- post_check
    ok(fr_ready(), "both workers ready");
    ok(fr_settled(10), "the restored batches are flushed");
    is(fr_total('eng:{c:old1}'), 2, "a batch Redis had applied under the old marks: not again");
    is(fr_total('eng:{c:old2}'), 6, "one it had not: applied, with the pending delta");
    my $m = 0;
    $m += fr_total($_) for split /\n/, redis_cli($rport, undef, 'KEYS', 'eng:{c:old2}:m:*');
    is($m, 6, "and its buckets");
    like(slurp("$state.restored"), qr/^c old2 /m, "the file was restored");
    log_is_clean('old state file');
