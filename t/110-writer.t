# Guards the durable writer against a real clickhouse-server (Debian's
# 18.16, started here on its own ports and data directory): N events give
# N rows with the right fields and rollups that agree; ClickHouse stopped
# under traffic and started again loses nothing (spool, replay, dedupe on
# event_id); an upstream answering 500, hanging past the timeout or
# closing mid-response (a small fault server of our own in front of
# ClickHouse) only delays delivery; a stop with the upstream down and a
# start with it up delivers everything; a full spool refuses events with
# 503, counted; bad directive values fail to start nginx.
#
# ClickHouse, the fault server and Redis are ours: started here on free
# loopback ports, their data, the fault server's mode file and the
# writer's spools in private temporary directories (never in servroot),
# passed to the configs as $TEST_NGINX_CH_PORT, $TEST_NGINX_FAULT_PORT,
# $TEST_NGINX_DEAD_PORT (nobody listens), $TEST_NGINX_REDIS_PORT and
# $TEST_NGINX_SPOOL ("--- spool: name" picks a block's spool; two blocks
# with one name share it, e.g. a stop and the start after it). The steps
# of each block (traffic, faults, checks) are its "--- post_check" Perl;
# the blocks run in order and count the events sent in $n_sent.
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
use IO::Select;
use POSIX qw(_exit);
use Time::HiRes qw(sleep time);
use File::Path qw(make_path remove_tree);

if (ch_bin()) {
    Test::More::plan('no_plan');
} else {
    Test::More::plan(skip_all => 'clickhouse-server is not installed (./build.sh installs it)');
}

our $port = nginx_port();
our $chp = free_ports(150, 15, 3);               # http; +1 tcp; +2 fault
our $fport = $chp + 2;
our $chdir = scratch_dir("clickhouse-$chp");
our $ctl = scratch_dir() . "/fault";
our $rport = free_ports(100, 20, 1);
our ($ch, $fp);
ch_setup(port => $chp, dir => $chdir, fault_port => $fport, ctl => $ctl);
our $n_sent = 0;     # events answered 2xx, over the whole file

$ENV{TEST_NGINX_CH_PORT} = $chp;
$ENV{TEST_NGINX_FAULT_PORT} = $fport;
$ENV{TEST_NGINX_DEAD_PORT} = free_ports(200, 20, 1);   # connects are refused
$ENV{TEST_NGINX_REDIS_PORT} = $rport;

master_on();
workers(2);
log_level('info');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

our $DefaultConfig = <<'EOC';
    location = /status { engagement status; }
EOC

# the blocks' usual nginx configuration, unless a block gives its own
add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value('config', $DefaultConfig) unless defined $block->config;
    my $s = $block->{spool} ? $block->{spool}[0] : 'block' . $block->seq_num;
    $s =~ s/\s+//g;
    $ENV{TEST_NGINX_SPOOL} = scratch_dir("spool-$s");
});

our $spool;
sub spool_dir { $ENV{TEST_NGINX_SPOOL} }

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
    } $secs // 15;
}

sub post_events {
    my ($n, $tag) = @_;
    my $ok = 0;
    for my $i (1 .. $n) {
        my $dev = (qw(mobile desktop tv))[$i % 3];
        my $src = (qw(home search))[$i % 2];
        my $json = qq({"contentId":"c-$tag-@{[ $i % 4 ]}","sessionId":"s-$tag-$i",)
                 . qq("viewerId":"viewer-$tag-$i","device":"$dev","source":"$src",)
                 . qq("durationMs":@{[ 1000 * $i ]}});
        my ($st) = post_view($port, $json);
        $ok++ if $st && $st >= 200 && $st < 300;
    }
    $n_sent += $ok;
    return $ok;
}

sub distinct_events {
    return ch("SELECT uniqExact(event_id) FROM eng.events") + 0;
}

sub no_alerts {
    unlike(error_log_text(), qr/\[(alert|emerg)\]|are lost/, "no alerts");
}

$ch = ch_start(fresh => 1);
ch_schema();
$fp = fault_start();
fault_mode('pass');

run_tests();

__DATA__

=== TEST 1: N events -> N rows, fields, rollups; what the edge checks decide; ClickHouse stopped under traffic, then started; then stopped again for the stop in TEST 2
--- spool: basic
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_writer http://127.0.0.1:$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=50 interval=100ms
        connect_timeout=300ms timeout=800ms retry=200ms
        spool=$TEST_NGINX_SPOOL check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- post_check
    ok(http_request($chp, 'GET', '/?query=SELECT%201'), "clickhouse-server is up");
    is(post_events(120, 'a'), 120, "120 view events accepted");

    # a duplicate (same session within the dedupe window) and a request id
    my ($st, $b) = post_view($port, '{"contentId":"c-a-0","sessionId":"s-a-4",'
                             . '"viewerId":"viewer-a-4","requestId":"req-dup-1"}');
    is($st, 200, "a duplicate view is accepted, not counted");
    like($b, qr/"reason":"duplicate"/, "reason duplicate");
    $n_sent++;

    ok(wait_drained(), "the queue drains");
    is(distinct_events(), 121, "121 distinct events in ClickHouse");
    is(ch("SELECT count() FROM eng.events FINAL"), 121, "121 rows (FINAL)");

    my $row = ch("SELECT type, content_id, counted, reason, edge, length(viewer_id), "
                 . "viewer_id = 'viewer-a-4' FROM eng.events WHERE event_id = 'req-dup-1'");
    is($row, "view\tc-a-0\t0\tduplicate\ttest-edge\t16\t0",
       "the duplicate's row: type, content, counted=0 with its reason, edge");

    $row = ch("SELECT device, source, duration_ms, counted, length(viewer_id), "
              . "viewer_id LIKE '%viewer%', event_id LIKE 'test-edge.%' "
              . "FROM eng.events WHERE session_id = 's-a-5'");
    is($row, "tv\tsearch\t5000\t1\t16\t0\t1",
       "a counted row: device, source, duration; viewer id hashed; made event id");

    # rollups sum the rows as inserted (a batch resent after a timeout counts
    # twice there, see schema.sql); on a quiet run that is 121 and 120
    my $raw = ch("SELECT count() FROM eng.events");
    my $rawc = ch("SELECT sum(counted) FROM eng.events");
    is(ch("SELECT sum(events) FROM eng.views_minute"), $raw, "minute rollup: $raw events");
    is(ch("SELECT sum(counted) FROM eng.views_hour"), $rawc, "hour rollup: $rawc counted");
    is(ch("SELECT sum(events) FROM eng.views_day"), $raw, "day rollup: $raw events");
    is(ch("SELECT sum(counted) FROM eng.events FINAL"), 120, "120 counted events (FINAL)");
    is(ch("SELECT groupArray(d) FROM (SELECT device d, sum(events) FROM eng.views_day "
          . "GROUP BY d ORDER BY d)")
       . ch("SELECT groupArray(s) FROM (SELECT sum(events) s, device FROM eng.views_day "
            . "GROUP BY device ORDER BY device)"),
       ch("SELECT groupArray(d) FROM (SELECT device d, count() FROM eng.events "
          . "GROUP BY d ORDER BY d)")
       . ch("SELECT groupArray(s) FROM (SELECT count() s, device FROM eng.events "
            . "GROUP BY device ORDER BY device)"),
       "the day rollup by device agrees with the events");

    my (undef, $js) = http_request($port, 'GET', '/status?format=json');
    like($js, qr/"writer":\{"up":1,"queued_events":0,.*"events_total":121/,
         "the JSON status carries the writer figures");
    my (undef, $txt) = http_request($port, 'GET', '/status');
    my %help;
    $help{$1}++ while $txt =~ /^# HELP (nginx_engagement_writer_\S+)/mg;
    ok(!grep({ $_ > 1 } values %help) && keys(%help) >= 10,
       "one HELP per writer family");
    like($txt, qr/^nginx_engagement_writer_batches_total\{result="sent"\} [1-9]/m,
         "batches sent");
    SKIP: {
        skip 'promtool not installed', 1 unless -x '/usr/bin/promtool';
        my $out = scratch_dir() . '/promtool.out';
        open my $pt, '|-', "/usr/bin/promtool check metrics > $out 2>&1"
            or die;
        print $pt $txt;
        close $pt;
        is($?, 0, "promtool check metrics accepts the status with the writer")
            or diag(slurp($out));
    }
    my ($nb) = $txt =~ /^nginx_engagement_writer_batches_total\{result="sent"\} (\d+)/m;
    my ($nc) = $txt =~ /^nginx_engagement_writer_connects_total (\d+)$/m;
    ok($nc && $nb > $nc, "connections are kept alive ($nb batches, $nc connects)");

    # what the edge checks decide reaches the sink with its reason
    my $old = int(time * 1000) - 2 * 86400 * 1000;
    ($st, $b) = post_view($port, qq({"contentId":"c-late","sessionId":"s-late","ts":$old,"requestId":"req-late"}));
    like($b, qr/"reason":"too_old"/, "a late event: 200 too_old");
    $n_sent++;
    ($st, $b) = http_request($port, 'POST', '/engagement/view',
        '{"contentId":"c-bot","sessionId":"s-bot","requestId":"req-bot"}',
        'Content-Type' => 'application/json', 'User-Agent' => 'Googlebot/2.1');
    like($b, qr/"reason":"bot"/, "a crawler: 200 bot");
    ($st, $b) = http_request($port, 'POST', '/engagement/view',
        '{"contentId":"c-gpc","sessionId":"s-gpc","viewerId":"viewer-gpc","requestId":"req-gpc"}',
        'Content-Type' => 'application/json', 'Sec-GPC' => '1');
    is($st, 202, "a Sec-GPC view counts anonymously");
    $n_sent++;
    ok(wait_drained(), "the queue drains again");
    is(ch("SELECT counted, reason FROM eng.events WHERE event_id = 'req-late'"),
       "0\ttoo_old", "the late event is in the sink, not counted, with its reason");
    is(ch("SELECT count() FROM eng.events WHERE event_id = 'req-bot'"), 0,
       "a bot's event is not shipped");
    is(ch("SELECT counted, viewer_id = '' FROM eng.events WHERE event_id = 'req-gpc'"),
       "1\t1", "the opted-out view is shipped without any viewer id");

    # ClickHouse stopped under traffic, then started
    ch_stop($ch);
    is(post_events(80, 'b'), 80, "80 events accepted while ClickHouse is down");
    wait_until { (metric('nginx_engagement_writer_spool_files') // 0) > 0
                 && (metric('nginx_engagement_writer_batches_total{result="failed"}') // 0) > 0 };
    ok((metric('nginx_engagement_writer_spool_files') // 0) > 0, "batches spooled");
    ok((metric('nginx_engagement_writer_batches_total{result="failed"}') // 0) > 0,
       "failed batches counted");
    $ch = ch_start();
    ok(wait_drained(), "spool and queue drain after ClickHouse is back");
    is(distinct_events(), $n_sent, "every accepted event is in ClickHouse ($n_sent)");
    ok((metric('nginx_engagement_writer_batches_total{result="replayed"}') // 0) > 0,
       "replayed batches counted");
    my $files = () = glob(spool_dir() . "/*");
    is($files, 0, "the spool directory is empty");
    ok((metric('nginx_engagement_writer_spool_writes_total{in="thread"}') // 0) > 0,
       "the spool was written in threads of nginx's pool, not in the worker");

    # a stop with the upstream down (the runner stops this nginx; TEST 2
    # starts the next one on the same spool)
    no_alerts();
    ch_stop($ch);
    is(post_events(60, 'q'), 60, "60 events accepted with ClickHouse down");
--- no_shutdown_error_log eval
qr/\[(alert|emerg)\]|are lost/



=== TEST 2: the start after a stop with the upstream down delivers the spool once it is up
--- spool: basic
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
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
    # ClickHouse is still down: nothing could be replayed yet
    my $files = () = glob(spool_dir() . "/*.ndjson");
    ok($files > 0, "the stop left the queue in the spool ($files files)");
    $ch = ch_start();
    ok(wait_drained(), "the spool is replayed at start");
    is(distinct_events(), $n_sent, "every event arrived ($n_sent)");
    like(error_log_text(), qr/spooled batches .* will be replayed/,
         "the start logged the spool it found");
    no_alerts();
--- no_shutdown_error_log eval
qr/\[(alert|emerg)\]|are lost/



=== TEST 3: thread_pool=off: the spool written by the worker itself
--- spool: nothreads
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_writer http://127.0.0.1:$TEST_NGINX_DEAD_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=50 interval=100ms
        connect_timeout=300ms timeout=800ms retry=200ms
        spool=$TEST_NGINX_SPOOL thread_pool=off check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up [01]\n
--- post_check
    is(post_events(40, 'nt'), 40, "40 events accepted with the upstream refusing");
    wait_until { (metric('nginx_engagement_writer_spool_writes_total{in="worker"}') // 0) > 0 };
    ok((metric('nginx_engagement_writer_spool_writes_total{in="worker"}') // 0) > 0,
       "without a pool the worker writes the spool");
    is(metric('nginx_engagement_writer_spool_writes_total{in="thread"}'), 0,
       "and no thread does");
--- no_shutdown_error_log eval
qr/\[(alert|emerg)\]|are lost/



=== TEST 4: thread_pool=off: its spool is replayed once the upstream answers
--- spool: nothreads
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_writer http://127.0.0.1:$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=50 interval=100ms
        connect_timeout=300ms timeout=800ms retry=200ms
        spool=$TEST_NGINX_SPOOL thread_pool=off check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- post_check
    ok(wait_drained(), "its spool is replayed once the upstream answers");
    is(distinct_events(), $n_sent, "every event arrived ($n_sent)");
    no_alerts();
--- no_shutdown_error_log eval
qr/\[(alert|emerg)\]|are lost/



=== TEST 5: faults: 500, a hang past the timeout, a close mid-response; workers killed while their batch hangs
--- spool: faults
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_writer http://127.0.0.1:$TEST_NGINX_FAULT_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=50 interval=100ms
        connect_timeout=300ms timeout=800ms retry=200ms
        spool=$TEST_NGINX_SPOOL check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- post_check
    for my $mode (qw(500 hang cut)) {
        my $failed = metric('nginx_engagement_writer_batches_total{result="failed"}') // 0;
        fault_mode($mode);
        is(post_events(30, "f$mode"), 30, "$mode: events accepted meanwhile");
        # a batch meets the fault (the hang: past the 800 ms timeout)
        wait_until { (metric('nginx_engagement_writer_batches_total{result="failed"}') // 0) > $failed };
        ok((metric('nginx_engagement_writer_batches_total{result="failed"}') // 0) > 0,
           "$mode: failed batches counted");
        my ($s) = http_request($port, 'GET', '/status');
        is($s, 200, "$mode: the worker keeps serving");
        fault_mode('pass');
        ok(wait_drained(), "$mode: everything delivered once the upstream heals");
        is(distinct_events(), $n_sent, "$mode: no event lost ($n_sent)");
    }
    # workers killed while their batch hangs: the claims are taken back
    fault_mode('hang');
    is(post_events(30, 'crash'), 30, "crash: events accepted");
    wait_until { metric('nginx_engagement_writer_inflight_events') } 5;
    ok(metric('nginx_engagement_writer_inflight_events'), "crash: a batch in flight");
    my @old = worker_pids();
    kill 'KILL', @old;
    fault_mode('pass');
    wait_workers(2, @old);
    ok(wait_drained(20), "crash: the orphaned claim is sent by a new worker");
    is(distinct_events(), $n_sent, "crash: no event lost ($n_sent)");
    ok(metric('nginx_engagement_writer_reclaimed_total'), "crash: reclaimed events counted");

    ok((metric('nginx_engagement_writer_batches_total{result="already_delivered"}') // 0) > 0,
       "cut: the check found batches whose answer was cut in ClickHouse already");
    is(ch("SELECT count() FROM eng.events"), $n_sent,
       "so no row is stored twice ($n_sent rows), whatever the faults");
    is(ch("SELECT count() FROM eng.events FINAL"), $n_sent,
       "ReplacingMergeTree FINAL reads each event once");
    is(ch("SELECT sum(events) FROM eng.views_day"),
       ch("SELECT count() FROM eng.events WHERE type = 'view'"),
       "and the day rollup sums each view once");
    is(ch("SELECT count() FROM eng.events WHERE batch_id = ''"), 0,
       "every row names its batch");
    like(error_log_text(), qr/answered 500/, "the 500 was logged");
    like(error_log_text(), qr/timed out/, "the timeout was logged");
    # the next block's upstream is down: ClickHouse and the fault server stop
    ch_stop($ch);
    fault_stop($fp);
    undef $fp;
--- error_log
[alert]
exited on signal 9



=== TEST 6: the spool cap: a full spool refuses events with 503
--- spool: cap
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_writer http://127.0.0.1:$TEST_NGINX_FAULT_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=50 interval=100ms
        connect_timeout=300ms timeout=800ms retry=200ms
        spool=$TEST_NGINX_SPOOL spool_max=64k;
--- config
    location = /engagement/view { engagement view; }
    location = /engagement/heartbeat { engagement heartbeat; engagement_heartbeat_record on; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up [01]\n
--- post_check
    my ($got503, $hdr);
    # the spool is written by threads while the workers go on answering: post
    # until the cap is reached (about 150 events), at most 3000
    for my $i (1 .. 3000) {
        my ($s, undef, $h) = post_view($port, qq({"contentId":"cap","sessionId":"s$i"}));
        if ($s == 503) { $got503 = 1; $hdr = $h; last }
        sleep 0.01 if $i % 20 == 0;
    }
    ok($got503, "a full spool refuses events with 503");
    is($hdr->{'retry-after'}, 1, "with Retry-After");
    ok((metric('nginx_engagement_writer_refused_total{reason="spool_full"}') // 0) > 0,
       "refusals counted");
    my $sb = metric('nginx_engagement_writer_spool_bytes') // 0;
    ok($sb > 0 && $sb <= 65536, "the spool holds batches, within its cap ($sb)");
    ok((metric('nginx_engagement_writer_spool_full_total') // 0) > 0,
       "batches the spool could not take are counted (and stay queued)");
    my (undef, $txt) = http_request($port, 'GET', '/status');
    like($txt, qr/^nginx_engagement_writer_queued_events [1-9]/m,
         "events the spool could not take wait in the queue");
    # a heartbeat to be recorded is refused too (never accepted, then lost)
    my ($hs, $hb, $hh) = http_request($port, 'POST', '/engagement/heartbeat',
        '{"contentId":"cap","sessionId":"hb1","state":"playing"}',
        'Content-Type' => 'application/json');
    is($hs, 503, "a heartbeat to record gets 503 while the writer has no room");
    like($hb, qr/spool is full/, "its JSON says why");



=== TEST 7: likes, reactions and unlikes (with Redis) reach the sink
--- spool: reactions
--- http_config
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms;
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_writer http://127.0.0.1:$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=50 interval=100ms
        connect_timeout=300ms timeout=800ms retry=200ms
        spool=$TEST_NGINX_SPOOL check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
    location = /engagement/like { engagement like; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up [01]\n
--- post_check
    # (ClickHouse and Redis come up after nginx: the writer and the Redis
    # connection retry)
    $ch = ch_start();
    start_redis($rport);
    ok(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 },
       "both workers connect to Redis");
    my @steps = (
        ['POST', '{"contentId":"rc","userId":"u1","requestId":"rq-1"}'],
        ['POST', '{"contentId":"rc","userId":"u1","requestId":"rq-1"}'],
        ['POST', '{"contentId":"rc","userId":"u1","reaction":"love","requestId":"rq-2"}'],
        ['POST', '{"contentId":"rc","userId":"u1","reaction":"love"}'],
        ['DELETE', '{"contentId":"rc","userId":"u1","requestId":"rq-3"}'],
    );
    my $okr = 0;
    for my $s (@steps) {
        my ($rs) = http_request($port, $s->[0], '/engagement/like', $s->[1],
                                'Content-Type' => 'application/json');
        $okr++ if $rs == 200;
    }
    is($okr, 5, "five reaction requests answered 200");
    ok(wait_drained(), "the reaction events are delivered");
    is(metric('nginx_engagement_writer_events_total'), 5,
       "five reaction events written (the retry of rq-1 too)");
    # the retry shares rq-1's event_id: FINAL keeps the counted row of the two
    is(ch("SELECT groupArray(x) FROM (SELECT concat(type, ':', reaction, ':', "
          . "toString(counted), ':', reason) x FROM eng.events FINAL "
          . "WHERE content_id = 'rc' ORDER BY x)"),
       "['like:like:1:','react:love:0:unchanged','react:love:1:','unlike::1:']",
       "types, reactions, counted and reasons of like, react, no-op, unlike");
    is(ch("SELECT groupArray(x) FROM (SELECT concat(previous_reaction, '>', reaction) x "
          . "FROM eng.events FINAL WHERE content_id = 'rc' AND counted = 1 ORDER BY x)"),
       "['>like','like>love','love>']",
       "each transition carries its old and new state: none>like, like>love, love>none");
    is(ch("SELECT uniqExact(viewer_id), min(length(viewer_id)), "
          . "countIf(viewer_id = 'u1') FROM eng.events WHERE content_id = 'rc'"),
       "1\t16\t0", "the user id is hashed, the same way each time");
    # the retry with requestId rq-1 shares its event_id: 4 distinct events
    $n_sent += 4;



=== TEST 8: the viewer hash follows the identity salt's rotation
--- spool: salt
--- http_config
    engagement_salt_rotate 2s;
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_writer http://127.0.0.1:$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=50 interval=100ms
        connect_timeout=300ms timeout=800ms retry=200ms
        spool=$TEST_NGINX_SPOOL check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- post_check
    # the Redis of TEST 7 is no longer needed
    stop_redis(redis_pid($rport));
    {
        # early in a 2 s salt period: two views of one viewer, then one in the
        # next (these waits are for the clock, not for nginx)
        my $into = time - 2 * int(time / 2);
        sleep(2 - $into + 0.1);
        my @st;
        for my $e (['salt-a', 's-salt-1'], ['salt-b', 's-salt-2']) {
            push @st, (post_view($port, qq({"contentId":"c-salt","sessionId":"$e->[1]",)
                                      . qq("viewerId":"same-viewer","requestId":"$e->[0]"})))[0];
        }
        sleep(2.1);
        push @st, (post_view($port, '{"contentId":"c-salt","sessionId":"s-salt-3",'
                                  . '"viewerId":"same-viewer","requestId":"salt-c"}'))[0];
        # repeats of one viewer: duplicates, across the rotation too (dedupe
        # keeps the previous salt for a window); all three reach the sink
        is("@st", "202 200 200", "three views of one viewer, over two salt periods");
        $n_sent += 3;
    }
    ok(wait_drained(), "the three are delivered");
    my %vh = map { split /\t/ } split /\n/,
        ch("SELECT event_id, viewer_id FROM eng.events WHERE content_id = 'c-salt'");
    is(scalar(keys %vh), 3, "three rows");
    like($vh{'salt-a'} // '', qr/^[0-9a-f]{16}\z/, "the viewer id is a 64-bit hash");
    is($vh{'salt-b'}, $vh{'salt-a'}, "within one salt period: the same viewer hash");
    isnt($vh{'salt-c'}, $vh{'salt-a'}, "in the next period: another (the salt rotated)");



=== TEST 9: a reload under traffic, a killed worker: no event lost
--- spool: reload
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id test-edge;
    engagement_writer http://127.0.0.1:$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=50 interval=100ms
        connect_timeout=300ms timeout=800ms retry=200ms
        spool=$TEST_NGINX_SPOOL check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- post_check
    is(post_events(40, 'r1'), 40, "events before a reload");
    my @before = worker_pids();
    kill 'HUP', master_pid();
    is(post_events(40, 'r2'), 40, "events during and after the reload");
    wait_workers(2, @before);
    my @workers = worker_pids();
    ok(@workers >= 1, "workers found");
    is(post_events(20, 'k1'), 20, "events before a worker is killed");
    kill 'KILL', $workers[0];
    is(post_events(20, 'k2'), 20, "events after a worker was killed");
    ok(wait_drained(), "the queue drains after the reload and the crash");
    is(distinct_events(), $n_sent, "no event lost to the reload or the crash ($n_sent)");
--- error_log
[alert]
exited on signal 9



=== TEST 10: bad value: an upstream that is not http://
--- http_config
    engagement_writer ftp://127.0.0.1/;
--- must_die
--- error_log
engagement_writer



=== TEST 11: bad value: batch=0
--- http_config
    engagement_writer http://127.0.0.1:1/ batch=0;
--- must_die
--- error_log
engagement_writer



=== TEST 12: bad value: interval=0
--- http_config
    engagement_writer http://127.0.0.1:1/ interval=0;
--- must_die
--- error_log
engagement_writer



=== TEST 13: bad value: spool_max=1
--- http_config
    engagement_writer http://127.0.0.1:1/ spool_max=1;
--- must_die
--- error_log
engagement_writer



=== TEST 14: bad value: zone=w:1k
--- http_config
    engagement_writer http://127.0.0.1:1/ zone=w:1k;
--- must_die
--- error_log
engagement_writer



=== TEST 15: bad value: an unknown parameter
--- http_config
    engagement_writer http://127.0.0.1:1/ bogus=1;
--- must_die
--- error_log
engagement_writer



=== TEST 16: bad value: a host that does not resolve
--- http_config
    engagement_writer http://no-such-host.invalid/;
--- must_die
--- error_log
engagement_writer



=== TEST 17: bad value: check=x
--- http_config
    engagement_writer http://127.0.0.1:1/ check=x;
--- must_die
--- error_log
engagement_writer



=== TEST 18: bad value: check= (empty)
--- http_config
    engagement_writer http://127.0.0.1:1/ check=;
--- must_die
--- error_log
engagement_writer
