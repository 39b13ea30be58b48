# Guards the creator milestones' webhook (issue 15): a crossed threshold
# is POSTed to engagement_milestone_webhook's URL from the outbox the
# milestone script fills in Redis (eng:{ms}:wh, eng:{ms}:due), so:
# - under concurrent traffic from two edges (nginx "a", the test's, and
#   "b", started here, both delivering) each threshold is POSTed exactly
#   once, with its id in Idempotency-Key and the body;
# - with the webhook down (nothing listens), across a reload, the
#   notification waits in Redis and is delivered once when it is back up;
#   a 503 is retried, a 400 is dropped (logged);
# - a reload while a POST waits for its answer, or Redis stalling then,
#   does not make it sent twice (the acknowledgement gets to Redis);
# - rate= caps POSTs per channel a minute (the content's channel as the
#   series recorded it), channels independently; over the cap, a
#   notification is delayed to the next minute, not dropped;
# - the directive's errors fail nginx -t.
#
# The HTTP sink is ours: a small Perl server forked here, recording each
# request (and the status it answered, read from a file at each request)
# in a private file; it, redis-server and edge b are stopped by pid.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes qw(sleep time);
use POSIX qw(WNOHANG);
use IO::Socket::INET;
use JSON::PP;

our $rport = free_ports(400, 50, 1);
start_redis($rport);
$ENV{TEST_NGINX_REDIS_PORT} = $rport;
our $SinkPort = free_ports(500, 50, 1);
$ENV{TEST_NGINX_SINK_PORT} = $SinkPort;

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
master_on();
workers(2);
add_response_body_check(post_check_hook());

our $Milestones = <<'_EOC_';
    engagement_milestone views 10 50 100;
    engagement_milestone likes 3;
_EOC_

our $HttpConfig = <<'_EOC_';
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s connect_timeout=2s;
    engagement_flush_interval 100ms;
    engagement_edge_id edge-a;
_EOC_

our $Hook = "engagement_milestone_webhook http://127.0.0.1:$SinkPort/hook/ms timeout=1s connect_timeout=500ms;\n";

our $Loc = <<'_EOC_';
    location = /engagement/view { engagement view; }
    location = /engagement/like { engagement like; }
    location = /status { engagement status; }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("config", $Loc) unless defined $block->config;
    $block->set_value("no_error_log", "[error]\n[alert]\nexited on signal\nAddressSanitizer\nLeakSanitizer\nruntime error")
        unless defined $block->no_error_log || $block->must_die;
});

# --- the HTTP sink ---------------------------------------------------------

our ($SinkPid, $SinkDir);

sub sink_status {
    my ($st) = @_;
    open my $fh, '>', "$SinkDir/status" or die $!;
    print $fh "$st\n";
    close $fh;
}

sub start_sink {
    my ($status) = @_;
    $SinkDir //= scratch_dir('wh-sink');
    sink_status($status // 200);
    unlink "$SinkDir/ready";
    my $pid = fork() // die;
    if ($pid == 0) {
        # not the runner's handlers: they would stop the block's nginx
        $SIG{$_} = 'DEFAULT' for qw(INT TERM PIPE HUP QUIT CHLD ALRM);
        my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$SinkPort", Listen => 64,
                                      ReuseAddr => 1, Proto => 'tcp') or POSIX::_exit(2);
        open my $r, '>', "$SinkDir/ready"; close $r;
        while (1) {
            my $c = $l->accept or next;
            my $buf = '';
            while ($buf !~ /\r\n\r\n/) {
                my $n = sysread($c, $buf, 65536, length $buf);
                last unless $n;
            }
            my ($head, $body) = split /\r\n\r\n/, $buf, 2;
            $head //= '';
            $body //= '';
            my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
            while (length($body) < ($len // 0)) {
                my $n = sysread($c, $body, $len - length $body, length $body);
                last unless $n;
            }
            my ($key) = $head =~ /^Idempotency-Key:\s*(\S+)/mi;
            my ($xn) = $head =~ /^X-Engagement-Notification:\s*(\S+)/mi;
            my ($line) = $head =~ /^(\S+ \S+)/;
            my $st = (slurp("$SinkDir/status") =~ /(\d+)/) ? $1 : 200;
            open my $fh, '>>', "$SinkDir/log";
            print $fh join("\t", $st, $key // '', $xn // '', $line // '', $body), "\n";
            close $fh;
            # a slow receiver: answers after the seconds in the file delay
            my $delay = -e "$SinkDir/delay" ? slurp("$SinkDir/delay") + 0 : 0;
            sleep $delay if $delay;
            print $c "HTTP/1.1 $st X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            close $c;
        }
    }
    $SinkPid = $pid;
    wait_until { -e "$SinkDir/ready" } 5 or die "the sink did not start";
}

sub sink_delay {
    my ($secs) = @_;
    open my $fh, '>', "$SinkDir/delay" or die $!;
    print $fh "$secs\n";
    close $fh;
}

sub stop_sink {
    return unless $SinkPid;
    kill 'TERM', $SinkPid;
    waitpid($SinkPid, 0);
    undef $SinkPid;
}

sub clear_sink {
    $SinkDir //= scratch_dir('wh-sink');
    unlink "$SinkDir/log";
}

# the requests the sink had: hashes of status, key, xn, line, body, json
sub sink_requests {
    my @r;
    for (split /\n/, slurp("$SinkDir/log")) {
        my ($st, $key, $xn, $line, $body) = split /\t/, $_, 5;
        my $j = eval { decode_json($body) } // {};
        push @r, { status => $st, key => $key, xn => $xn, line => $line, body => $body, json => $j };
    }
    return @r;
}

sub delivered { grep { $_->{status} =~ /^2/ } sink_requests() }

END { stop_sink() }

# --- edge b ----------------------------------------------------------------

our ($BPort, $BPid);
sub start_b {
    my ($http) = @_;
    my $prefix = new_prefix('edge-b-wh');
    $BPort = free_ports(450, 50, 1);
    write_conf($prefix, port => $BPort, workers => 2, http => qq(
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$rport timeout=2s connect_timeout=2s;
    engagement_flush_interval 100ms;
    engagement_edge_id edge-b;
    $http
), server => q(
    location = /engagement/view { engagement view; }
    location = /engagement/like { engagement like; }
));
    $BPid = start_nginx($prefix, $BPort) or die "edge b did not start";
    return $prefix;
}

sub view {
    my ($port, $c, $s, $extra) = @_;
    my ($st) = http_request($port, 'POST', '/engagement/view',
        '{"contentId":"' . $c . '","sessionId":"' . $s . '"' . ($extra // '') . '}',
        'Content-Type' => 'application/json');
    return $st;
}

sub like_req {
    my ($port, $method, $c, $u) = @_;
    my ($st) = http_request($port, $method, '/engagement/like',
        qq({"contentId":"$c","userId":"$u"}), 'Content-Type' => 'application/json');
    return $st;
}

sub outbox {
    return (redis_cli($rport, undef, 'ZCARD', 'eng:{ms}:due') + 0,
            redis_cli($rport, undef, 'HLEN', 'eng:{ms}:wh') + 0);
}

sub reset_redis {
    redis_cli($rport, undef, 'DEL', 'eng:milestones', 'eng:{ms}:due', 'eng:{ms}:wh');
}

sub stream_len { redis_cli($rport, undef, 'XLEN', 'eng:milestones') + 0 }

run_tests();

__DATA__

=== TEST 1: two edges, 4 clients at once: each threshold is POSTed exactly once, its id in Idempotency-Key and the body
--- http_config eval
$::HttpConfig . $::Milestones . $::Hook
--- request
GET /status
--- error_code: 200
--- post_check
    main::reset_redis();
    main::clear_sink();
    main::start_sink(200);
    my $prefix = main::start_b($main::Milestones . $main::Hook);
    my $A = nginx_port();
    my $B = $main::BPort;

    my @kids;
    for my $k (0 .. 3) {
        my $pid = fork() // die;
        if ($pid == 0) {
            my $bad = 0;
            for my $i (1 .. 30) {
                $bad++ unless main::view($k % 2 ? $B : $A, 'wv1', "s$k-$i", '') == 202;
            }
            POSIX::_exit($bad ? 1 : 0);
        }
        push @kids, $pid;
    }
    my $bad = 0;
    for (@kids) { waitpid($_, 0); $bad++ if $? }
    Test::More::is($bad, 0, 'TEST 1 - 120 views from 4 clients on two edges, all counted');
    my @codes = (main::like_req($A, 'POST', 'wl1', 'u1'), main::like_req($B, 'POST', 'wl1', 'u2'),
                 main::like_req($A, 'POST', 'wl1', 'u3'), main::like_req($B, 'DELETE', 'wl1', 'u3'),
                 main::like_req($A, 'POST', 'wl1', 'u3'));
    Test::More::is("@codes", '200 200 200 200 200', 'TEST 1 - five like requests answered 200');
    Test::More::ok(main::wait_until(sub {
        redis_cli($rport, undef, 'HGET', 'eng:{c:wv1}', 'views') eq '120' }, 10), 'TEST 1 - Redis holds 120 views of wv1');

    # delivered: as many POSTs as stream entries, and the outbox empty
    Test::More::ok(main::wait_until(sub {
        my @d = main::delivered();
        my ($z, $h) = main::outbox();
        @d >= main::stream_len() && main::stream_len() >= 2 && $z == 0 && $h == 0 }, 10),
        'TEST 1 - the outbox is delivered and empty');
    sleep 1.5;    # a few more polls of both edges: nothing is sent again
    my @r = main::sink_requests();
    my $n = main::stream_len();
    Test::More::is(scalar(@r), $n, "TEST 1 - one POST per notification ($n), none twice");
    Test::More::is(scalar(grep { $_->{status} == 200 } @r), $n, 'TEST 1 - all answered 200');
    my %keys;
    $keys{$_->{key}}++ for @r;
    Test::More::is(scalar(keys %keys), $n, 'TEST 1 - the ids are distinct');
    Test::More::is(scalar(grep { $_->{key} eq ($_->{json}{id} // '') && $_->{xn} eq $_->{key} } @r), $n,
        'TEST 1 - Idempotency-Key = X-Engagement-Notification = the body\'s id');
    Test::More::is(scalar(grep { $_->{line} eq 'POST /hook/ms' } @r), $n, 'TEST 1 - POST to the configured path');
    my %crossed;
    for my $x (grep { $_->{json}{contentId} eq 'wv1' } @r) {
        $crossed{$_}++ for @{ $x->{json}{crossed} // [] };
        Test::More::is($x->{key}, "wv1:views:$x->{json}{threshold}", "TEST 1 - id $x->{key} is contentId:metric:threshold");
    }
    Test::More::is(join(',', map { "$_=$crossed{$_}" } sort { $a <=> $b } keys %crossed), '10=1,50=1,100=1',
        'TEST 1 - views thresholds 10, 50 and 100 each POSTed exactly once');
    my @l = grep { $_->{json}{contentId} eq 'wl1' } @r;
    Test::More::is(scalar(@l), 1, 'TEST 1 - the likes threshold 3 POSTed once, though crossed twice');
    Test::More::is(join(',', map { $l[0]{json}{$_} // '' } qw(id metric threshold total)), 'wl1:likes:3,likes,3,3',
        'TEST 1 - the likes notification: id, metric, threshold, total');
    Test::More::ok(($l[0]{json}{time} // 0) > 1.7e9, 'TEST 1 - it has a time');
    Test::More::ok(!exists $l[0]{json}{channelId}, 'TEST 1 - no channelId when no view named one');
    stop_nginx($main::BPid);
    main::stop_sink();

=== TEST 2: the webhook down, nginx reloaded meanwhile: delivered once when it is back
--- http_config eval
$::HttpConfig . $::Milestones . $::Hook
--- request
GET /status
--- error_code: 200
--- no_error_log
[alert]
[crit]
exited on signal
AddressSanitizer
LeakSanitizer
runtime error
--- post_check
    main::reset_redis();
    main::clear_sink();
    my $A = nginx_port();
    Test::More::ok(!port_listening($main::SinkPort), 'TEST 2 - nothing listens on the webhook port');
    for my $i (1 .. 10) { main::view($A, 'wd1', "s$i", '') }
    Test::More::ok(main::wait_until(sub { (main::outbox())[0] == 1 }, 5), 'TEST 2 - the notification is in the outbox');
    Test::More::ok(main::wait_until(sub { error_log_text() =~ /POST of wd1:views:10 to \S+ failed/ }, 5),
        'TEST 2 - the failed POST is logged');
    Test::More::ok(reload_nginx(2), 'TEST 2 - reloaded while the webhook is down');
    sleep 1;
    Test::More::is(join(',', main::outbox()), '1,1', 'TEST 2 - still in the outbox after the reload');
    main::start_sink(200);
    Test::More::ok(main::wait_until(sub { scalar(main::delivered()) >= 1 && (main::outbox())[0] == 0 }, 20),
        'TEST 2 - delivered once the webhook is up');
    sleep 1.5;
    my @r = main::sink_requests();
    Test::More::is(scalar(@r), 1, 'TEST 2 - one POST reached the sink');
    Test::More::is($r[0]{key}, 'wd1:views:10', 'TEST 2 - the id');
    Test::More::is(join(',', main::outbox()), '0,0', 'TEST 2 - the outbox is empty');

    # 503: retried; then 200: one delivered
    main::clear_sink();
    main::sink_status(503);
    for my $i (1 .. 10) { main::view($A, 'wd2', "s$i", '') }
    Test::More::ok(main::wait_until(sub { scalar(main::sink_requests()) >= 2 }, 10), 'TEST 2 - a 503 is retried');
    main::sink_status(200);
    Test::More::ok(main::wait_until(sub { scalar(main::delivered()) >= 1 && (main::outbox())[0] == 0 }, 20),
        'TEST 2 - then delivered');
    sleep 1.5;
    my @d = main::delivered();
    Test::More::is(scalar(@d), 1, 'TEST 2 - answered 200 once');
    Test::More::is(scalar(grep { $_->{key} ne 'wd2:views:10' } main::sink_requests()), 0, 'TEST 2 - all attempts carry the same id');
    # nginx logs a refused connect() itself, at [error]: nothing else
    my @err = grep { /\[error\]/ && !/connect\(\) to 127\.0\.0\.1:$main::SinkPort failed \(111: Connection refused\)/ }
              split /\n/, error_log_text();
    Test::More::is(scalar(@err), 0, 'TEST 2 - no [error] but the refused connects') or Test::More::diag($err[0]);
    main::stop_sink();

=== TEST 3: a reload while a POST waits for its answer: acknowledged before the old worker exits, not sent again
--- http_config eval
$::HttpConfig . $::Milestones . $::Hook
--- request
GET /status
--- error_code: 200
--- post_check
    main::reset_redis();
    main::clear_sink();
    main::start_sink(200);
    main::sink_delay(0.8);
    my $A = nginx_port();
    for my $i (1 .. 10) { main::view($A, 'wq1', "s$i", '') }
    Test::More::ok(main::wait_until(sub { scalar(main::sink_requests()) >= 1 }, 5), 'TEST 3 - the POST reached the slow receiver');
    Test::More::ok(reload_nginx(2), 'TEST 3 - reloaded while it waits for the answer');
    Test::More::ok(main::wait_until(sub { (main::outbox())[1] == 0 }, 5),
        'TEST 3 - the old worker took it out of the outbox before it exited');
    main::sink_delay(0);
    sleep 1.5;
    Test::More::is(scalar(main::sink_requests()), 1, 'TEST 3 - one POST');
    main::stop_sink();

=== TEST 4: Redis stalls while a POST waits for its answer: the acknowledgement is kept and sent again, not the POST
--- http_config eval
"engagement_zone engagement:1m;
engagement_redis 127.0.0.1:$::rport timeout=500ms connect_timeout=500ms;
engagement_flush_interval 100ms;
$::Milestones $::Hook"
--- request
GET /status
--- error_code: 200
--- no_error_log
[alert]
[crit]
exited on signal
AddressSanitizer
LeakSanitizer
runtime error
--- post_check
    main::reset_redis();
    main::clear_sink();
    main::start_sink(200);
    main::sink_delay(0.6);
    my $A = nginx_port();
    for my $i (1 .. 10) { main::view($A, 'ws1', "s$i", '') }
    Test::More::ok(main::wait_until(sub { scalar(main::sink_requests()) >= 1 }, 5), 'TEST 4 - the POST reached the slow receiver');
    # the acknowledgement goes out after 0.6 s, into a Redis paused for 2 s:
    # it times out (500ms) and the connection is dropped
    Test::More::is(redis_cli($rport, undef, 'CLIENT', 'PAUSE', 2000, 'ALL'), 'OK', 'TEST 4 - Redis paused for 2 s');
    main::sink_delay(0);
    Test::More::ok(main::wait_until(sub { error_log_text() =~ /ws1:views:10 delivered, but Redis did not take it out of the outbox yet/ }, 5),
        'TEST 4 - the lost acknowledgement is kept');
    Test::More::ok(main::wait_until(sub { (main::outbox())[1] == 0 }, 8),
        'TEST 4 - and sent again once Redis answers: the outbox is empty (well before the lease)');
    Test::More::like(error_log_text(), qr/ws1:views:10 acknowledged again: out of the outbox now/,
        'TEST 4 - by the acknowledgement sent again');
    sleep 1.5;
    Test::More::is(scalar(main::sink_requests()), 1, 'TEST 4 - one POST');
    main::stop_sink();

=== TEST 5: a 400 is a refusal for good: dropped from the outbox, logged, kept in the stream
--- http_config eval
$::HttpConfig . $::Milestones . $::Hook
--- request
GET /status
--- error_code: 200
--- no_error_log
[alert]
--- post_check
    main::reset_redis();
    main::clear_sink();
    main::start_sink(400);
    my $A = nginx_port();
    for my $i (1 .. 10) { main::view($A, 'wr1', "s$i", '') }
    Test::More::ok(main::wait_until(sub { scalar(main::sink_requests()) >= 1 && (main::outbox())[1] == 0 }, 10),
        'TEST 5 - POSTed and out of the outbox');
    sleep 1.5;
    Test::More::is(scalar(main::sink_requests()), 1, 'TEST 5 - not sent again');
    Test::More::is(main::stream_len(), 1, 'TEST 5 - the stream keeps it');
    Test::More::like(error_log_text(), qr/wr1:views:10 refused by \S+ \(400\)/, 'TEST 5 - logged');
    main::stop_sink();

=== TEST 6: rate=2: at most 2 POSTs a minute per channel, two channels independent; the others wait for the next minute
--- http_config eval
"engagement_zone engagement:1m;
engagement_redis 127.0.0.1:$::rport timeout=2s connect_timeout=2s buckets=1s;
engagement_flush_interval 100ms;
engagement_milestone views 2;\n"
. "engagement_milestone_webhook http://127.0.0.1:$::SinkPort/ rate=2;\n"
--- request
GET /status
--- error_code: 200
--- post_check
    main::reset_redis();
    main::clear_sink();
    main::start_sink(200);
    my $A = nginx_port();
    # the crossings and their claims in one minute, early enough to check
    # them before it ends: start between its 20th and 35th second
    my $sec = (gmtime)[0];
    sleep(20 - $sec) if $sec < 20;
    sleep(80 - $sec) if $sec > 35;
    my @c = (qw(ca1 ca2 ca3 ca4), qw(cb1 cb2 cb3));
    my %ch = map { $_ => (/^ca/ ? 'chanA' : 'chanB') } @c;
    # one view each with its channel: the series records it (its rows are
    # due after buckets=1s here, 60 s by default or when the minute ends)
    main::view($A, $_, 's1', qq(,"channelId":"$ch{$_}")) for @c;
    my @t = gmtime;
    my $day = sprintf('%04d%02d%02d', $t[5] + 1900, $t[4] + 1, $t[3]);
    Test::More::ok(main::wait_until(sub {
        !grep { redis_cli($rport, undef, 'HGET', "eng:{c:$_}:d:$day:channel", $ch{$_}) eq '' } @c }, 10),
        'TEST 6 - the series recorded each content\'s channel');
    # the second view crosses 2
    main::view($A, $_, 's2', qq(,"channelId":"$ch{$_}")) for @c;
    Test::More::ok(main::wait_until(sub { main::stream_len() == 7 }, 5), 'TEST 6 - 7 notifications');
    Test::More::ok(main::wait_until(sub { scalar(main::delivered()) >= 4 }, 5), 'TEST 6 - 4 POSTs');
    sleep 1.5;
    my @d = main::delivered();
    my %n;
    $n{$_->{json}{channelId} // '-'}++ for @d;
    Test::More::is(join(',', map { "$_=$n{$_}" } sort keys %n), 'chanA=2,chanB=2',
        'TEST 6 - in this minute: 2 for chanA, 2 for chanB');
    my $minute = int(time() / 60);
    my @due = split /\n/, redis_cli($rport, undef, 'ZRANGE', 'eng:{ms}:due', 0, -1, 'WITHSCORES');
    my %due = @due;
    Test::More::is(scalar(keys %due), 3, 'TEST 6 - 3 wait in the outbox');
    Test::More::is(scalar(grep { $_ == ($minute + 1) * 60 } values %due), 3, 'TEST 6 - due at the next minute');
    # the next minute: 2 more of chanA, 1 of chanB
    Test::More::ok(main::wait_until(sub { scalar(main::delivered()) >= 7 }, 70), 'TEST 6 - the next minute, all 7 delivered');
    sleep 1;
    @d = main::delivered();
    Test::More::is(scalar(@d), 7, 'TEST 6 - 7 POSTs in all');
    my %ids;
    $ids{$_->{key}}++ for @d;
    Test::More::is(join(',', sort keys %ids), join(',', map { "$_:views:2" } sort @c), 'TEST 6 - each content once');
    Test::More::is(join(',', main::outbox()), '0,0', 'TEST 6 - the outbox is empty');
    main::stop_sink();

=== TEST 7: https is refused
--- http_config eval
$::HttpConfig . $::Milestones . "engagement_milestone_webhook https://127.0.0.1/x;"
--- must_die
--- error_log
engagement_milestone_webhook "https://127.0.0.1/x": https is not supported

=== TEST 8: not an http URL
--- http_config eval
$::HttpConfig . $::Milestones . "engagement_milestone_webhook ftp://127.0.0.1/x;"
--- must_die
--- error_log
engagement_milestone_webhook "ftp://127.0.0.1/x": an http:// URL is expected

=== TEST 9: a bad port
--- http_config eval
$::HttpConfig . $::Milestones . "engagement_milestone_webhook http://127.0.0.1:99999/x;"
--- must_die
--- error_log
engagement_milestone_webhook "http://127.0.0.1:99999/x": invalid port

=== TEST 10: a bad timeout
--- http_config eval
$::HttpConfig . $::Milestones . "engagement_milestone_webhook http://127.0.0.1/x timeout=0;"
--- must_die
--- error_log
engagement_milestone_webhook: invalid "timeout=0" (a time from 1ms to 60s)

=== TEST 11: a bad rate
--- http_config eval
$::HttpConfig . $::Milestones . "engagement_milestone_webhook http://127.0.0.1/x rate=many;"
--- must_die
--- error_log
engagement_milestone_webhook: invalid "rate=many"

=== TEST 12: an unknown parameter
--- http_config eval
$::HttpConfig . $::Milestones . "engagement_milestone_webhook http://127.0.0.1/x retries=3;"
--- must_die
--- error_log
engagement_milestone_webhook: invalid parameter "retries=3"

=== TEST 13: a webhook without thresholds
--- http_config eval
$::HttpConfig . "engagement_milestone_webhook http://127.0.0.1/x;"
--- must_die
--- error_log
engagement_milestone_webhook needs engagement_redis and engagement_milestone thresholds

=== TEST 14: given twice
--- http_config eval
$::HttpConfig . $::Milestones . "engagement_milestone_webhook http://127.0.0.1/x; engagement_milestone_webhook http://127.0.0.1/y;"
--- must_die
--- error_log
"engagement_milestone_webhook" directive is duplicate

=== TEST 15: a path that is not URL-encoded
--- http_config eval
$::HttpConfig . $::Milestones . "engagement_milestone_webhook 'http://127.0.0.1/a b';"
--- must_die
--- error_log
engagement_milestone_webhook "http://127.0.0.1/a b": the path must be URL-encoded, without a fragment
