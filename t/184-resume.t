# Guards resume positions and watch history (issue 15): heartbeats with a
# userId leave the user's last position per content in the resume zone,
# one worker of the edge sends them to a real redis-server every second
# (eng:{u:<id>}:resume, eng:{u:<id>}:history, bounded to 200 contents,
# with a TTL); GET /engagement/resume answers the last position, GET
# /engagement/history the contents most recent first, DELETE removes
# both keys and the pending positions; opted-out heartbeats and those
# without a userId store nothing; positions accepted while Redis is down
# reach it once it is back (the latest wins); bad input is a 400 naming
# the field, a wrong method 405, a key of another type an error answered
# or logged, never a crash; the endpoints without engagement_redis are
# refused at nginx -t.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes qw(sleep time);
use File::Temp;

our $rport = free_ports(500, 50, 1);
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
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms;
    engagement_edge_id edge-a;
_EOC_

our $Loc = <<'_EOC_';
    location = /engagement/heartbeat { engagement heartbeat; }
    location = /engagement/resume { engagement resume; }
    location = /engagement/history { engagement history; }
    location = /status { engagement status; }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    $block->set_value("config", $Loc) unless defined $block->config;
    $block->set_value("no_error_log", "[error]\n[alert]\nexited on signal\nAddressSanitizer\nLeakSanitizer\nruntime error")
        unless defined $block->no_error_log;
});

sub beat {
    my ($u, $c, $pos, %o) = @_;
    my $body = qq({"contentId":"$c","sessionId":"s-@{[ $u // 'anon' ]}-$c","positionMs":$pos);
    $body .= qq(,"userId":"$u") if defined $u;
    $body .= qq(,"durationMs":$o{dur}) if defined $o{dur};
    $body .= qq(,"optOut":true) if $o{optout};
    $body .= '}';
    my ($st, $b) = http_request(nginx_port(), 'POST', '/engagement/heartbeat', $body,
        'Content-Type' => 'application/json', %{ $o{headers} // {} });
    return wantarray ? ($st, $b) : $st;
}

sub resume_of {
    my ($u, $c) = @_;
    return http_request(nginx_port(), 'GET', "/engagement/resume?contentId=$c&userId=$u");
}

sub history_of {
    my ($u, $limit) = @_;
    my $q = "/engagement/history?userId=$u" . (defined $limit ? "&limit=$limit" : '');
    return http_request(nginx_port(), 'GET', $q);
}

sub rcli { redis_cli($rport, undef, @_) }

# until this nginx's workers are connected to Redis (a read is not a 503)
# (five answers in a row: each worker connects on its own)
sub ready {
    my $row = 0;
    return wait_until(sub {
        $row = (http_request(nginx_port(), 'GET', '/engagement/history?userId=probe'))[0] == 200 ? $row + 1 : 0;
        $row >= 5 }, 10);
}

run_tests();

__DATA__

=== TEST 1: heartbeats with a userId: resume answers the last position at once and Redis has it within a turn; history most recent first, limit, bounded to 200
--- request
GET /status
--- response_body_like: nginx_engagement_resume_positions_pending 0
--- post_check
    Test::More::ok(main::ready(), 'TEST 1 - the workers reach Redis');
    my ($st, $b) = main::resume_of('u1', 'c1');
    Test::More::is($b, qq({"contentId":"c1","userId":"u1","positionMs":0,"durationMs":null,"updatedAt":null}\n), 'TEST 1 - no position yet: positionMs 0, updatedAt null');
    Test::More::is(main::beat('u1', 'c1', 1000, dur => 60000), 200, 'TEST 1 - a heartbeat with a userId is answered as ever');
    my $t0 = time;
    Test::More::is(main::beat('u1', 'c1', 4000), 200, 'TEST 1 - a later heartbeat without durationMs');
    ($st, $b) = main::resume_of('u1', 'c1');
    Test::More::is($st, 200, 'TEST 1 - resume answers 200');
    Test::More::like($b, qr/^\{"contentId":"c1","userId":"u1","positionMs":4000,"durationMs":60000,"updatedAt":\d{13}\}\n\z/,
        'TEST 1 - resume answers the last position at once (pending in shared memory), the duration kept');
    my $in = main::wait_until(sub { main::rcli('HGET', 'eng:{u:u1}:resume', 'c1') =~ /^4000:60000:\d{13}$/ }, 5);
    my $delay = time - $t0;
    Test::More::ok($in && $delay <= 1.5 * ($ENV{TEST_NGINX_ASAN} ? 3 : 1),
        sprintf('TEST 1 - Redis holds "4000:60000:<ms>" %.2f s after the heartbeat (a turn is 1 s)', $delay));
    Test::More::diag(sprintf('flush delay: %.3f s', $delay));
    Test::More::like(main::rcli('ZSCORE', 'eng:{u:u1}:history', 'c1'), qr/^\d{13}$/, 'TEST 1 - the history scores the content by unix ms');
    my $ttl = main::rcli('PTTL', 'eng:{u:u1}:resume');
    my $ttl2 = main::rcli('PTTL', 'eng:{u:u1}:history');
    Test::More::ok($ttl > 89 * 86400000 && $ttl <= 90 * 86400000 && $ttl2 > 89 * 86400000,
        "TEST 1 - both keys expire in 90 days ($ttl, $ttl2 ms)");
    ($st, $b) = main::resume_of('u1', 'c1');
    Test::More::like($b, qr/"positionMs":4000,"durationMs":60000,/, 'TEST 1 - resume answers the same from Redis');

    # three contents, the most recent first
    main::beat('u1', 'c2', 2000, dur => 90000); sleep 0.01;
    main::beat('u1', 'c3', 3000); sleep 0.01;
    main::beat('u1', 'c1', 5000);
    Test::More::ok(main::wait_until(sub { main::rcli('HGET', 'eng:{u:u1}:resume', 'c1') =~ /^5000:/
        && main::rcli('HEXISTS', 'eng:{u:u1}:resume', 'c3') eq '1' }, 5), 'TEST 1 - the new positions reach Redis');
    ($st, $b) = main::history_of('u1');
    Test::More::is($st, 200, 'TEST 1 - history answers 200');
    Test::More::like($b, qr/^\{"userId":"u1","items":\[\{"contentId":"c1","positionMs":5000,"durationMs":60000,"updatedAt":\d{13}\},\{"contentId":"c3","positionMs":3000,"durationMs":null,"updatedAt":\d{13}\},\{"contentId":"c2","positionMs":2000,"durationMs":90000,"updatedAt":\d{13}\}\]\}\n\z/,
        'TEST 1 - history: c1, c3, c2, most recent first, with their positions');
    ($st, $b) = main::history_of('u1', 2);
    my @ids = $b =~ /"contentId":"([^"]+)"/g;
    Test::More::is("@ids", 'c1 c3', 'TEST 1 - limit=2 answers the 2 most recent');
    ($st, $b) = main::history_of('nobody');
    Test::More::is($b, qq({"userId":"nobody","items":[]}\n), 'TEST 1 - an unknown user has an empty history');

    # bounded: 205 contents leave the 200 newest, positions of the others gone
    my $ok = 1;
    for my $i (1 .. 205) {
        $ok &&= main::beat('u2', "k$i", $i) == 200;
        sleep 0.002;
    }
    Test::More::ok($ok, 'TEST 1 - 205 heartbeats accepted');
    Test::More::ok(main::wait_until(sub { main::rcli('HEXISTS', 'eng:{u:u2}:resume', 'k205') eq '1' }, 5), 'TEST 1 - the last one reaches Redis');
    Test::More::is(main::rcli('ZCARD', 'eng:{u:u2}:history'), 200, 'TEST 1 - the history keeps 200 contents');
    Test::More::is(main::rcli('HLEN', 'eng:{u:u2}:resume'), 200, 'TEST 1 - and 200 positions');
    Test::More::is(main::rcli('HEXISTS', 'eng:{u:u2}:resume', 'k1'), '0', 'TEST 1 - the oldest content fell out with its position');
    ($st, $b) = main::history_of('u2', 100);
    @ids = $b =~ /"contentId":"([^"]+)"/g;
    Test::More::is(scalar(@ids), 100, 'TEST 1 - limit=100 answers 100 items');
    Test::More::is($ids[0], 'k205', 'TEST 1 - the newest first');
    my $s = status_text();
    Test::More::like($s, qr/^nginx_engagement_resume_positions_buffered_total 210$/m, 'TEST 1 - status: 210 positions buffered');
    Test::More::like($s, qr/^nginx_engagement_resume_positions_pending 0$/m, 'TEST 1 - status: none pending');
    my ($fl) = $s =~ /^nginx_engagement_resume_positions_flushed_total (\d+)$/m;
    Test::More::ok($fl >= 209, "TEST 1 - status: flushed $fl (>= 209: two heartbeats of c1 may go as one)");
    Test::More::like($s, qr/^nginx_engagement_resume_positions_dropped_total 0$/m, 'TEST 1 - status: none dropped');
    SKIP: {
        Test::More::skip('promtool not installed', 1) unless -x '/usr/bin/promtool';
        my $tmp = File::Temp->new(TMPDIR => 1, SUFFIX => '.prom');
        print $tmp $s;
        close $tmp;
        my $out = `/usr/bin/promtool check metrics < $tmp 2>&1`;
        Test::More::is($?, 0, 'TEST 1 - promtool check metrics passes with the resume figures') or Test::More::diag($out);
    }
    ($st, $b) = http_request(nginx_port(), 'GET', '/status?format=json');
    Test::More::like($b, qr/,"resume":\{"buffered":210,"flushed":\d+,"dropped":0,"errors":0,"refused":0,"pending":0\}\}\n\z/, 'TEST 1 - the JSON status has the resume object');

=== TEST 2: an opted-out heartbeat (optOut, Sec-GPC) and one without a userId store nothing
--- request
POST /engagement/heartbeat
{"contentId":"c1","sessionId":"s1","positionMs":7000,"userId":"u3","optOut":true}
--- more_headers
Content-Type: application/json
--- response_body_like: "counted":true
--- post_check
    Test::More::is(main::beat('u3', 'c2', 7000, headers => { 'Sec-GPC' => '1' }), 200, 'TEST 2 - a Sec-GPC heartbeat is answered');
    Test::More::is(main::beat(undef, 'c3', 7000), 200, 'TEST 2 - a heartbeat without userId is answered');
    sleep 2;
    Test::More::is(main::rcli('EXISTS', 'eng:{u:u3}:resume', 'eng:{u:u3}:history'), '0', 'TEST 2 - nothing of u3 in Redis');
    Test::More::is(status_metric('nginx_engagement_resume_positions_buffered_total'), 0, 'TEST 2 - nothing buffered');
    my ($st, $b) = main::resume_of('u3', 'c1');
    Test::More::like($b, qr/"positionMs":0,"durationMs":null,"updatedAt":null/, 'TEST 2 - resume of u3 on c1 is none');

=== TEST 3: DELETE removes both keys and a pending position, which is not resurrected
--- request
GET /status
--- response_body_like: nginx_engagement_resume_positions_pending 0
--- post_check
    Test::More::ok(main::ready(), 'TEST 3 - the workers reach Redis');
    my ($st, $b) = main::history_of('u4');
    Test::More::is($b, qq({"userId":"u4","items":[]}\n), 'TEST 3 - u4 has no history yet');
    main::beat('u4', 'c1', 1000);
    main::beat('u4', 'c2', 2000);
    Test::More::ok(main::wait_until(sub { main::rcli('HLEN', 'eng:{u:u4}:resume') eq '2' }, 5), 'TEST 3 - two positions in Redis');
    # one more, deleted before any turn can send it (a turn is 1 s)
    main::beat('u4', 'c3', 3000);
    main::beat('u5', 'c3', 3000);
    ($st, $b) = http_request(nginx_port(), 'DELETE', '/engagement/history?userId=u4');
    Test::More::is($st, 200, 'TEST 3 - DELETE answers 200');
    Test::More::like($b, qr/^\{"userId":"u4","deleted":true,"keysDeleted":2,"pendingDropped":[01]\}\n\z/, 'TEST 3 - DELETE says what it deleted');
    Test::More::is(main::rcli('EXISTS', 'eng:{u:u4}:resume', 'eng:{u:u4}:history'), '0', 'TEST 3 - both keys are gone');
    sleep 2.5;
    Test::More::is(main::rcli('EXISTS', 'eng:{u:u4}:resume', 'eng:{u:u4}:history'), '0', 'TEST 3 - still gone two turns later: the pending c3 was not sent');
    ($st, $b) = main::resume_of('u4', 'c3');
    Test::More::like($b, qr/"positionMs":0,"durationMs":null,"updatedAt":null/, 'TEST 3 - resume of the deleted pending position is none');
    Test::More::like(main::rcli('HGET', 'eng:{u:u5}:resume', 'c3'), qr/^3000::\d+$/, "TEST 3 - another user's pending position was sent");
    Test::More::like(main::rcli('GET', 'eng:{u:u4}:cleared'), qr/^\d{13}$/, 'TEST 3 - the deletion mark is kept');
    # after the DELETE, a new heartbeat is a new history
    main::beat('u4', 'c9', 9000);
    Test::More::ok(main::wait_until(sub { main::rcli('HGET', 'eng:{u:u4}:resume', 'c9') =~ /^9000::/ }, 5), 'TEST 3 - a heartbeat after the DELETE starts a new history');
    ($st, $b) = http_request(nginx_port(), 'DELETE', '/engagement/history?userId=u4');
    Test::More::like($b, qr/"keysDeleted":2,"pendingDropped":0/, 'TEST 3 - a second DELETE');
    ($st, $b) = http_request(nginx_port(), 'DELETE', '/engagement/history?userId=u4');
    Test::More::like($b, qr/"keysDeleted":0,"pendingDropped":0/, 'TEST 3 - DELETE is idempotent');

=== TEST 4: Redis killed then restarted: positions accepted while it was down reach it after recovery, the latest wins
--- request
GET /status
--- response_body_like: nginx_engagement_resume_positions_pending 0
--- no_error_log
[alert]
exited on signal
AddressSanitizer
--- post_check
    Test::More::ok(main::ready(), 'TEST 4 - the workers reach Redis');
    my $pid = redis_pid($rport);
    kill 'KILL', $pid;
    waitpid($pid, 0);
    Engagement::Test::_stopped($pid);
    my $ok = 1;
    $ok &&= main::beat('u6', 'c1', 1000) == 200;
    sleep 0.01;
    $ok &&= main::beat('u6', 'c2', 2000) == 200;
    sleep 0.01;
    $ok &&= main::beat('u6', 'c1', 3000, dur => 50000) == 200;
    Test::More::ok($ok, 'TEST 4 - heartbeats are answered 200 while Redis is down');
    sleep 1.5;
    my ($st, $b, $h) = main::resume_of('u6', 'c1');
    Test::More::is($st, 503, 'TEST 4 - resume answers 503 while Redis is down');
    Test::More::is($h->{'retry-after'}, '1', 'TEST 4 - with Retry-After');
    Test::More::like($b, qr/"error":"backend_unavailable"/, 'TEST 4 - a JSON error');
    ($st) = main::history_of('u6');
    Test::More::is($st, 503, 'TEST 4 - history answers 503 while Redis is down');
    Test::More::is(status_metric('nginx_engagement_resume_positions_pending'), 2, 'TEST 4 - two positions pending (c1 latest, c2)');
    my $t0 = time;
    start_redis($rport, keep => 1);
    my $in = main::wait_until(sub { main::rcli('HGET', 'eng:{u:u6}:resume', 'c1') =~ /^3000:50000:/
        && main::rcli('HGET', 'eng:{u:u6}:resume', 'c2') =~ /^2000::/ }, 10);
    Test::More::ok($in, sprintf('TEST 4 - after Redis is back both positions are in Redis, c1 the latest (3000), %.1f s after the restart', time - $t0));
    Test::More::diag(sprintf('recovery delay: %.2f s', time - $t0));
    Test::More::ok(main::wait_until(sub { (status_metric('nginx_engagement_resume_positions_pending') // -1) == 0 }, 5), 'TEST 4 - nothing left pending');
    # every worker reconnects on its own (backoff): ask until one answers
    Test::More::ok(main::wait_until(sub { ($st, $b) = main::history_of('u6'); $st == 200 }, 10), 'TEST 4 - history answers once Redis is back');
    my @ids = $b =~ /"contentId":"([^"]+)"/g;
    Test::More::is("@ids", 'c1 c2', 'TEST 4 - history: c1 then c2');

=== TEST 5: bad input: ids, limit, durationMs, userId in a heartbeat -> 400 naming the field; a wrong method -> 405
--- request eval
[
"GET /engagement/resume?userId=u1",
"GET /engagement/resume?contentId=c1",
"GET /engagement/resume?contentId=c%201&userId=u1",
"GET /engagement/resume?contentId=c1&userId=" . ("u" x 129),
"GET /engagement/history",
"GET /engagement/history?userId=u1&limit=0",
"GET /engagement/history?userId=u1&limit=101",
"GET /engagement/history?userId=u1&limit=abc",
"GET /engagement/history?userId=u1&limit=",
"DELETE /engagement/history?userId=u%2F1",
"POST /engagement/heartbeat\n" . '{"contentId":"c1","sessionId":"s1","positionMs":1,"userId":"u1","durationMs":"x"}',
"POST /engagement/heartbeat\n" . '{"contentId":"c1","sessionId":"s1","positionMs":1,"userId":"u1","durationMs":-1}',
"POST /engagement/heartbeat\n" . '{"contentId":"c1","sessionId":"s1","positionMs":1,"userId":"u1","durationMs":1.5}',
"POST /engagement/heartbeat\n" . '{"contentId":"c1","sessionId":"s1","positionMs":1,"userId":"u1","durationMs":9007199254740992}',
"POST /engagement/heartbeat\n" . '{"contentId":"c1","sessionId":"s1","positionMs":1,"userId":"u 1"}',
"POST /engagement/heartbeat\n" . '{"contentId":"c1","sessionId":"s1","positionMs":1,"userId":7}',
"POST /engagement/resume?contentId=c1&userId=u1",
"PUT /engagement/history?userId=u1",
]
--- more_headers
Content-Type: application/json
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 405, 405]
--- response_body_like eval
[
qr/"field":"contentId"/,
qr/"field":"userId"/,
qr/"field":"contentId"/,
qr/"field":"userId"/,
qr/"field":"userId"/,
qr/"field":"limit","message":"must be an integer from 1 to 100"/,
qr/"field":"limit"/,
qr/"field":"limit"/,
qr/"field":"limit"/,
qr/"field":"userId"/,
qr/"field":"durationMs","message":"must be an integer number of milliseconds"/,
qr/"field":"durationMs","message":"must be between 0 and 9007199254740991"/,
qr/"field":"durationMs"/,
qr/"field":"durationMs"/,
qr/"field":"userId"/,
qr/"field":"userId"/,
qr/"error":"method_not_allowed"/,
qr/"error":"method_not_allowed"/,
]
--- post_check
    Test::More::is(status_metric('nginx_engagement_resume_positions_buffered_total'), 0, 'TEST 5 - nothing buffered from refused heartbeats');
    my ($st, $b, $h) = http_request(nginx_port(), 'POST', '/engagement/resume?contentId=c1&userId=u1');
    Test::More::is($h->{allow}, 'GET, HEAD', 'TEST 5 - resume: Allow: GET, HEAD');
    ($st, $b, $h) = http_request(nginx_port(), 'PUT', '/engagement/history?userId=u1');
    Test::More::is($h->{allow}, 'GET, HEAD, DELETE', 'TEST 5 - history: Allow: GET, HEAD, DELETE');

=== TEST 6: keys of another type in Redis: resume and history answer 503 and log, the flush drops the position and logs once, never a crash
--- request
GET /status
--- response_body_like: nginx_engagement_resume_positions_pending 0
--- no_error_log
[alert]
exited on signal
AddressSanitizer
--- post_check
    Test::More::ok(main::ready(), 'TEST 6 - the workers reach Redis');
    main::rcli('SET', 'eng:{u:u8}:resume', 'a string');
    main::rcli('SET', 'eng:{u:u8}:history', 'a string');
    my ($st, $b) = main::resume_of('u8', 'c1');
    Test::More::is($st, 503, 'TEST 6 - resume over a key of another type: 503');
    ($st, $b) = main::history_of('u8');
    Test::More::is($st, 503, 'TEST 6 - history over a key of another type: 503');
    Test::More::is(main::beat('u8', 'c1', 1000), 200, 'TEST 6 - the heartbeat is answered as ever');
    Test::More::ok(main::wait_until(sub { (status_metric('nginx_engagement_resume_positions_refused_total') // 0) == 1 }, 5),
        'TEST 6 - the flush counts the refused position');
    Test::More::is(status_metric('nginx_engagement_resume_positions_pending'), 0, 'TEST 6 - and does not send it again');
    my $log = error_log_text();
    Test::More::like($log, qr/resume read of user "u8" failed: WRONGTYPE/, 'TEST 6 - the resume read is logged');
    Test::More::like($log, qr/history read of user "u8" failed: WRONGTYPE/, 'TEST 6 - the history read is logged');
    Test::More::like($log, qr/resume position of user "u8" on "c1" dropped: Redis said "WRONGTYPE/, 'TEST 6 - the dropped position is logged');
    # a malformed value is answered as none, not a crash
    main::rcli('HSET', 'eng:{u:u9}:resume', 'c1', 'garbage');
    main::rcli('ZADD', 'eng:{u:u9}:history', '1', 'c1', '2', 'bad id!');
    ($st, $b) = main::resume_of('u9', 'c1');
    Test::More::like($b, qr/"positionMs":0,"durationMs":null,"updatedAt":null/, 'TEST 6 - a malformed value is answered as none');
    ($st, $b) = main::history_of('u9');
    Test::More::is($b, qq({"userId":"u9","items":[{"contentId":"c1","positionMs":0,"durationMs":null,"updatedAt":null}]}\n), 'TEST 6 - history skips what the module did not write');
    main::rcli('DEL', 'eng:{u:u8}:resume', 'eng:{u:u8}:history');

=== TEST 7: engagement_live_redis off: positions still reach Redis
--- http_config
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms;
    engagement_live_redis off;
    engagement_resume_zone 1m;
--- request
POST /engagement/heartbeat
{"contentId":"c77","sessionId":"s1","positionMs":4242,"userId":"u10"}
--- more_headers
Content-Type: application/json
--- response_body_like: "counted":true
--- post_check
    Test::More::ok(main::wait_until(sub { main::rcli('HGET', 'eng:{u:u10}:resume', 'c77') =~ /^4242::/ }, 5), 'TEST 7 - the position reaches Redis with live sharing off');
    Test::More::is(main::rcli('EXISTS', 'eng:{c:c77}:live'), '0', 'TEST 7 - nothing live shared');

=== TEST 8: engagement resume without engagement_redis is refused at nginx -t
--- http_config
    engagement_zone engagement:1m;
--- config
    location = /engagement/resume { engagement resume; }
--- must_die
--- error_log
"engagement resume" and "engagement history" need "engagement_redis": positions and histories are kept in Redis

=== TEST 9: engagement history without engagement_redis is refused at nginx -t
--- http_config
    engagement_zone engagement:1m;
--- config
    location = /engagement/history { engagement history; }
--- must_die
--- error_log
"engagement resume" and "engagement history" need "engagement_redis"

=== TEST 10: engagement_resume_zone: a size too small is refused at nginx -t
--- http_config
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    engagement_resume_zone 8k;
--- must_die
--- error_log
invalid size "8k" of "engagement_resume_zone": at least 128k, e.g. 4m

=== TEST 11: the resume zone's name is reserved
--- http_config
    engagement_zone engagement_resume:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /v { engagement view zone=engagement_resume; }
    location = /engagement/heartbeat { engagement heartbeat; }
--- must_die
--- error_log
zone name "engagement_resume" is reserved for the module's resume zone

=== TEST 12: heartbeats without engagement_redis: no resume zone, heartbeats with a userId answered as ever
--- http_config
    engagement_zone engagement:1m;
    engagement_resume_zone 1m;
--- config
    location = /engagement/heartbeat { engagement heartbeat; }
    location = /status { engagement status; }
--- request
POST /engagement/heartbeat
{"contentId":"c1","sessionId":"s1","positionMs":1,"userId":"u1","durationMs":10}
--- more_headers
Content-Type: application/json
--- response_body_like: "counted":true
--- post_check
    Test::More::unlike(status_text(), qr/resume/, 'TEST 12 - no resume figures without Redis');
    Test::More::like(error_log_text(), qr/engagement_resume_zone is ignored/, 'TEST 12 - the unused zone size is said');

=== TEST 13: the latest stamp wins between a pending position and Redis's, and in the script
--- request
GET /status
--- response_body_like: nginx_engagement_resume_positions_pending 0
--- post_check
    Test::More::ok(main::ready(), 'TEST 13 - the workers reach Redis');
    my $now = int(time * 1000);
    # Redis holds an older position: the heartbeat's wins, at once and in Redis
    main::rcli('HSET', 'eng:{u:u11}:resume', 'c1', '100:200:' . ($now - 100000));
    main::beat('u11', 'c1', 7000);
    my ($st, $b) = main::resume_of('u11', 'c1');
    Test::More::like($b, qr/"positionMs":7000,"durationMs":200,/, 'TEST 13 - a newer heartbeat wins over an older position in Redis (the duration known in Redis kept once sent)')
        or Test::More::diag($b);
    Test::More::ok(main::wait_until(sub { main::rcli('HGET', 'eng:{u:u11}:resume', 'c1') =~ /^7000:200:/ }, 5), 'TEST 13 - Redis takes the newer position, keeping the known duration');
    # Redis holds a position stamped later (another edge): it stays
    my $later = $now + 100000;
    main::rcli('HSET', 'eng:{u:u11}:resume', 'c2', "9999:300:$later");
    main::beat('u11', 'c2', 5000);
    ($st, $b) = main::resume_of('u11', 'c2');
    Test::More::like($b, qr/"positionMs":9999,"durationMs":300,"updatedAt":$later/, 'TEST 13 - a position stamped later in Redis wins over the pending one');
    Test::More::ok(main::wait_until(sub { (status_metric('nginx_engagement_resume_positions_pending') // -1) == 0 }, 5), 'TEST 13 - the older position is confirmed (not applied)');
    Test::More::is(main::rcli('HGET', 'eng:{u:u11}:resume', 'c2'), "9999:300:$later", 'TEST 13 - Redis keeps the later position');

=== TEST 14: a full resume zone drops positions, counted and logged; heartbeats are answered as ever
--- http_config eval
"    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:" . Engagement::Test::free_ports(560, 30, 1) . " timeout=200ms connect_timeout=200ms;
    engagement_resume_zone 128k;"
--- request
GET /status
--- response_body_like: nginx_engagement_resume_positions_pending 0
--- no_error_log
[alert]
exited on signal
AddressSanitizer
--- post_check
    # no Redis answers: every position stays pending until the zone is full
    my ($room) = error_log_text() =~ /resume zone "engagement_resume": room for (\d+) positions/;
    Test::More::ok($room && $room > 100 && $room < 500, "TEST 14 - a 128k zone has room for $room positions");
    my $sent = 2 * ($room // 300);
    my $ok = 1;
    for my $i (1 .. $sent) {
        $ok &&= main::beat('u12', "f$i", $i) == 200;
    }
    Test::More::ok($ok, "TEST 14 - $sent heartbeats with distinct contents are all answered 200");
    my $s = status_text();
    my ($buf) = $s =~ /^nginx_engagement_resume_positions_buffered_total (\d+)$/m;
    my ($drop) = $s =~ /^nginx_engagement_resume_positions_dropped_total (\d+)$/m;
    my ($pend) = $s =~ /^nginx_engagement_resume_positions_pending (\d+)$/m;
    Test::More::ok($drop > 0, "TEST 14 - positions dropped: $drop of $sent");
    Test::More::is($buf + $drop, $sent, "TEST 14 - buffered ($buf) + dropped ($drop) = sent");
    Test::More::is($pend, $buf, "TEST 14 - every buffered position is pending ($pend)");
    Test::More::ok($pend <= $room && $pend >= $room / 3, "TEST 14 - the zone filled to $pend of $room entries");
    Test::More::like(error_log_text(), qr/resume zone "engagement_resume" is full: resume positions are dropped/, 'TEST 14 - the full zone is logged');
    # a known pair still updates in place when the zone is full
    Test::More::is(main::beat('u12', 'f1', 99999), 200, 'TEST 14 - a heartbeat of a kept pair');
    Test::More::is(status_metric('nginx_engagement_resume_positions_dropped_total'), $drop, 'TEST 14 - a kept pair is not dropped');

=== TEST 15: a reload (HUP) keeps the pending positions: the new workers send them once Redis is back
--- request
GET /status
--- response_body_like: nginx_engagement_resume_positions_pending 0
--- no_error_log
[alert]
exited on signal
AddressSanitizer
--- post_check
    Test::More::ok(main::ready(), 'TEST 15 - the workers reach Redis');
    my $pid = redis_pid($rport);
    kill 'KILL', $pid;
    waitpid($pid, 0);
    Engagement::Test::_stopped($pid);
    Test::More::is(main::beat('u13', 'c1', 1234, dur => 5000), 200, 'TEST 15 - a heartbeat while Redis is down');
    Test::More::is(status_metric('nginx_engagement_resume_positions_pending'), 1, 'TEST 15 - one position pending');
    Test::More::ok(reload_nginx(2), 'TEST 15 - reloaded: two new workers serve, the old ones are gone');
    Test::More::is(status_metric('nginx_engagement_resume_positions_pending'), 1, 'TEST 15 - still pending after the reload (the zone is kept)');
    start_redis($rport, keep => 1);
    Test::More::ok(main::wait_until(sub { main::rcli('HGET', 'eng:{u:u13}:resume', 'c1') =~ /^1234:5000:\d{13}$/ }, 10),
        'TEST 15 - the new workers send it once Redis is back');
    Test::More::ok(main::wait_until(sub { (status_metric('nginx_engagement_resume_positions_pending') // -1) == 0 }, 5), 'TEST 15 - nothing left pending');
