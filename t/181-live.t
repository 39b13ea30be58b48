# Guards live concurrent viewers (issue 15): N sessions heartbeating are
# N live viewers on both workers' answers; a session that stops drops out
# between 1.5 and 2 intervals after its last heartbeat (never before,
# never after), while the others stay; the minute's peak keeps the
# highest count; the summary carries live and peak; a full live zone refuses new sessions with 503 and
# keeps serving the ones it has; the status figures count each outcome.
# The heartbeat interval is 1 s here (2 s in TEST 1, for wider margins;
# 10 s in TEST 4, so nothing lapses), so a test takes seconds.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes qw(sleep time);
use File::Temp ();
use POSIX ();

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
master_on();    # two workers under the real runner too
workers(2);
add_response_body_check(post_check_hook());

our $HttpConfig = <<'_EOC_';
    engagement_zone engagement:1m;
    engagement_heartbeat_interval 1s;
_EOC_

our $Loc = <<'_EOC_';
    location = /engagement/heartbeat { engagement heartbeat; }
    location /engagement/live { engagement live; }
    location = /status { engagement status; }
    location /engagement/summary { engagement summary; }
    location = /engagement/view { engagement view; }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    $block->set_value("config", $Loc) unless defined $block->config;
    $block->set_value("no_error_log", "[error]\n[alert]\nexited on signal\nAddressSanitizer\nLeakSanitizer\nruntime error")
        unless defined $block->no_error_log;
});

# one heartbeat on its own connection (connections spread over workers)
sub beat {
    my ($c, $s) = @_;
    my ($st, $b) = http_request(nginx_port(), 'POST', '/engagement/heartbeat',
        qq({"contentId":"$c","sessionId":"$s","state":"playing"}),
        'Content-Type' => 'application/json');
    return ($st, $b);
}

sub live_of {
    my ($c) = @_;
    my ($st, $b) = http_request(nginx_port(), 'GET', "/engagement/live?contentId=$c");
    return $b =~ /"live":(\d+),"peak":(\d+)/ ? ($1, $2) : (-1, -1);
}

run_tests();

__DATA__

=== TEST 1: N sessions heartbeating are N live viewers; when they stop, 0 within two intervals
--- http_config
    engagement_zone engagement:1m;
    engagement_heartbeat_interval 2s;
--- request
GET /engagement/live?contentId=t1
--- response_body
{"contentId":"t1","live":0,"peak":0}
--- post_check
    # a 2 s interval: the bounds are 3 s and 4 s after a session's last
    # heartbeat; reads are timed by when their answer came
    my $I = 2;
    my $slack = $ENV{TEST_NGINX_ASAN} ? 1.5 : 0.3;
    my $n = 7;
    my ($ok, $first, $last) = (1, 0, 0);
    my @seen;
    # three rounds, one heartbeat per session each interval
    for my $round (1 .. 3) {
        $first = time;
        for my $i (1 .. $n) {
            my ($st) = main::beat('t1', "s$i");
            $ok &&= $st == 200;
        }
        $last = time;
        # read on fresh connections: both workers answer the same
        push @seen, map { (main::live_of('t1'))[0] } 1 .. 4;
        sleep $I - (time - $first) if time - $first < $I;
    }
    Test::More::ok($ok, 'TEST 1 - every heartbeat is accepted');
    Test::More::is(join(',', @seen), join(',', ($n) x 12),
                   "TEST 1 - live is $n on every read while $n sessions heartbeat");
    # the minute of the last round's heartbeats: the peak is this
    # minute's only if no minute began since they came
    my $minute = int($first / 60);
    # not gone before 1.5 intervals after any session's last heartbeat (a
    # late heartbeat is not a departure): read 1.25 intervals after the
    # round began; the answer must have come before 1.5 intervals
    my ($live, $peak);
    sleep $first + 1.25 * $I - time if time < $first + 1.25 * $I;
    ($live, $peak) = main::live_of('t1');
    my $answered = time - $first;
    SKIP: {
        Test::More::skip(sprintf('the answer came %.2f s after the round began (>= 1.5 intervals)', $answered), 1)
            if $answered >= 1.5 * $I;
        Test::More::is($live, $n, sprintf("TEST 1 - still $n live %.2f s after the round began", $answered));
    }
    # gone within 2 intervals
    my $gone = wait_until(sub { (main::live_of('t1'))[0] == 0 }, 3 * $I);
    my $after = time - $last;
    Test::More::ok($gone && $after <= 2 * $I + $slack,
                   sprintf("TEST 1 - 0 live %.2f s after the last heartbeat (<= 2 intervals + %.1f s)", $after, $slack));
    ($live, $peak) = main::live_of('t1');
    SKIP: {
        Test::More::skip('a minute began after the last heartbeats: the peak restarted', 1)
            if int(time / 60) != $minute;
        Test::More::is($peak, $n, "TEST 1 - this minute's peak is still $n");
    }

=== TEST 2: a session that stops drops out while the one that keeps heartbeating stays
--- request
GET /engagement/live?contentId=t2
--- response_body
{"contentId":"t2","live":0,"peak":0}
--- post_check
    my $t0 = time;
    my @live;
    main::beat('t2', 'stays');
    main::beat('t2', 'stops');
    push @live, (main::live_of('t2'))[0];
    for my $k (1 .. 4) {
        sleep 0.6;
        main::beat('t2', 'stays');
        push @live, (main::live_of('t2'))[0];
    }
    # 2.4 s after "stops" last heartbeated: only "stays" is left
    Test::More::is($live[0], 2, 'TEST 2 - two live at first');
    Test::More::is($live[-1], 1, 'TEST 2 - one live once the other stopped for 2 intervals');

=== TEST 3: a repeated heartbeat within an interval changes nothing; heartbeats of other content do not count here
--- request
GET /engagement/live?contentId=t3
--- response_body
{"contentId":"t3","live":0,"peak":0}
--- post_check
    my @b;
    for (1 .. 5) { push @b, (main::beat('t3', 'same'))[1] }
    main::beat('t3-other', 'x');
    main::beat('t3-other', 'y');
    Test::More::is(scalar(grep { /"live":1,/ } @b), 5, 'TEST 3 - five heartbeats of one session: live 1 each time');
    Test::More::is((main::live_of('t3'))[0], 1, 'TEST 3 - live 1');
    Test::More::is((main::live_of('t3-other'))[0], 2, 'TEST 3 - the other content has its own 2');

=== TEST 4: a full live zone: new content is refused with 503 and Retry-After, known content goes on
--- http_config
    engagement_zone engagement:1m;
    engagement_heartbeat_interval 10s;
    engagement_live_zone 128k;
--- request
GET /engagement/live?contentId=t4
--- response_body
{"contentId":"t4","live":0,"peak":0}
--- no_error_log
[error]
[alert]
--- post_check
    # nothing lapses within the test (10 s interval), and no minute begins
    # in it (a new minute makes idle contents' entries reusable)
    sleep 61 - time % 60 if time % 60 > 40;
    my ($full, $ok, $ra, $body) = (0, 0, '', '');
    main::beat('t4', 'first');
    for my $i (1 .. 800) {
        my ($st, $b, $h) = http_request(nginx_port(), 'POST', '/engagement/heartbeat',
            qq({"contentId":"t4-$i","sessionId":"s$i"}), 'Content-Type' => 'application/json');
        if ($st == 503) { $full++; $ra = $h->{'retry-after'}; $body = $b }
        $ok++ if $st == 200;
    }
    # two buckets per content: the table fills to about 85% or more before
    # the first refusal (one window of 16 refused at 40-60%)
    my ($room) = error_log_text() =~ /room for \d+ sessions, (\d+) contents/;
    Test::More::ok($room && $full > 0 && $ok >= 0.8 * $room,
        "TEST 4 - $ok contents recorded (of room for " . ($room // '?') . ": >= 80%), then $full refused");
    Test::More::is($ra, '1', 'TEST 4 - Retry-After: 1');
    Test::More::is($body, qq({"error":"zone_full","message":"no room in the live zone now; retry later"}\n),
                   'TEST 4 - the 503 says why');
    my ($st, $b) = main::beat('t4', 'first');
    Test::More::is($st, 200, 'TEST 4 - a session already known still heartbeats');
    Test::More::like(error_log_text(), qr/live zone "engagement_live" is full: heartbeats are refused with 503/,
                     'TEST 4 - logged');

=== TEST 5: the status figures count heartbeats by outcome (text and JSON)
--- request eval
[ "POST /engagement/heartbeat\n{\"contentId\":\"t5\",\"sessionId\":\"a\"}",
  "POST /engagement/heartbeat\n{\"contentId\":\"t5\"}",
  "GET /status",
  "GET /status?format=json" ]
--- more_headers
Content-Type: application/json
--- error_code eval
[200, 400, 200, 200]
--- response_body_like eval
[ qr/"live":1,/, qr/"field":"sessionId"/,
  qr/nginx_engagement_live_heartbeats_total 2\n(?s:.*)nginx_engagement_live_heartbeat_outcomes_total\{outcome="accepted"\} 1\nnginx_engagement_live_heartbeat_outcomes_total\{outcome="invalid"\} 1\n/,
  qr/"live":\{"heartbeats":2,"accepted":1,"invalid":1,"limited":0,"notCounted":0,"full":0,"subscribers":0,"streams":0,"pushes":0,"skipped":0,"shared":0,"shareErrors":0\}[,}]/ ]
--- post_check
    SKIP: {
        Test::More::skip('promtool not installed', 1) unless -x '/usr/bin/promtool';
        my (undef, $text) = http_request(nginx_port(), 'GET', '/status');
        my $tmp = File::Temp->new(TMPDIR => 1, SUFFIX => '.prom');
        print $tmp $text;
        close $tmp;
        my $out = `/usr/bin/promtool check metrics < $tmp 2>&1`;
        Test::More::is($?, 0, 'TEST 5 - promtool check metrics passes with the live figures')
            or Test::More::diag($out);
    }

=== TEST 6: where heartbeats are taken, the summary carries live and peak (one and the batch form)
--- more_headers
Content-Type: application/json
--- request eval
[ "POST /engagement/view\n{\"contentId\":\"t6\",\"sessionId\":\"a\"}",
  "POST /engagement/heartbeat\n{\"contentId\":\"t6\",\"sessionId\":\"a\"}",
  "POST /engagement/heartbeat\n{\"contentId\":\"t6\",\"sessionId\":\"b\"}",
  "GET /engagement/summary/t6",
  "GET /engagement/summary?ids=t6,t6-none" ]
--- error_code eval
[202, 200, 200, 200, 200]
--- response_body eval
[ qq({"counted":true,"contentId":"t6","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"counted":true,"contentId":"t6","live":1,"peak":1,"intervalMs":1000}\n),
  qq({"counted":true,"contentId":"t6","live":2,"peak":2,"intervalMs":1000}\n),
  qq({"contentId":"t6","views":1,"engagedViews":0,"replays":0,"live":2,"peak":2}\n),
  qq({"items":[{"contentId":"t6","views":1,"engagedViews":0,"replays":0,"live":2,"peak":2},{"contentId":"t6-none","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}]}\n) ]

=== TEST 7: a reload keeps the live zone (same size): the sessions are still live on the new workers
--- http_config
    engagement_zone engagement:1m;
    engagement_heartbeat_interval 10s;
--- request
GET /engagement/live?contentId=t7
--- response_body
{"contentId":"t7","live":0,"peak":0}
--- post_check
    main::beat('t7', "s$_") for 1 .. 3;
    Test::More::is((main::live_of('t7'))[0], 3, 'TEST 7 - 3 live before');
    my @old = worker_pids();
    kill 'HUP', master_pid();
    Test::More::ok(wait_workers(2, @old), 'TEST 7 - new workers serve, the old ones are gone');
    Test::More::is((main::live_of('t7'))[0], 3, 'TEST 7 - 3 live after the reload');
    my ($st, $b) = main::beat('t7', 's1');
    Test::More::like($b, qr/"live":3,/, 'TEST 7 - a known session heartbeating again is still one of 3');

=== TEST 8: the live zone's name is reserved; a reload onto a zone of another kind named engagement_live is refused, the master lives
--- request
GET /engagement/live?contentId=t8
--- response_body
{"contentId":"t8","live":0,"peak":0}
--- post_check
    # review #1: a counters zone named engagement_live, then a reload to a
    # live zone of the same size. Either the first config is refused with
    # a clear error (the name is reserved) or, if it ran, the reload must
    # not kill the master.
    my $pre = new_prefix('t8-name');
    my $nport = free_port();
    my $conf = write_conf($pre, port => $nport,
        http => 'engagement_zone engagement_live:256k;',
        server => 'location = /engagement/view { engagement view zone=engagement_live; }');
    # under ASan the sanitizer's runtime must be preloaded, as for servers
    local $ENV{LD_PRELOAD} = $ENV{TEST_NGINX_PRELOAD} if $ENV{TEST_NGINX_PRELOAD};
    my $out = `@{[ nginx_bin() ]} -t -p $pre/ -c $conf 2>&1`;
    Test::More::like($out, qr/zone name "engagement_live" is reserved for the module's live zone/,
                     'TEST 8 - nginx -t refuses a counters zone named engagement_live, saying why');
    my $npid = start_nginx($pre, $nport);
    if ($npid) {
        write_conf($pre, port => $nport,
            http => "engagement_zone engagement:1m;\nengagement_live_zone 256k;",
            server => 'location = /engagement/heartbeat { engagement heartbeat; }');
        my @w = worker_pids($npid);
        kill 'HUP', $npid;
        sleep 1;
        my $alive = waitpid($npid, POSIX::WNOHANG()) == 0;
        Test::More::ok($alive, 'TEST 8 - the master survives a reload from that zone to the live zone');
        if ($alive) { stop_nginx($npid) } else { kill 'QUIT', @w }   # orphans
    } else {
        Test::More::pass('TEST 8 - nginx does not start with a counters zone named engagement_live');
    }
    # a zone that bypasses that check (the writer's queue) of the same
    # name and size is handed to the live zone by a reload: refused with
    # an [emerg], the master and the old workers go on
    $pre = new_prefix('t8-reload');
    my $port = free_port();
    my $dead = free_ports(700, 50, 1);
    write_conf($pre, port => $port, workers => 1,
        http => "engagement_zone engagement:1m;\n"
              . "engagement_writer http://127.0.0.1:$dead/?query=INSERT%20INTO%20e%20FORMAT%20JSONEachRow"
              . " zone=engagement_live:256k;",
        server => 'location = /engagement/view { engagement view; }');
    my $pid = start_nginx($pre, $port);
    Test::More::ok($pid, 'TEST 8 - nginx with a writer queue named engagement_live starts');
    SKIP: {
        Test::More::skip('nginx did not start: ' . slurp("$pre/logs/stderr.log"), 5) unless $pid;
        my @old = worker_pids($pid);
        write_conf($pre, port => $port, workers => 1,
            http => "engagement_zone engagement:1m;\nengagement_live_zone 256k;",
            server => 'location = /engagement/heartbeat { engagement heartbeat; }');
        kill 'HUP', $pid;
        my $log = "$pre/logs/error.log";
        my $refused = wait_until { slurp($log) =~ /live zone "engagement_live" was written by another kind of zone/ } 10;
        Test::More::ok($refused, 'TEST 8 - the reload is refused with a clear [emerg]');
        sleep 0.3;
        Test::More::ok(kill(0, $pid) && waitpid($pid, POSIX::WNOHANG()) == 0, 'TEST 8 - the master is alive');
        Test::More::is(join(',', worker_pids($pid)), join(',', @old), 'TEST 8 - the old worker still serves');
        my $text = slurp($log);
        Test::More::unlike($text, qr/exited on signal|runtime error|AddressSanitizer/,
                           'TEST 8 - no crash, no sanitizer report');
        Test::More::is(stop_nginx($pid), 0, 'TEST 8 - nginx stops cleanly');
    }

=== TEST 9: a session that says "ended" is live no longer at once; a repeat, an unknown session or another content's changes nothing
--- http_config
    engagement_zone engagement:1m;
    engagement_heartbeat_interval 10s;
--- request
GET /engagement/live?contentId=t9
--- response_body
{"contentId":"t9","live":0,"peak":0}
--- post_check
    my $end = sub {
        my ($c, $s) = @_;
        return http_request(nginx_port(), 'POST', '/engagement/heartbeat',
            qq({"contentId":"$c","sessionId":"$s","state":"ended","positionMs":5000}),
            'Content-Type' => 'application/json');
    };
    my $m = 'nginx_engagement_live_heartbeat_outcomes_total{outcome="accepted"}';
    my $before = status_metric($m);
    main::beat('t9', "s$_") for 1 .. 3;
    main::beat('t9-other', 'o1');    # a session is on one content: its own id
    Test::More::is((main::live_of('t9'))[0], 3, 'TEST 9 - 3 live');
    my ($st, $b) = $end->('t9', 's2');
    Test::More::is($st, 200, 'TEST 9 - "ended" is accepted');
    Test::More::like($b, qr/"live":2,/, 'TEST 9 - its answer counts the others only: 2');
    Test::More::is((main::live_of('t9'))[0], 2, 'TEST 9 - 2 live at once (the interval is 10 s)');
    ($st, $b) = $end->('t9', 's2');
    Test::More::is((main::live_of('t9'))[0], 2, 'TEST 9 - a repeated "ended" changes nothing');
    $end->('t9', 'never-seen');
    Test::More::is((main::live_of('t9'))[0], 2, 'TEST 9 - "ended" of a session never seen changes nothing');
    $end->('t9-other', 's3');
    Test::More::is((main::live_of('t9'))[0], 2, 'TEST 9 - "ended" naming another content changes nothing here');
    Test::More::is((main::live_of('t9-other'))[0], 1, 'TEST 9 - nor there (s3 never watched it)');
    main::beat('t9', 's2');
    Test::More::is((main::live_of('t9'))[0], 3, 'TEST 9 - the session back to playing is live again');
    Test::More::is(status_metric($m) - $before, 9,
                   'TEST 9 - all 9 heartbeats, the 4 "ended" ones included, are accepted');
