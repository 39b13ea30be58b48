# Guards the Redis flush against a real redis-server: exact totals and
# time buckets after a flush, unique viewers, a Redis outage under traffic,
# a cut connection after Redis applied a flush (no double count), reloads
# during traffic, a stop with Redis down and a start with it up (the state
# file), and Redis answering errors (wrong password, OOM, wrong type).
#
# Each block gets its own redis-server (started by the block preprocessor
# on a free port, data in a private temporary directory, passed to the
# config as $TEST_NGINX_REDIS_PORT); the steps after the block's request
# (traffic, faults, checks) are the Perl of its "--- post_check" section.
use strict;
use warnings;
use FindBin;
# our helpers first: their END (which stops our servers) then runs after
# the runner's END has stopped nginx
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use Engagement::Proxy;
use POSIX qw(strftime);
use Time::HiRes qw(sleep time);

our $port = nginx_port();
our ($rport, $ppid, $ctl, %state_file);

master_on();
workers(2);
log_level('info');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

# "--- redis: fresh [password=X]" starts a new redis-server for the block;
# "--- redis: same" keeps the previous block's port (its hook restarts it);
# "--- proxy: N" puts our fault proxy (answers delayed N ms) in front of it;
# "--- state: name" names the block's state file (kept outside servroot)
# the blocks' nginx configuration unless a block gives its own
our $DefaultHttpConfig = <<'EOC';
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_TARGET_PORT timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0;
    engagement_flush_interval 200ms;
    engagement_flush_deadline 2s;
    engagement_edge_id test-edge;
    engagement_state_file $TEST_NGINX_STATE_FILE;
EOC
our $DefaultConfig = <<'EOC';
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
EOC

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value('http_config', $DefaultHttpConfig)
        unless defined $block->http_config;
    $block->set_value('config', $DefaultConfig) unless defined $block->config;
    workers($block->{nginx_workers} ? $block->{nginx_workers}[0] + 0 : 2);
    my $r = $block->{redis} ? $block->{redis}[0] : 'fresh';
    if ($r =~ /^fresh/) {
        my ($pw) = $r =~ /password=(\S+)/;
        $rport = free_ports(300, 50, 1);
        start_redis($rport, $pw ? (password => $pw) : ());
    }
    $ENV{TEST_NGINX_REDIS_PORT} = $rport;
    $ENV{TEST_NGINX_TARGET_PORT} = $rport;
    if ($block->{proxy}) {
        $ctl = scratch_dir('proxy') . "/ctl-" . $block->seq_num;
        open my $fh, '>', $ctl or die $!; print $fh "0"; close $fh;
        my $pport = free_ports(360, 50, 1);
        $ppid = Engagement::Proxy::start($pport, $rport, $ctl,
                                         $block->{proxy}[0] || 0);
        $ENV{TEST_NGINX_TARGET_PORT} = $pport;
    }
    my $tag = $block->{state} ? $block->{state}[0] : 'block' . $block->seq_num;
    $tag =~ s/\s+//g;
    $state_file{$tag} = scratch_dir('state') . "/$tag.state";
    $ENV{TEST_NGINX_STATE_FILE} = $state_file{$tag};
});

sub status {
    my (undef, $text) = http_request($port, 'GET', '/status');
    return $text;
}

sub metric {
    my ($re) = @_;
    my $t = status();
    return $t =~ /^\Q$re\E (\d+)$/m ? $1 : undef;
}

# waits until no delta is pending or in flight
sub wait_flushed {
    my ($secs) = @_;
    return wait_until {
        my $t = status();
        $t =~ /^nginx_engagement_pending_contents\{zone="engagement"\} 0$/m
            && $t =~ /^nginx_engagement_inflight_contents\{zone="engagement"\} 0$/m
            # the series by dimension (their own rounds) have landed too
            && $t !~ /^nginx_engagement_series_rows_pending [1-9]/m;
    } $secs // 10;
}

sub rtotal {
    my ($id, $field) = @_;
    my $v = redis_cli($rport, undef, 'HGET', "eng:{c:$id}", $field // 'views');
    return $v eq '' ? 0 : $v;
}


sub stop_proxy {
    return unless $ppid;
    kill 'TERM', $ppid;
    waitpid($ppid, 0);
    undef $ppid;
}

END { local $?; stop_proxy() }

run_tests();

__DATA__

=== TEST 1: N distinct events -> exactly N in Redis, totals and buckets
--- state: exact
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my $minute0 = strftime("%Y%m%d%H%M", gmtime);
    my (%sent, $ok);
    for my $i (1 .. 250) {
        my $c = "c" . ($i % 5);
        my ($st) = post_view($port,
            qq({"contentId":"$c","sessionId":"s$i","viewerId":"u$i","durationMs":) . ($i % 2 ? 40000 : 0) . "}");
        $ok++ if $st == 202;
        $sent{$c}{views}++;
        $sent{$c}{engaged}++ if $i % 2;
        # a retry of every tenth event is a duplicate and must not count
        if ($i % 10 == 0) {
            my ($st2) = post_view($port, qq({"contentId":"$c","sessionId":"s$i","viewerId":"u$i"}));
            is($st2, 200, "repeat $i is a duplicate") if $i == 10;
        }
    }
    my $minute1 = strftime("%Y%m%d%H%M", gmtime);
    is($ok, 250, "250 distinct events accepted");
    ok(wait_flushed(), "everything flushed");

    for my $c (sort keys %sent) {
        is(rtotal($c), $sent{$c}{views}, "$c: views in Redis = $sent{$c}{views}");
        is(rtotal($c, 'engaged'), $sent{$c}{engaged}, "$c: engaged in Redis = $sent{$c}{engaged}");
        my $msum = 0;
        for my $m (sort keys %{{ map { $_ => 1 } $minute0, $minute1 }}) {
            my $v = redis_cli($rport, undef, 'HGET', "eng:{c:$c}:m:$m", 'views');
            $msum += $v || 0;
        }
        is($msum, $sent{$c}{views}, "$c: minute buckets add up");
        my $h = substr($minute0, 0, 10);
        my $hv = redis_cli($rport, undef, 'HGET', "eng:{c:$c}:h:$h", 'views') || 0;
        my $h1 = substr($minute1, 0, 10);
        $hv += (redis_cli($rport, undef, 'HGET', "eng:{c:$c}:h:$h1", 'views') || 0) if $h1 ne $h;
        is($hv, $sent{$c}{views}, "$c: hour buckets add up");
        my $ttl = redis_cli($rport, undef, 'TTL', "eng:{c:$c}:m:$minute0");
        ok($ttl > 600000 && $ttl <= 691200, "$c: minute bucket expires in ~8 days ($ttl s)");
        my $uv = redis_cli($rport, undef, 'PFCOUNT', "eng:{c:$c}:uv");
        # HyperLogLog registers of random salted hashes can collide
        ok(abs($uv - 50) <= 3, "$c: ~50 unique viewers in the HyperLogLog ($uv)");
        # and in the day's (the day they were sent: today, or just past midnight)
        my ($dk) = grep { redis_cli($rport, undef, 'EXISTS', $_) }
                   map { "eng:{c:$c}:uv:d:" . strftime('%Y%m%d', gmtime(time - $_)) } (0, 120);
        my $duv = $dk ? redis_cli($rport, undef, 'PFCOUNT', $dk) : 0;
        ok(abs($duv - 50) <= 3, "$c: ~50 unique viewers in the day's HyperLogLog ($duv)");
        my $dttl = $dk ? redis_cli($rport, undef, 'TTL', $dk) : -2;
        ok($dttl > 7900000 && $dttl <= 7948800, "$c: the day's HyperLogLog expires in ~92 days ($dttl s)");
    }

    # the hour and day buckets expire too (~400 days, ~3 years)
    my $hkey = "eng:{c:c0}:h:" . substr($minute0, 0, 10);
    my $dkey = "eng:{c:c0}:d:" . substr($minute0, 0, 8);
    my $httl = redis_cli($rport, undef, 'TTL', $hkey);
    ok($httl > 34000000 && $httl <= 34560000, "hour bucket expires in ~400 days ($httl s)");
    my $dttl = redis_cli($rport, undef, 'TTL', $dkey);
    ok($dttl > 95000000 && $dttl <= 95040000, "day bucket expires in ~3 years ($dttl s)");

    # a TTL is set when a bucket is created: a flush into buckets that
    # exist sets none; a bucket Redis lost is created again with its TTL
    my $expires = sub {
        my $t = redis_cli($rport, undef, 'INFO', 'commandstats');
        return $t =~ /^cmdstat_expire:calls=(\d+)/m ? $1 : 0;
    };
    my ($m, $e0, $e1) = ('', 0, 0);
    for my $try (1 .. 3) {
        $m = strftime("%Y%m%d%H%M", gmtime);
        post_view($port, qq({"contentId":"ttl","sessionId":"ttl$try-a"}));
        wait_flushed();
        $e0 = $expires->();
        post_view($port, qq({"contentId":"ttl","sessionId":"ttl$try-b"}));
        wait_flushed();
        $e1 = $expires->();
        # the minute must not have turned meanwhile (a new bucket)
        last if strftime("%Y%m%d%H%M", gmtime) eq $m;
    }
    is($e1 - $e0, 0, "a flush into existing buckets sets no TTL");
    redis_cli($rport, undef, 'DEL', "eng:{c:ttl}:m:$m");
    for my $try (1 .. 3) {
        $m = strftime("%Y%m%d%H%M", gmtime);
        post_view($port, qq({"contentId":"ttl","sessionId":"ttl-lost$try"}));
        wait_flushed();
        last if strftime("%Y%m%d%H%M", gmtime) eq $m;
        redis_cli($rport, undef, 'DEL', "eng:{c:ttl}:m:" . strftime("%Y%m%d%H%M", gmtime));
    }
    my $lttl = redis_cli($rport, undef, 'TTL', "eng:{c:ttl}:m:$m");
    ok($lttl > 600000 && $lttl <= 691200, "a lost minute bucket is created again with its TTL ($lttl s)");

    my $keys = redis_cli($rport, undef, 'KEYS', '*u1*');
    is($keys, '', "no raw viewer id in any Redis key");
    my (undef, $sum) = http_request($port, 'GET', '/engagement/summary/c1');
    like($sum, qr/^\{"contentId":"c1","views":50,"engagedViews":25,"replays":0,"uniqueViewers":(?:4[7-9]|5[0-3]),"pending":0,"likes":0,"reactions":\{"like":0,"love":0,"laugh":0,"wow":0,"sad":0,"angry":0\}\}\n\z/,
         "summary: Redis totals, unique viewers, nothing pending");
    my ($st, $b2) = http_request($port, 'GET', '/engagement/summary/never-seen');
    is($b2, qq({"contentId":"never-seen","views":0,"engagedViews":0,"replays":0,"uniqueViewers":0,"pending":0,"likes":0,"reactions":{"like":0,"love":0,"laugh":0,"wow":0,"sad":0,"angry":0}}\n),
       "summary of content only Redis could know: read, zeros");

    # content counted by another edge: read from Redis, then cached
    redis_cli($rport, undef, 'HSET', 'eng:{c:other}', 'views', 41, 'engaged', 7);
    (undef, $b2) = http_request($port, 'GET', '/engagement/summary?ids=other,c1');
    like($b2, qr/\{"contentId":"other","views":41,"engagedViews":7,/, "batch summary reads Redis for unknown content");
    my $reads = metric('nginx_engagement_redis_reads_total{zone="engagement",result="ok"}');
    http_request($port, 'GET', '/engagement/summary/other') for 1 .. 20;
    my $reads2 = metric('nginx_engagement_redis_reads_total{zone="engagement",result="ok"}');
    ok($reads2 - $reads <= 2, "hot content is served from the cache (" . ($reads2 - $reads) . " Redis reads for 20 requests)");
    log_is_clean('exact');
--- no_shutdown_error_log eval
[qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/,
 qr/engagement: saved \d+ unflushed entries/]



=== TEST 2: freshness, and a worker killed by SIGKILL loses nothing
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    # TEST 1's nginx has stopped by now: with Redis up, it saved nothing
    ok(!-e $state_file{exact}, "a stop with Redis up leaves no state file");

    # freshness: visible in Redis within the flush interval plus a round trip
    my @lag;
    for my $i (1 .. 5) {
        my ($st) = post_view($port, qq({"contentId":"fresh","sessionId":"s$i"}));
        my $t0 = time;
        while (time - $t0 < 3) {
            last if rtotal('fresh') == $i;
            sleep 0.01;
        }
        push @lag, time - $t0;
    }
    my ($max) = sort { $b <=> $a } @lag;
    ok($max < 0.2 + 0.8, sprintf("each event visible in Redis within the 200 ms interval + 800 ms slack for a loaded machine (worst %.0f ms)", $max * 1000));

    my $ok = 0;
    for my $round (1 .. 3) {
        for my $i (1 .. 30) {
            my ($st) = post_view($port, qq({"contentId":"k","sessionId":"r$round-$i"}));
            $ok++ if $st == 202;
        }
        # kill one worker hard; the master starts another
        my @workers = worker_pids();
        kill 'KILL', $workers[0] if @workers;
        wait_workers(2, $workers[0]);
    }
    is($ok, 90, "90 events accepted around three worker kills");
    ok(wait_flushed(15), "everything flushed, orphaned claims included");
    is(rtotal('k'), 90, "exact after SIGKILLed workers: 90");
    like(error_log_text(), qr/exited on signal 9/, "the workers were indeed killed");
--- error_log
[alert]
exited on signal 9



=== TEST 3: Redis down under traffic, then back: exact
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my $rpid = redis_pid($rport);
    my $ok = 0;
    for my $i (1 .. 60) {
        if ($i == 30) {
            # a flush confirms the first 29, so their totals are known
            ok(wait_flushed(), "first part flushed");
            stop_redis($rpid);
        }
        my ($st) = post_view($port, qq({"contentId":"o","sessionId":"s$i"}));
        $ok++ if $st == 202;
    }
    is($ok, 60, "events are accepted while Redis is down");
    my (undef, $sum) = http_request($port, 'GET', '/engagement/summary/o');
    like($sum, qr/"views":60,/, "the summary shows Redis totals plus pending deltas");
    my $pending = metric('nginx_engagement_pending_contents{zone="engagement"}')
                + metric('nginx_engagement_inflight_contents{zone="engagement"}');
    ok($pending >= 1, "status shows deltas waiting for Redis");
    my ($st) = http_request($port, 'GET', '/engagement/summary/unknown-while-down');
    is($st, 503, "unknown content while Redis is down: 503");
    # the outage lasts a while (0.5 s once noticed: its length, not a wait),
    # so that the workers retry several times
    wait_until { error_log_text() =~ /\[error\].*engagement redis: (?:connection to|connect to)/ };
    sleep 0.5;
    start_redis($rport, keep => 1);
    ok(wait_flushed(), "flushed after Redis is back");
    is(rtotal('o'), 60, "totals exact after the outage: 60");
    my $log = error_log_text();
    my $lost = () = $log =~ /\[error\].*engagement redis: (?:connection to|connect to)/g;
    ok($lost >= 1 && $lost <= 4, "the outage is logged once per worker, not per retry ($lost error lines)");
    like($log, qr/engagement redis: connected to/, "the recovery is logged");
    log_is_clean('outage');
--- no_shutdown_error_log eval
qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/



=== TEST 4: a flush applied by Redis whose reply is cut: counted once
--- proxy: 0
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(wait_until { (metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 },
       "both workers connected through the proxy");
    open my $fh, '>', $ctl; print $fh "3"; close $fh;
    for my $i (1 .. 10) {
        post_view($port, qq({"contentId":"p","sessionId":"s$i"}));
        # every third event: let a flush round (and maybe a cut) happen
        if ($i % 3 == 0) {
            my $before = slurp($ctl);
            wait_until { slurp($ctl) ne $before || rtotal('p') >= $i } 3;
        }
    }
    ok(wait_flushed(15), "flushed despite three cut connections");
    is(slurp($ctl), "0", "the proxy cut three flushes after Redis applied them");
    is(rtotal('p'), 10, "no double count: exactly 10 in Redis");
    my $rep = metric('nginx_engagement_flush_commands_total{zone="engagement",result="repeat"}');
    ok($rep >= 1, "resent flushes were recognised as already applied ($rep)");
    log_is_clean('cut');
--- no_shutdown_error_log eval
qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/



=== TEST 5: reloads during traffic; a stop with Redis down saves the rest
--- state: reload
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    stop_proxy();
    my $count = scratch_dir('reload') . '/count';
    my $kid = fork() // die;
    if ($kid == 0) {
        my $ok = 0;
        for my $i (1 .. 300) {
            my ($st) = post_view($port, qq({"contentId":"rl","sessionId":"s$i"}));
            $ok++ if $st == 202;
        }
        open my $o, '>', $count; print $o $ok; close $o;
        POSIX::_exit(0);
    }
    # three reloads 0.3 s apart while the traffic goes on (pacing, not a
    # wait: each reload itself is waited for)
    for (1 .. 3) { sleep 0.3; reload_nginx(2) }
    waitpid($kid, 0);
    our $accepted = slurp($count);
    ok($accepted > 250, "most events accepted during reloads ($accepted)");
    ok(wait_flushed(), "flushed after the reloads");
    is(rtotal('rl'), $accepted, "Redis total equals the accepted events across 3 reloads");

    # stop with Redis down: the rest goes to the state file (the runner
    # stops this nginx; TEST 6 starts the next one with the same file)
    stop_redis(redis_pid($rport));
    my $ok = 0;
    for my $i (1 .. 40) {
        my ($st) = post_view($port, qq({"contentId":"rl","sessionId":"down$i"}));
        $ok++ if $st == 202;
    }
    is($ok, 40, "40 more accepted with Redis down");
--- shutdown_error_log
engagement: saved 1 unflushed entries



=== TEST 6: a start with Redis up restores the state file: exact
--- redis: same
--- state: reload
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    # the state file TEST 5's stop wrote, as this start found it
    like(slurp("$state_file{reload}.restored"), qr/^c rl /m, "the state file holds the unflushed deltas");
    start_redis($rport, keep => 1);
    ok(wait_flushed(), "restored deltas flushed");
    is(rtotal('rl'), $main::accepted + 40, "exact after stop with Redis down and start with it up");
    like(error_log_text(), qr/restored 1 unflushed entries/, "the restore is logged");
    ok(!-e $state_file{reload} && -e "$state_file{reload}.restored",
       "the state file is consumed (kept as .restored)");
    log_is_clean('reload');
--- no_shutdown_error_log eval
qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/



=== TEST 7: Redis answering errors: wrong password, OOM, wrong type
--- redis: fresh password=right
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_TARGET_PORT timeout=500ms connect_timeout=500ms backoff=50ms:400ms password=wrong buckets=0 uniques=0;
    engagement_flush_interval 200ms;
    engagement_flush_deadline 2s;
    engagement_edge_id test-edge;
    engagement_state_file $TEST_NGINX_STATE_FILE;
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my ($st) = post_view($port, q({"contentId":"e","sessionId":"s1"}));
    is($st, 202, "wrong password: events still accepted");
    ok(wait_until { error_log_text() =~ /engagement redis: AUTH failed/ }, "a flush was tried");
    like(error_log_text(), qr/engagement redis: AUTH failed: WRONGPASS|engagement redis: AUTH failed/,
         "wrong password is logged");
    ok(metric('nginx_engagement_redis_errors_total{zone="engagement"}') >= 1, "and counted");
    ($st) = post_view($port, q({"contentId":"e2","sessionId":"s1"}));
    is($st, 202, "the worker keeps serving");
    ($st) = http_request($port, 'GET', '/engagement/summary/e');
    is($st, 503, "a summary it cannot complete is an honest 503");
    # fix the password with a reload: the pending delta arrives
    my $conf = servroot() . '/conf/nginx.conf';
    my $text = slurp($conf);
    $text =~ s/password=wrong/password=right/ or die "no password in $conf";
    open my $fh, '>', $conf or die $!; print $fh $text; close $fh;
    reload_nginx(2);
    ok(wait_flushed(), "flushed after the fix");
    is(redis_cli($rport, 'right', 'HGET', 'eng:{c:e}', 'views'), 1, "exact after the password fix");
    is(redis_cli($rport, 'right', 'HGET', 'eng:{c:e2}', 'views'), 1, "both contents");

    # OOM: Redis refuses writes, then accepts them again
    redis_cli($rport, 'right', 'CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    redis_cli($rport, 'right', 'CONFIG', 'SET', 'maxmemory', '1');
    post_view($port, qq({"contentId":"e","sessionId":"oom$_"})) for 1 .. 5;
    wait_until { error_log_text() =~ /flush of "e" failed: OOM/ };
    like(error_log_text(), qr/flush of "e" failed: OOM/, "OOM is logged");
    is(redis_cli($rport, 'right', 'HGET', 'eng:{c:e}', 'views'), 1, "nothing applied while OOM");
    redis_cli($rport, 'right', 'CONFIG', 'SET', 'maxmemory', '0');
    ok(wait_flushed(), "flushed once Redis has memory again");
    is(redis_cli($rport, 'right', 'HGET', 'eng:{c:e}', 'views'), 6, "exact after OOM: 6");

    # a key of the wrong type: that content retries, others flow
    redis_cli($rport, 'right', 'SET', 'eng:{c:wt}', 'not-a-hash');
    post_view($port, q({"contentId":"wt","sessionId":"s1"}));
    post_view($port, q({"contentId":"fine","sessionId":"s1"}));
    wait_until {
        error_log_text() =~ /flush of "wt" failed: .*WRONGTYPE/
            && (metric('nginx_engagement_flush_commands_total{zone="engagement",result="failed"}') // 0) >= 2
            && redis_cli($rport, 'right', 'HGET', 'eng:{c:fine}', 'views') eq '1'
    };
    like(error_log_text(), qr/flush of "wt" failed: .*WRONGTYPE/, "WRONGTYPE is logged");
    is(redis_cli($rport, 'right', 'HGET', 'eng:{c:fine}', 'views'), 1, "other content is flushed meanwhile");
    ok(metric('nginx_engagement_flush_commands_total{zone="engagement",result="failed"}') >= 2,
       "failed flush commands are counted");
    redis_cli($rport, 'right', 'DEL', 'eng:{c:wt}');
    ok(wait_flushed(), "flushed once the key is fixed");
    is(redis_cli($rport, 'right', 'HGET', 'eng:{c:wt}', 'views'), 1, "exact after WRONGTYPE: 1");
    log_is_clean('errors');
--- no_shutdown_error_log eval
qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/



=== TEST 8: a long flush interval does not hold a stop or reload: the final flush starts at once
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_TARGET_PORT timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0;
    engagement_flush_interval 60s;
    engagement_flush_deadline 2s;
    engagement_edge_id test-edge;
    engagement_state_file $TEST_NGINX_STATE_FILE;
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    our ($li_state, $li_rport) = ($ENV{TEST_NGINX_STATE_FILE}, $rport);
    my $ok = 0;
    for my $i (1 .. 20) {
        my ($st) = post_view($port, qq({"contentId":"li","sessionId":"s$i"}));
        $ok++ if $st == 202;
    }
    is($ok, 20, "20 events accepted");
    is(rtotal('li'), 0, "nothing flushed yet: the interval is 60 s");
    # the workers' final flush is the same at a stop and at a reload: the
    # old workers flush and exit at once, not after the interval
    my @old = worker_pids();
    my $t0 = time;
    kill 'HUP', master_pid();
    wait_until { !grep { -e "/proc/$_" && slurp("/proc/$_/stat") !~ /^\d+ \(.*?\) Z/ } @old } 10;
    my $took = time - $t0;
    ok($took < 3, sprintf("the old workers' exit took %.2f s, not the interval", $took));
    is(rtotal('li'), 20, "and their final flush sent all 20");
    post_view($port, qq({"contentId":"li","sessionId":"s21"}));
    log_is_clean('long interval');
--- no_shutdown_error_log eval
[qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/,
 qr/engagement: saved \d+ unflushed entries/]



=== TEST 9: a backlog of many flush rounds drains round after round, not a round per timer step
--- proxy: 20
--- nginx_workers: 1
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_TARGET_PORT timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0;
    engagement_flush_interval 1s;
    engagement_flush_batch 10;
    engagement_flush_deadline 2s;
    engagement_edge_id test-edge;
    engagement_state_file $TEST_NGINX_STATE_FILE;
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    # TEST 8's stop flushed the 21st event at once: nothing left to save
    is(redis_cli($li_rport, undef, 'HGET', 'eng:{c:li}', 'views'), 21,
       "the stop with a 60 s interval flushed the last event");
    ok(!-e $li_state, "and saved nothing");
    # (ngx_add_timer's lazy delay once kept 250 ms between rounds; Redis
    # answers 20 ms late here, so a round takes longer than a timer tick)
    my $ok = 0;
    for my $i (1 .. 400) {
        my ($st) = post_view($port, qq({"contentId":"bl$i","sessionId":"s"}));
        $ok++ if $st == 202;
    }
    is($ok, 400, "400 contents with a view each");
    my $t0 = time;
    ok(wait_flushed(20), "all of them flushed");
    my $took = time - $t0;
    # 40 rounds or more: one interval, then each round right after the last
    # (about 20 ms each); 250 ms per round would take 10 s
    ok($took < 5, sprintf("the backlog of 40 rounds drained in %.2f s (< 5 s)", $took));
    my $sum = 0;
    $sum += rtotal("bl$_") for 1 .. 400;
    is($sum, 400, "400 views in Redis");
    log_is_clean('backlog');
--- no_shutdown_error_log eval
qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/
