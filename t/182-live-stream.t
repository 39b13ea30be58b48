# Guards the live stream (issue 15): GET /engagement/live/{contentId} as
# Server-Sent Events. A subscriber gets the counts at once, then within
# 1.5 s of a heartbeat or a view (every subscriber, on both workers);
# nothing is sent while nothing changes; a client that goes is dropped;
# with Redis, likes and reactions and flushed totals are pushed too;
# a client that does not read falls behind without piling events up, and
# gets the latest counts once it reads; a reload (HUP) ends every stream cleanly (the last chunk, then the
# connection closed) without holding the old workers, and a new stream on
# the new workers carries on with the same counts (shared memory); with a
# 10 s push the ping still comes at 15 s and a reload ends streams within
# about a second; killed workers' streams leave the subscribers gauge; a
# stream request with a body is refused with 400.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF pack_sockaddr_in inet_aton);

# for TEST 6: counts with Redis (likes and reactions, flushed totals)
our $rport = free_ports(600, 50, 1);
start_redis($rport);
$ENV{TEST_NGINX_REDIS_PORT} = $rport;
# for TEST 7: a server with a small send buffer
$ENV{TEST_NGINX_SLOW_PORT} = free_ports(700, 50, 1);

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
master_on();    # reloads need a master
workers(2);
add_response_body_check(post_check_hook());

our $HttpConfig = <<'_EOC_';
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
    engagement_heartbeat_interval 10s;
_EOC_

our $Loc = <<'_EOC_';
    location = /engagement/heartbeat { engagement heartbeat; }
    location = /engagement/view { engagement view; }
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

# a stream: its socket and what it has read so far
sub sse_open {
    my ($id) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . nginx_port(), Timeout => 5)
        or die "connect: $!";
    print $s "GET /engagement/live/$id HTTP/1.1\r\nHost: localhost\r\n\r\n";
    return { sock => $s, buf => '', events => [], eof => 0 };
}

# reads for up to $secs; returns when $until (a sub of the stream) holds
sub sse_read {
    my ($st, $secs, $until) = @_;
    my $sel = IO::Select->new($st->{sock});
    my $deadline = time + $secs;
    while (!$st->{eof}) {
        return 1 if $until && $until->($st);
        my $left = $deadline - time;
        last if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread($st->{sock}, my $chunk, 65536);
        if (!$n) { $st->{eof} = 1; last }
        $st->{buf} .= $chunk;
        push @{$st->{events}}, $1 while $st->{buf} =~ s/^.*?data: (\{[^\n]*\})\n\n//s;
    }
    return $until ? $until->($st) : 0;
}

sub last_event { my ($st) = @_; return $st->{events}[-1] // '' }

sub post {
    my ($uri, $json) = @_;
    return (http_request(nginx_port(), 'POST', $uri, $json,
                         'Content-Type' => 'application/json'))[0];
}

run_tests();

__DATA__

=== TEST 1: a subscriber gets the headers, a retry time and the counts at once
--- request
GET /engagement/live?contentId=x1
--- response_body
{"contentId":"x1","live":0,"peak":0}
--- post_check
    my $st = main::sse_open('x1');
    my $got = main::sse_read($st, 2, sub { @{$_[0]{events}} >= 1 });
    Test::More::ok($got, 'TEST 1 - the first event came');
    Test::More::is(main::last_event($st), '{"contentId":"x1","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}',
                   'TEST 1 - the counts now');
    close $st->{sock};
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . nginx_port()) or die;
    print $s "GET /engagement/live/x1 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    my $raw = '';
    my $sel = IO::Select->new($s);
    my $t0 = time;
    while (time - $t0 < 2 && $raw !~ /data: /) {
        last unless $sel->can_read(0.5);
        sysread($s, my $c, 4096) or last;
        $raw .= $c;
    }
    close $s;
    Test::More::like($raw, qr{^HTTP/1\.1 200 OK\r\n}, 'TEST 1 - 200');
    Test::More::like($raw, qr{\r\nContent-Type: text/event-stream\r\n}, 'TEST 1 - text/event-stream');
    Test::More::like($raw, qr{\r\nCache-Control: no-store\r\n}, 'TEST 1 - no-store');
    Test::More::like($raw, qr{\r\nX-Accel-Buffering: no\r\n}, 'TEST 1 - no proxy buffering');
    Test::More::like($raw, qr{\r\nTransfer-Encoding: chunked\r\n}, 'TEST 1 - chunked');
    Test::More::like($raw, qr{\r\n\r\n[0-9a-f]+\r\nretry: 1000\n\ndata: \{}, 'TEST 1 - retry: 1000, then the counts');

=== TEST 2: every subscriber (both workers) gets a heartbeat's and a view's counts within 1.5 s
--- request
GET /engagement/live?contentId=x2
--- response_body
{"contentId":"x2","live":0,"peak":0}
--- post_check
    my @subs = map { main::sse_open('x2') } 1 .. 12;
    main::sse_read($_, 2, sub { @{$_[0]{events}} >= 1 }) for @subs;
    my $t0 = time;
    Test::More::is(main::post('/engagement/heartbeat', '{"contentId":"x2","sessionId":"s1"}'), 200,
                   'TEST 2 - heartbeat');
    my $all = 1;
    for my $st (@subs) {
        $all &&= main::sse_read($st, 3, sub { main::last_event($_[0]) =~ /"live":1,/ });
    }
    my $lat = time - $t0;
    Test::More::ok($all && $lat <= 1.5, sprintf('TEST 2 - 12 subscribers saw live 1 within %.2f s (<= 1.5)', $lat));
    $t0 = time;
    Test::More::is(main::post('/engagement/view', '{"contentId":"x2","sessionId":"s1"}'), 202, 'TEST 2 - view');
    $all = 1;
    for my $st (@subs) {
        $all &&= main::sse_read($st, 3, sub { main::last_event($_[0]) =~ /"views":1,/ });
    }
    $lat = time - $t0;
    Test::More::ok($all && $lat <= 1.5, sprintf('TEST 2 - 12 subscribers saw views 1 within %.2f s (<= 1.5)', $lat));
    Test::More::is(main::last_event($subs[0]),
                   '{"contentId":"x2","views":1,"engagedViews":0,"replays":0,"live":1,"peak":1}',
                   'TEST 2 - the whole event');
    my $status = (http_request(nginx_port(), 'GET', '/status'))[1];
    Test::More::like($status, qr/^nginx_engagement_live_subscribers 12$/m, 'TEST 2 - 12 subscribers in /status');
    close $_->{sock} for @subs;
    my $gone = wait_until(sub {
        (http_request(nginx_port(), 'GET', '/status'))[1] =~ /^nginx_engagement_live_subscribers 0$/m
    }, 5);
    Test::More::ok($gone, 'TEST 2 - the gauge is back to 0 once the clients closed');

=== TEST 3: nothing changes for this content: no event is sent to it, and none anywhere (pushes unchanged; subscribers are still looked at when the version changes)
--- request
GET /engagement/live?contentId=x3
--- response_body
{"contentId":"x3","live":0,"peak":0}
--- post_check
    my $st = main::sse_open('x3');
    main::sse_read($st, 2, sub { @{$_[0]{events}} >= 1 });
    my $before = (http_request(nginx_port(), 'GET', '/status'))[1] =~ /^nginx_engagement_live_pushes_total (\d+)$/m ? $1 : -1;
    main::post('/engagement/heartbeat', '{"contentId":"x3-other","sessionId":"s1"}');
    main::sse_read($st, 2.5);
    Test::More::is(scalar @{$st->{events}}, 1, 'TEST 3 - no event in 2.5 s but the first');
    my $after = (http_request(nginx_port(), 'GET', '/status'))[1] =~ /^nginx_engagement_live_pushes_total (\d+)$/m ? $1 : -1;
    Test::More::is($after, $before, "TEST 3 - no event sent anywhere ($after pushes)");
    close $st->{sock};

=== TEST 4: a reload ends the streams cleanly and promptly; a new stream has the same counts
--- request
GET /engagement/live?contentId=x4
--- response_body
{"contentId":"x4","live":0,"peak":0}
--- post_check
    main::post('/engagement/heartbeat', '{"contentId":"x4","sessionId":"s1"}');
    main::post('/engagement/view', '{"contentId":"x4","sessionId":"s1"}');
    my @subs = map { main::sse_open('x4') } 1 .. 4;
    main::sse_read($_, 2, sub { @{$_[0]{events}} >= 1 }) for @subs;
    my @old = worker_pids();
    my $t0 = time;
    kill 'HUP', master_pid();
    my $clean = 1;
    for my $st (@subs) {
        main::sse_read($st, 10);
        $clean &&= $st->{eof} && $st->{buf} =~ /\r\n0\r\n\r\n$/;
    }
    my $ended = time - $t0;
    Test::More::ok($clean, 'TEST 4 - every stream ended with the last chunk, then EOF');
    Test::More::ok($ended < 3, sprintf('TEST 4 - within %.2f s of the HUP (< 3)', $ended));
    Test::More::ok(wait_workers(2, @old), 'TEST 4 - the old workers are gone, two new ones serve');
    my $log = '';
    my $exited = wait_until(sub {
        $log = error_log_text();
        return !grep { $log !~ /worker process $_ exited with code 0/ } @old;
    });
    Test::More::ok($exited, "TEST 4 - the old workers (@old) exited with code 0");
    my $st = main::sse_open('x4');
    main::sse_read($st, 2, sub { @{$_[0]{events}} >= 1 });
    Test::More::is(main::last_event($st),
                   '{"contentId":"x4","views":1,"engagedViews":0,"replays":0,"live":1,"peak":1}',
                   'TEST 4 - a new stream after the reload: the same counts');
    close $st->{sock};

=== TEST 5: a stream of an invalid id: 400; POST: 405
--- request eval
[ "GET /engagement/live/a%20b", "POST /engagement/live/x5" ]
--- error_code eval
[400, 405]
--- response_body eval
[ qq({"error":"invalid_field","field":"contentId","message":"must be 1-128 bytes of [A-Za-z0-9._:-]"}\n),
  qq({"error":"method_not_allowed","message":"live counts are read with GET"}\n) ]

=== TEST 6: with Redis: a like, then a view (once flushed), reach the stream within 1.5 s each
--- http_config
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms;
    engagement_flush_interval 100ms;
--- config
    location = /engagement/view { engagement view; }
    location = /engagement/like { engagement like; }
    location /engagement/live { engagement live; }
    location = /status { engagement status; }
--- request
GET /engagement/live?contentId=x6
--- response_body
{"contentId":"x6","live":0,"peak":0}
--- post_check
    # both workers connected to Redis first (a like is refused until then)
    Test::More::ok(wait_until(sub {
        (http_request(nginx_port(), 'GET', '/status'))[1] =~ /^nginx_engagement_redis_ready_workers\{[^}]*\} 2$/m
    }, 10), 'TEST 6 - both workers have Redis');
    my $st = main::sse_open('x6');
    main::sse_read($st, 2, sub { @{$_[0]{events}} >= 1 });
    Test::More::is(main::last_event($st), '{"contentId":"x6","live":0,"peak":0}',
                   'TEST 6 - content Redis has not answered for: no totals guessed');
    my $t0 = time;
    Test::More::is(main::post('/engagement/like', '{"contentId":"x6","userId":"u1","reaction":"love"}'), 200,
                   'TEST 6 - like');
    my $got = main::sse_read($st, 3, sub { main::last_event($_[0]) =~ /"love":1/ });
    my $lat = time - $t0;
    Test::More::ok($got && $lat <= 1.5, sprintf('TEST 6 - the reaction reached the stream in %.2f s', $lat))
        or Test::More::diag(join "\n", @{$st->{events}});
    $t0 = time;
    Test::More::is(main::post('/engagement/view', '{"contentId":"x6","sessionId":"s1"}'), 202, 'TEST 6 - view');
    $got = main::sse_read($st, 3, sub { main::last_event($_[0]) =~ /"views":1,/ });
    $lat = time - $t0;
    Test::More::ok($got && $lat <= 1.5, sprintf('TEST 6 - the view reached the stream in %.2f s', $lat))
        or Test::More::diag(join "\n", @{$st->{events}});
    Test::More::like(main::last_event($st),
        qr/^\{"contentId":"x6","views":1,"engagedViews":0,"replays":0,"likes":0,"reactions":\{"like":0,"love":1,"laugh":0,"wow":0,"sad":0,"angry":0\},"live":0,"peak":0\}$/,
        'TEST 6 - the whole event');
    close $st->{sock};

=== TEST 7: a client that does not read: events wait (skipped), then it gets the latest counts
--- http_config
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
    engagement_live_push 100ms;
    server {
        listen 127.0.0.1:$TEST_NGINX_SLOW_PORT sndbuf=4k;
        location /engagement/live { engagement live; }
    }
--- config
    location = /engagement/view { engagement view; }
    location /engagement/live { engagement live; }
    location = /status { engagement status; }
--- request
GET /engagement/live?contentId=x7
--- response_body
{"contentId":"x7","live":0,"peak":0}
--- post_check
    # a long id makes events large; a small receive buffer, set before
    # the connection is made, fills in a few seconds
    my $id = 'x7' . ('y' x 120);
    socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, pack('i', 1024)) or die;
    connect($s, pack_sockaddr_in($ENV{TEST_NGINX_SLOW_PORT}, inet_aton('127.0.0.1')))
        or die "connect: $!";
    syswrite($s, "GET /engagement/live/$id HTTP/1.1\r\nHost: x\r\n\r\n");
    my $k = 0;
    my $t0 = time;
    while (time - $t0 < 6) {
        $k++;
        main::post('/engagement/view', qq({"contentId":"$id","sessionId":"s$k"}));
        sleep 0.05;
    }
    my $status = (http_request(nginx_port(), 'GET', '/status'))[1];
    my ($skipped) = $status =~ /^nginx_engagement_live_skipped_total (\d+)$/m;
    my ($subs) = $status =~ /^nginx_engagement_live_subscribers (\d+)$/m;
    Test::More::ok($skipped > 0, "TEST 7 - events waited for the client ($skipped skipped)");
    Test::More::is($subs, 1, 'TEST 7 - the slow subscriber is still there');
    my $st = { sock => $s, buf => '', events => [], eof => 0 };
    my $got = main::sse_read($st, 5, sub { main::last_event($_[0]) =~ /"views":$k,/ });
    Test::More::ok($got, "TEST 7 - once it reads, the latest counts (views $k) come")
        or Test::More::diag(main::last_event($st));
    Test::More::ok(@{$st->{events}} < $k, sprintf('TEST 7 - %d events for %d views: none piled up per change',
                                                  scalar @{$st->{events}}, $k));
    close $s;

=== TEST 8: an idle stream gets a comment line every 15 s (no event), so proxies keep it open
--- request
GET /engagement/live?contentId=x8
--- response_body
{"contentId":"x8","live":0,"peak":0}
--- post_check
    my $st = main::sse_open('x8');
    main::sse_read($st, 2, sub { @{$_[0]{events}} >= 1 });
    my $t0 = time;
    my $got = main::sse_read($st, 18, sub { $_[0]{buf} =~ /: ping\n\n/ });
    my $after = time - $t0;
    Test::More::ok($got && $after > 13 && $after < 17,
                   sprintf('TEST 8 - ": ping" after %.1f s', $after));
    Test::More::is(scalar @{$st->{events}}, 1, 'TEST 8 - and no event');
    close $st->{sock};

=== TEST 9: engagement_live_push 10s: the ping still comes after 15 s, and a reload ends the stream within about a second
--- http_config
    engagement_zone engagement:1m;
    engagement_heartbeat_interval 10s;
    engagement_live_push 10s;
--- request
GET /engagement/live?contentId=x9
--- response_body
{"contentId":"x9","live":0,"peak":0}
--- post_check
    my $slow = $ENV{TEST_NGINX_ASAN} ? 2 : 1;
    my $st = main::sse_open('x9');
    main::sse_read($st, 2, sub { @{$_[0]{events}} >= 1 });
    my $t0 = time;
    my $got = main::sse_read($st, 22, sub { $_[0]{buf} =~ /: ping\n\n/ });
    my $after = time - $t0;
    Test::More::ok($got && $after > 13 && $after < 16.5 * $slow,
                   sprintf('TEST 9 - ": ping" after %.1f s (not at the 20 s push)', $after));
    my @old = worker_pids();
    $t0 = time;
    kill 'HUP', master_pid();
    main::sse_read($st, 12);
    my $ended = time - $t0;
    Test::More::ok($st->{eof} && $st->{buf} =~ /\r\n0\r\n\r\n$/, 'TEST 9 - the stream ended with the last chunk');
    Test::More::ok($ended < 2 * $slow, sprintf('TEST 9 - %.2f s after the HUP (< %d, the push is 10 s)', $ended, 2 * $slow));
    Test::More::ok(wait_workers(2, @old), 'TEST 9 - the old workers are gone');
    close $st->{sock};

=== TEST 10: killed workers' streams do not stay in the subscribers gauge
--- no_error_log
AddressSanitizer
runtime error
--- error_log
[alert]
exited on signal 9
left open in worker slot
--- request
GET /engagement/live?contentId=x10
--- response_body
{"contentId":"x10","live":0,"peak":0}
--- post_check
    my @subs = map { main::sse_open('x10') } 1 .. 6;
    main::sse_read($_, 2, sub { @{$_[0]{events}} >= 1 }) for @subs;
    my $n = wait_until(sub { status_text() =~ /^nginx_engagement_live_subscribers 6$/m }, 5);
    Test::More::ok($n, 'TEST 10 - 6 subscribers in /status');
    my @old = worker_pids();
    kill 'KILL', @old;
    Test::More::ok(wait_workers(2, @old), 'TEST 10 - both workers killed and respawned');
    main::sse_read($_, 3) for @subs;
    Test::More::ok(!grep({ !$_->{eof} } @subs), 'TEST 10 - the streams were cut');
    close $_->{sock} for @subs;
    # a new worker clears its slot as it starts (its pid shows before that)
    my $zero = wait_until(sub { status_text() =~ /^nginx_engagement_live_subscribers 0$/m }, 5);
    Test::More::ok($zero, 'TEST 10 - the gauge is 0 once the killed workers were replaced')
        or Test::More::diag(status_text() =~ /^(nginx_engagement_live_subscribers \d+)$/m);
    my $one = main::sse_open('x10');
    main::sse_read($one, 2, sub { @{$_[0]{events}} >= 1 });
    Test::More::like(status_text(), qr/^nginx_engagement_live_subscribers 1$/m, 'TEST 10 - a new stream: 1');
    close $one->{sock};

=== TEST 11: a stream request with a body (even one still coming) is answered 400 at once, never streamed
--- request
GET /engagement/live?contentId=x11
--- response_body
{"contentId":"x11","live":0,"peak":0}
--- post_check
    for my $case (['Content-Length: 10', 'abc'], ['Transfer-Encoding: chunked', "3\r\nabc\r\n"]) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . nginx_port(), Timeout => 5) or die $!;
        print $s "GET /engagement/live/x11 HTTP/1.1\r\nHost: localhost\r\n$case->[0]\r\n\r\n$case->[1]";
        my $st = { sock => $s, buf => '', events => [], eof => 0 };
        my $t0 = time;
        main::sse_read($st, 3, sub { $_[0]{buf} =~ /\}\n/ });
        my $took = time - $t0;
        Test::More::like($st->{buf}, qr{^HTTP/1\.1 400 .*\r\n\r\n\{"error":"invalid_body","message":"a live stream request has no body"\}\n}s,
                         "TEST 11 - $case->[0], body unfinished: 400 invalid_body");
        Test::More::ok($took < 1, sprintf("TEST 11 - $case->[0]: answered in %.2f s, not after the body", $took));
        Test::More::unlike($st->{buf}, qr/text\/event-stream/, "TEST 11 - $case->[0]: no stream");
        close $s;
    }
