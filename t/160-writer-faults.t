# Guards the durable writer's correctness under faults, against a real
# clickhouse-server (Debian's 18.16, ours on its own ports and data) and
# a real redis-server: ClickHouse's rollups carry what each view counted
# (views, engaged, replays) and equal Redis's totals and minute buckets,
# a late event included (both file it under its arrival minute); a
# worker's claim is never sent twice while that worker lives, however long
# its send takes; a reload under traffic costs the old workers only their
# own batches (they exit promptly, spool nothing, every event is in
# ClickHouse once); /health reports the writer's upstream down.
#
# ClickHouse, our fault server in front of it and Redis run on free
# loopback ports with their data, the fault server's mode file and the
# spools in private temporary directories (never in servroot); the configs
# get $TEST_NGINX_CH_PORT, $TEST_NGINX_FAULT_PORT, $TEST_NGINX_DEAD_PORT,
# $TEST_NGINX_REDIS_PORT and $TEST_NGINX_SPOOL. Each block's steps are its
# "--- post_check" Perl.
use strict;
use warnings;
use FindBin;
# our helpers first: their END (which stops our servers) then runs after
# the runner's END has stopped nginx
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Engagement::ClickHouse;
use Test::Nginx::Socket;
use IO::Socket::INET;
use POSIX qw(_exit strftime);
use Time::HiRes qw(sleep time);
use File::Path qw(make_path remove_tree);

if (ch_bin()) {
    Test::More::plan('no_plan');
} else {
    Test::More::plan(skip_all => 'clickhouse-server is not installed (./build.sh installs it)');
}

our $port = nginx_port();
our $chp = free_ports(250, 15, 3);               # http; +1 tcp; +2 fault
our $fport = $chp + 2;
our $chdir = scratch_dir("clickhouse-$chp");
our $ctl = scratch_dir() . "/fault";
our $rport = free_ports(400, 20, 1);
our ($ch, $fp);
ch_setup(port => $chp, dir => $chdir, fault_port => $fport, ctl => $ctl,
         keep_alive => 1);

$ENV{TEST_NGINX_CH_PORT} = $chp;
$ENV{TEST_NGINX_FAULT_PORT} = $fport;
$ENV{TEST_NGINX_DEAD_PORT} = free_ports(450, 20, 1);   # connects are refused
$ENV{TEST_NGINX_REDIS_PORT} = $rport;

master_on();
workers(2);
log_level('info');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

add_block_preprocessor(sub {
    my ($block) = @_;
    $ENV{TEST_NGINX_SPOOL} = scratch_dir('spool-' . $block->seq_num);
    $ENV{TEST_NGINX_WRCONF} = scratch_dir() . '/writer-' . $block->seq_num . '.conf';
    wr_conf('1m');
    wr_spooled($block->{spooled}[0]) if $block->{spooled};
});

# "--- spooled: N": the spool holds a batch of N rows when nginx starts,
# and the upstream answers 3 s late (within timeout=5s)
sub wr_spooled {
    my ($n) = @_;
    fault_mode('slow 3');
    my $ms = int(time * 1000) - 1000;
    my $rows = join '', map {
        qq({"event_id":"spooled-$_","type":"view","content_id":"c-sp","viewer_id":"","session_id":"s$_",)
        . qq("ts":1765000000,"received_at":1765000000,"duration_ms":0,"country":"","device":"",)
        . qq("source":"","channel_id":"","category":"","reaction":"","edge":"test-edge",)
        . qq("counted":true,"views":1,"engaged":0,"replays":0,"reason":""}\n)
    } 1 .. $n;
    open my $fh, '>', "$ENV{TEST_NGINX_SPOOL}/${ms}_test-edge.1.b1.ndjson" or die $!;
    print $fh $rows;
    close $fh;
}

# the block's engagement_writer line, in an included file (outside
# servroot) that a block may rewrite before a reload: its zone's size
sub wr_conf {
    my ($size) = @_;
    open my $fh, '>', $ENV{TEST_NGINX_WRCONF} or die $!;
    print $fh "engagement_writer http://127.0.0.1:$fport/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow"
            . " zone=engagement_writer_q:$size batch=100 interval=100ms connect_timeout=300ms"
            . " timeout=5s retry=200ms spool=$ENV{TEST_NGINX_SPOOL};\n";
    close $fh;
}

# -- nginx side ----------------------------------------------------------------

sub metric {
    my ($name) = @_;
    my (undef, $t) = http_request($port, 'GET', '/status');
    return $t =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

# waits until the writer holds nothing: queue, claims and spool empty
sub wait_drained {
    my ($secs) = @_;
    return wait_until {
        my (undef, $t) = http_request($port, 'GET', '/status');
        $t =~ /^nginx_engagement_writer_queued_events 0$/m
            && $t =~ /^nginx_engagement_writer_inflight_events 0$/m
            && $t =~ /^nginx_engagement_writer_spool_files 0$/m;
    } $secs // 20;
}

# n plain views of their own sessions; how many were answered 2xx
sub wr_views {
    my ($n, $tag) = @_;
    my $ok = 0;
    for my $i (1 .. $n) {
        my ($st) = post_view($port, qq({"contentId":"c-$tag-@{[ $i % 3 ]}",)
                                  . qq("sessionId":"s-$tag-$i","viewerId":"v-$tag-$i"}));
        $ok++ if $st && $st >= 200 && $st < 300;
    }
    return $ok;
}

# rows in ClickHouse: (rows as inserted, distinct event ids)
sub wr_rows {
    return (ch("SELECT count() FROM eng.events") + 0,
            ch("SELECT uniqExact(event_id) FROM eng.events") + 0);
}

# the pid of the worker holding a connection to the fault server
sub wr_sender {
    my $out = `ss -Htnp state established '( dport = :$fport )' 2>/dev/null`;
    my %w = map { $_ => 1 } worker_pids();
    for my $pid ($out =~ /pid=(\d+)/g) {
        return $pid if $w{$pid};
    }
    return undef;
}

$ch = ch_start(fresh => 1);
ch_schema();
$fp = fault_start();
fault_mode('pass');

run_tests();

__DATA__

=== TEST 1: views, engaged-only events, replays and a late event: ClickHouse's rollups equal Redis's totals and minute buckets
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_flush_interval 200ms;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms buckets=0 uniques=0;
    engagement_writer http://127.0.0.1:$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=50 interval=100ms
        connect_timeout=300ms timeout=800ms retry=200ms
        spool=$TEST_NGINX_SPOOL check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up [01]\n
--- post_check
    ch_truncate();
    start_redis($rport);
    ok(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 },
       "both workers connect to Redis");
    # early in a minute, so that every event arrives in one minute (a wait
    # for the clock, not for nginx)
    sleep(61 - (time % 60)) if time % 60 > 40;
    my $minute = strftime('%Y%m%d%H%M', gmtime);
    my $late = int(time * 1000) - 3600 * 1000;
    my @ev = (
        # content, body, metrics expected
        ['m1', '"sessionId":"a","durationMs":0', 'view'],
        ['m1', '"sessionId":"a","durationMs":40000', 'engaged'],
        ['m1', '"sessionId":"a","replay":true', 'replay'],
        ['m1', '"sessionId":"b","durationMs":40000', 'view,engaged'],
        ['m1', '"sessionId":"b","durationMs":45000', ''],
        ['m2', '"sessionId":"c","replay":true', 'replay'],
        ['m2', '"sessionId":"d","durationMs":35000', 'view,engaged'],
        ['m2', '"sessionId":"d","replay":true', 'replay'],
        ['m3', qq("sessionId":"e","durationMs":40000,"ts":$late), 'view,engaged'],
    );
    my @got;
    for my $e (@ev) {
        my ($st, $b) = post_view($port, qq({"contentId":"$e->[0]",$e->[1]}));
        my ($m) = $b =~ /"metrics":\[([^\]]*)\]/;
        $m //= '';
        $m =~ s/"//g;
        push @got, $m;
    }
    is("@got", join(' ', map { $_->[2] } @ev),
       "the answers' metrics: views, engaged-only, replays, a repeat, a late view");
    ok(wait_until { (redis_cli($rport, undef, 'HGET', 'eng:{c:m3}', 'views') || 0) == 1
                    && (metric('nginx_engagement_pending_contents{zone="engagement"}') // 1) == 0
                    && (metric('nginx_engagement_inflight_contents{zone="engagement"}') // 1) == 0 },
       "Redis has the totals");
    ok(wait_drained(), "the writer's queue drains");
    my ($rows, $ids) = wr_rows();
    is($rows, scalar(@ev), "one row per event ($rows)");
    for my $c (qw(m1 m2 m3)) {
        my $redis = join ' ', map { redis_cli($rport, undef, 'HGET', "eng:{c:$c}", $_) || 0 }
                                  qw(views engaged replays);
        is(ch("SELECT concat(toString(sum(views)), ' ', toString(sum(engaged)), ' ', "
              . "toString(sum(replays))) FROM eng.views_day WHERE content_id = '$c'"),
           $redis, "$c: the day rollup's views, engaged, replays are Redis's totals ($redis)");
        my $rm = join ' ', map { redis_cli($rport, undef, 'HGET', "eng:{c:$c}:m:$minute", $_) || 0 }
                               qw(views engaged replays);
        my ($y, $mo, $d, $h, $mi) = $minute =~ /^(....)(..)(..)(..)(..)$/;
        is(ch("SELECT concat(toString(sum(views)), ' ', toString(sum(engaged)), ' ', "
              . "toString(sum(replays))) FROM eng.views_minute WHERE content_id = '$c' "
              . "AND minute = toDateTime('$y-$mo-$d $h:$mi:00')"),
           $rm, "$c: the minute rollup of $minute is Redis's minute bucket ($rm)");
    }
    is(ch("SELECT count() FROM eng.views_minute WHERE content_id = 'm3' "
          . "AND minute != toStartOfMinute(toDateTime('" . strftime('%Y-%m-%d %H:%M:00', gmtime($late / 1000)) . "')) "
          . "AND views = 1"), 1,
       "the late event's row in the minute rollup is not under its ts minute");
    is(ch("SELECT count() FROM eng.events WHERE content_id = 'm3' AND ts != received_at"), 1,
       "the late event keeps its own ts in eng.events");
    stop_redis(redis_pid($rport));
--- no_error_log
[alert]



=== TEST 2: a slow answer and a stalled sender past the old stale limit: no line is sent twice
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_writer http://127.0.0.1:$TEST_NGINX_FAULT_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=100 interval=100ms
        connect_timeout=300ms timeout=2s retry=200ms
        spool=$TEST_NGINX_SPOOL check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- post_check
    ch_truncate();
    # the upstream takes each batch at once and answers 1.5 s later (within
    # timeout=2s: a legal send); the sender is stopped meanwhile, past what
    # the old limit allowed a claim (connect_timeout + 2 x timeout +
    # interval + 5 s = 9.4 s), as a worker blocked in a slow fsync would be
    fault_mode('slow 1.5');
    is(wr_views(30, 'slow'), 30, "30 events accepted");
    my $sender = wait_until { (metric('nginx_engagement_writer_inflight_events') // 0) > 0
                              && wr_sender() };
    ok($sender, "a worker has a batch in flight");
    # no request to nginx while a worker is stopped: the kernel may hand
    # the connection to it. The other worker's ticks look at the claim.
    kill 'STOP', $sender if $sender;
    # (the stall's length, not a wait)
    sleep 10.5;
    kill 'CONT', $sender if $sender;
    is(wr_views(10, 'more'), 10, "10 more events accepted");
    fault_mode('pass');
    ok(wait_drained(), "the queue drains");
    my ($rows, $ids) = wr_rows();
    is($ids, 40, "every event in ClickHouse");
    is($rows, 40, "no line sent twice (rows as inserted: $rows)");
    is(metric('nginx_engagement_writer_reclaimed_total') // 0, 0,
       "no claim of a live worker was taken back");
--- no_error_log
[alert]



=== TEST 3: a reload under traffic with the sink up: the old workers exit at once, spool nothing, every event once
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_writer http://127.0.0.1:$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=1000 interval=1s
        connect_timeout=300ms timeout=2s retry=200ms
        spool=$TEST_NGINX_SPOOL check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- post_check
    ch_truncate();
    my $n = wr_views(60, 'before');
    my @old = worker_pids();
    # events are queued (interval=1s) when the reload comes
    ok((metric('nginx_engagement_writer_queued_events') // 0) > 0, "events queued at the reload");
    my $t0 = time;
    kill 'HUP', master_pid();
    $n += wr_views(60, 'during');
    ok(wait_workers(2, @old), "the old workers have exited");
    my $took = time - $t0;
    $n += wr_views(30, 'after');
    # from the log: the old workers' exit, seconds after the reload
    my $log = error_log_text();
    my ($hup) = $log =~ m{^(\d+/\d+/\d+ \d+:\d+:\d+) \[notice\] \d+#\d+: signal 1 \(SIGHUP\) received}m;
    my @exits = map { $log =~ m{^(\d+/\d+/\d+ \d+:\d+:\d+) \[notice\] \d+#\d+: worker process $_ exited}m ? $1 : () } @old;
    ok($hup && @exits == @old, "the reload and the old workers' exits are logged");
    my $secs = sub { my ($y, $mo, $d, $h, $mi, $s) = $_[0] =~ /(\d+)/g;
                     POSIX::mktime($s, $mi, $h, $d, $mo - 1, $y - 1900) };
    my $worst = 0;
    for (@exits) { my $d = $secs->($_) - $secs->($hup); $worst = $d if $d > $worst }
    ok($hup && $worst <= 2, "the old workers exited within 2 s of the reload by the log ($worst s; $took s seen)");
    ok(wait_drained(), "the queue drains");
    is(metric('nginx_engagement_writer_batches_total{result="spooled"}') // 0, 0,
       "nothing was spooled (the new workers sent the old ones' queue)");
    my ($rows, $ids) = wr_rows();
    is($ids, $n, "every event in ClickHouse ($n)");
    is($rows, $n, "each once");
--- no_error_log
[alert]



=== TEST 4: /health says degraded while the writer's upstream is down, 503 after the grace
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_health_grace 1500ms;
    engagement_writer http://127.0.0.1:$TEST_NGINX_DEAD_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=10 interval=100ms
        connect_timeout=300ms timeout=800ms retry=200ms spool=$TEST_NGINX_SPOOL;
--- config
    location = /engagement/view { engagement view; }
    location = /engagement/health { engagement health; }
    location = /status { engagement status; }
--- request
GET /engagement/health
--- response_body_like: ^\{"status":"ok","redis":"off","pendingContents":0,"writer":"up","spooledBatches":0\}$
--- post_check
    is(wr_views(25, 'h'), 25, "25 events accepted with the upstream down");
    ok(wait_until { (metric('nginx_engagement_writer_spool_files') // 0) > 0 }, "batches spooled");
    my ($st, $b) = http_request($port, 'GET', '/engagement/health');
    is($st, 200, "within the grace: 200");
    like($b, qr/^\{"status":"degraded","redis":"off","pendingContents":0,"writer":"down","spooledBatches":[1-9]\d*\}\n\z/,
         "degraded, the writer down, the spooled batches");
    ok(wait_until { (http_request($port, 'GET', '/engagement/health'))[0] == 503 },
       "after the grace: 503");
    (undef, $b) = http_request($port, 'GET', '/engagement/health');
    like($b, qr/^\{"status":"unavailable","reason":"writer_unavailable","downForMs":\d+,"spooledBatches":[1-9]\d*\}\n\z/,
         "with the reason, how long, the spooled batches");
    # (TEST 5 starts with rows in its spool: empty tables before it)
    ch_truncate();



=== TEST 5: a reload that makes a new queue zone leaves the old workers' spool files in work alone
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    include $TEST_NGINX_WRCONF;
--- spooled: 5
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- post_check
    my $spool = $ENV{TEST_NGINX_SPOOL};
    # (the spooled batch of 5 rows is replayed through a slow upstream);
    # and a batch some live process is writing (this test's pid)
    my $tmp = "$spool/.tmp_${$}_" . int(time * 1000) . "_test-edge.1.b2.ndjson";
    open my $fh, '>', $tmp or die $!;
    print $fh "{}\n";
    close $fh;
    ok(wait_until { grep { /\.sending$/ } glob("$spool/*") }, "a worker replays the spooled batch");
    my @old = worker_pids();
    # a new queue zone: its start takes stock of the spool
    wr_conf('2m');
    kill 'HUP', master_pid();
    ok(wait_workers(2, @old), "the reload is done, the old workers have exited");
    ok(-e $tmp, "the live process's half-written batch is still there");
    unlink $tmp;
    fault_mode('pass');
    my $empty = wait_until { !glob("$spool/*") } 20;
    ok($empty, "the spool empties");
    my ($n, $ids) = wr_rows();
    is($ids, 5, "the spooled batch is in ClickHouse");
    is($n, 5, "once: the new workers did not send the old one's claimed file again");
--- no_error_log
[alert]



=== TEST 6: a worker stopped while it copies its claimed lines holds no lock: the other worker still answers views (gdb)
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_writer http://127.0.0.1:$TEST_NGINX_DEAD_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=10 interval=100ms
        connect_timeout=300ms timeout=800ms retry=200ms spool=$TEST_NGINX_SPOOL;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- post_check
    SKIP: {
        skip "no gdb", 4 unless have_gdb();
        my $out = scratch_dir() . '/gdb-copy.out';
        my ($a) = worker_pids();
        # stopped at its first claimed line, held 4 s, then let go
        my $gdb = gdb_at($a, $out, ['ngx_http_engagement_writer_line_batch'],
                         'shell sleep 4', 'delete', 'detach');
        # views from a child until then, so that a batch is claimed
        my $load = fork();
        die "fork: $!" unless defined $load;
        if (!$load) {
            wr_views(1, "g$_") for 1 .. 20000;   # until killed
            POSIX::_exit(0);
        }
        my $stopped = wait_until { slurp("/proc/$a/status") =~ /^State:\s*t/m } 20;
        ok($stopped, "worker $a stopped while copying a batch it claimed");
        my $t0 = time;
        my ($st) = post_view($port, q({"contentId":"c-during","sessionId":"s-during"}));
        is($st, 202, 'a view during the stop is answered 202 by the other worker');
        ok(time - $t0 < 2, sprintf('at once (%.2f s), not after the stop', time - $t0));
        gdb_wait($gdb, 30);
        kill 'KILL', $load;
        waitpid($load, 0);
        like(slurp($out), qr/Breakpoint \d+, ngx_http_engagement_writer_line_batch /, 'gdb saw the breakpoint');
    }
--- no_error_log
[alert]



=== TEST 7: workers killed after ClickHouse stored their batches, before the answers: the batches are checked under their own ids, not stored twice
--- http_config
    engagement_edge_id test-edge;
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_writer http://127.0.0.1:$TEST_NGINX_FAULT_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=100 interval=100ms
        connect_timeout=300ms timeout=15s retry=200ms
        spool=$TEST_NGINX_SPOOL check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /status { engagement status; }
    location = /engagement/view { engagement view; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- post_check
    # ClickHouse takes each batch at once; its answer comes 10 s later
    fault_mode('slow 10');
    ch_truncate();
    my $accepted = wr_views(30, 'killed');
    is($accepted, 30, "30 events accepted");
    # every claimed batch is in ClickHouse, its sender waiting for the answer
    my $stored = wait_until {
        my $inflight = metric('nginx_engagement_writer_inflight_events');
        $inflight && ch("SELECT count() FROM eng.events") == $inflight;
    } 8;
    ok($stored, "the batches in flight are stored, their answers not yet come");
    my @old = worker_pids();
    kill 'KILL', @old;
    fault_mode('pass');
    ok(wait_workers(2, @old), "new workers serve");
    ok(wait_drained(), "the dead workers' claims are taken back and drained");
    my ($rows, $ids) = wr_rows();
    is($ids, 30, "every event in ClickHouse");
    is($rows, 30, "no batch stored twice (rows as inserted: $rows)");
    ok(metric('nginx_engagement_writer_reclaimed_total'), "the taken back events are counted");
    ok((metric('nginx_engagement_writer_batches_total{result="already_delivered"}') // 0) > 0,
       "the check found the dead workers' batches in ClickHouse");
--- error_log
[alert]
exited on signal 9
is taken back to be sent again



=== TEST 8: an answer cut after ClickHouse stored the batch, and the spool too small for it: the batch waits in memory under its id and is checked, not stored twice
--- http_config
    engagement_edge_id test-edge;
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_writer http://127.0.0.1:$TEST_NGINX_FAULT_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=100 interval=2s
        connect_timeout=300ms timeout=2s retry=200ms spool=$TEST_NGINX_SPOOL spool_max=4k
        check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /status { engagement status; }
    location = /engagement/view { engagement view; }
--- request
GET /status
--- error_code: 200
--- response_body_like: \nnginx_engagement_writer_spool_files 0\n
--- post_check
    ch_truncate();
    # ClickHouse takes each batch; its answer is cut. Long ids: a batch of
    # a few lines is larger than the spool's 4k, so it is not spooled (the
    # first send comes 1 s after the start, when the views are queued).
    fault_mode('cut');
    my $ok = wr_views(30, 'cut-' . ('x' x 100));
    ok($ok > 0, "events accepted ($ok; a full spool refuses the rest)");
    ok(wait_until { (metric('nginx_engagement_writer_spool_full_total') // 0) > 0 },
       "a batch whose answer was cut does not fit in the spool");
    # (the length of the fault: batches taken back meet it again)
    sleep 1;
    fault_mode('pass');
    ok(wait_drained(), "the queue drains once the answers come");
    my ($rows, $ids) = wr_rows();
    is($ids, $ok, "every accepted event in ClickHouse");
    is($rows, $ok, "no batch stored twice (rows as inserted: $rows)");
    ok((metric('nginx_engagement_writer_batches_total{result="already_delivered"}') // 0) > 0,
       "the check found the batch in ClickHouse");
--- no_error_log
[alert]
