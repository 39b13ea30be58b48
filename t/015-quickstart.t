# Guards the README's quick start, `./build.sh run`, as a user runs it:
# on free ports it serves the demo page with the player SDK and the demo
# video (made by ffmpeg, as WebM and as HLS segments whose playlist hands
# the page's session and token on to the segment URLs; hls.js from npm),
# takes heartbeats, counts a view into its private Redis
# and stops everything it started on SIGTERM; when the port of its private
# Redis is taken (here by a listener that is not Redis) it refuses to start
# with a message naming the port, instead of talking to whatever holds it.
# PORT is a free port of the test's range; the private Redis is PORT+1000.
# "Not listening" is read from /proc/net/tcp: connecting in a loop to a
# closed port in the ephemeral range can connect a socket to itself.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);

no_shuffle();
log_level('warn');
timeout(10);
add_response_body_check(post_check_hook());

# a port P of ours with P+1000 free as well
sub qs_ports {
    for (1 .. 50) {
        my $p = free_ports(500, 40, 1);
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1:' . ($p + 1000),
                                      Listen => 1, ReuseAddr => 1) or next;
        close $s;
        return $p;
    }
    die "no free pair of ports\n";
}

# `./build.sh run` in the background, its output in $out: its pid
sub qs_start {
    my ($p, $out) = @_;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDOUT, '>', $out or POSIX::_exit(1);
        open STDERR, '>&', \*STDOUT;
        chdir root_dir() or POSIX::_exit(1);
        $ENV{PORT} = $p;
        delete $ENV{REDIS_PORT};
        exec './build.sh', 'run' or POSIX::_exit(1);
    }
    return $pid;
}

# waits for $pid to exit within $secs: its exit status, or undef
sub qs_exit {
    my ($pid, $secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        return $? >> 8 if waitpid($pid, POSIX::WNOHANG()) == $pid;
        sleep 0.1;
    }
    return undef;
}

run_tests();

__DATA__

=== TEST 1: the quick start serves the demo, counts a view into its private Redis, and stops what it started
--- config
    location = /t { return 204; }
--- request
GET /t
--- error_code: 204
--- post_check
    my $p = qs_ports();
    my $out = scratch_dir() . '/quickstart-1.out';
    my $pid = qs_start($p, $out);
    my $up = wait_until { (http_request($p, 'GET', '/'))[0] == 200 } 180;
    ok($up, "the demo page answers 200 on port $p");
    like(slurp($out), qr/redis-server on 127\.0\.0\.1:@{[ $p + 1000 ]} \(pid \d+/,
         'it says where its private Redis runs');
    # (the private Redis keeps its data across runs: a content of this run)
    my $c = 'qs-' . int(time * 1000);
    my ($st, $body) = post_view($p, qq({"contentId":"$c","sessionId":"s1","durationMs":3000}));
    is($st, 202, 'a view is answered 202');
    like($body, qr/"counted":true/, 'and counted');
    my $in = wait_until { redis_cli($p + 1000, undef, 'HGET', "eng:{c:$c}", 'views') =~ /^1\s*\z/ } 10;
    ok($in, 'the view reaches the private Redis');
    # what the demo page loads: the SDK, the video, heartbeats, the stream
    my ($js_st, $js, $js_h) = http_request($p, 'GET', '/sdk/engagement.js');
    is($js_st, 200, 'the player SDK is served');
    like($js, qr/Engagement/, 'and it is the SDK');
    like($js_h->{'content-type'} // '', qr{^application/javascript}, 'as JavaScript');
    my ($v_st, $v, $v_h) = http_request($p, 'GET', '/media/demo.webm');
    is($v_st, 200, 'the demo video is served');
    like($v_h->{'content-type'} // '', qr{^video/webm}, 'as video/webm');
    is(substr($v, 0, 4), "\x1a\x45\xdf\xa3", 'a WebM (EBML) file');
    my ($hb_st, $hb) = http_request($p, 'POST', '/engagement/heartbeat',
        qq({"contentId":"$c","sessionId":"s1","positionMs":0,"state":"playing"}),
        'Content-Type' => 'application/json');
    is($hb_st, 200, 'a heartbeat is answered 200');
    like($hb, qr/"live":1\b/, 'one live viewer');
    # the HLS demo: a token for (content, session), the playlist hands it
    # on to the segment URLs, hls.js from npm (when npm could install it)
    my ($tk_st, $tk) = http_request($p, 'GET', "/engagement/token?contentId=$c&sessionId=s2");
    is($tk_st, 200, 'a view token for the HLS demo');
    my ($tok) = $tk =~ /"token":"([^"]+)"/;
    ok($tok, 'the answer has it');
    my ($pl_st, $pl) = http_request($p, 'GET', "/hls/$c/index.m3u8?es=s2&et=$tok");
    is($pl_st, 200, 'the HLS playlist is served');
    like($pl, qr/^seg0\.ts\?es=s2&et=\Q$tok\E$/m, 'its segment URLs carry the session and token');
    my ($sg_st, $sg, $sg_h) = http_request($p, 'GET', "/hls/$c/seg0.ts?es=s2&et=$tok");
    is($sg_st, 200, 'a segment is served');
    like($sg_h->{'content-type'} // '', qr{^video/mp2t}, 'as video/mp2t');
    is(substr($sg, 0, 1), "G", 'an MPEG-TS packet');
    SKIP: {
        skip 'npm could not install hls.js', 1
            unless -f root_dir() . '/conf-examples/node_modules/hls.js/dist/hls.min.js';
        my ($h_st) = http_request($p, 'GET', '/lib/hls.js/hls.min.js');
        is($h_st, 200, 'hls.js is served from node_modules');
    }
    my ($idx_st, $idx) = http_request($p, 'GET', '/');
    like($idx, qr{<script src="/sdk/engagement\.js"></script>}, 'the demo page loads the SDK');
    kill 'TERM', $pid;
    is(qs_exit($pid, 20), 0, 'SIGTERM stops the quick start, exit status 0');
    ok(!port_listening($p), 'nginx no longer listens');
    ok(!port_listening($p + 1000), 'its Redis no longer listens');



=== TEST 2: the port of the private Redis is taken by something else: a clear refusal, nothing started
--- config
    location = /t { return 204; }
--- request
GET /t
--- error_code: 204
--- post_check
    my $p = qs_ports();
    my $squat = IO::Socket::INET->new(LocalAddr => '127.0.0.1:' . ($p + 1000),
                                      Listen => 5, ReuseAddr => 1) or die $!;
    my $out = scratch_dir() . '/quickstart-2.out';
    my $pid = qs_start($p, $out);
    my $rc = qs_exit($pid, 180);
    if (!defined $rc) { kill 'TERM', $pid; qs_exit($pid, 20) }
    is($rc, 1, 'the quick start exits with status 1');
    like(slurp($out), qr/127\.0\.0\.1:@{[ $p + 1000 ]} \(the demo's private Redis\) is already in use/,
         'naming the taken port');
    unlike(slurp($out), qr/redis-server on /, 'it does not say its Redis started');
    ok(!port_listening($p), 'no nginx was started');
    close $squat;
