# Guards the Redis flush across reloads and minute boundaries against a
# real redis-server: a reload under steady traffic costs the old workers
# only their own claims (they exit at once, not at the flush deadline,
# and the totals stay exact), and a content's events that straddle a
# minute boundary land in their own minute buckets.
#
# Each block gets its own redis-server (started by the block preprocessor
# on a free port, data in a private temporary directory, passed to the
# config as $TEST_NGINX_REDIS_PORT); the steps after the block's request
# are the Perl of its "--- post_check" section.
use strict;
use warnings;
use FindBin;
# our helpers first: their END (which stops our servers) then runs after
# the runner's END has stopped nginx
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use POSIX qw(strftime);
use Time::HiRes qw(sleep time);

our $port = nginx_port();
our $rport;

master_on();
workers(2);
log_level('info');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

add_block_preprocessor(sub {
    my ($block) = @_;
    $rport = free_ports(300, 50, 1);
    start_redis($rport);
    $ENV{TEST_NGINX_REDIS_PORT} = $rport;
    $ENV{TEST_NGINX_STATE_FILE} =
        scratch_dir('state') . '/block' . $block->seq_num . '.state';
});

sub rviews {
    my ($key) = @_;
    my $v = redis_cli($rport, undef, 'HGET', $key, 'views');
    return $v eq '' ? 0 : $v;
}

sub flushed {
    my $t = status_text();
    return $t =~ /^nginx_engagement_pending_contents\{zone="engagement"\} 0$/m
        && $t =~ /^nginx_engagement_inflight_contents\{zone="engagement"\} 0$/m;
}

# a process still running (not a zombie)
sub alive {
    my ($pid) = @_;
    my $st = slurp("/proc/$pid/stat");
    return $st ne '' && $st !~ /^\d+ \(.*?\) Z/;
}


run_tests();

__DATA__

=== TEST 1: a reload under steady traffic: the old workers leave at once, not at the deadline; exact
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0;
    engagement_flush_interval 100ms;
    engagement_flush_deadline 10s;
    engagement_edge_id reload-edge;
    engagement_state_file $TEST_NGINX_STATE_FILE;
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my $dir = scratch_dir('reload-traffic');
    my $stop = "$dir/stop";
    unlink $stop;
    # three senders, each to its own contents, until told to stop
    my @kids;
    for my $k (1 .. 3) {
        my $kid = fork() // die;
        if ($kid == 0) {
            my %ok;
            my $i = 0;
            while (!-e $stop && $i < 20000) {
                $i++;
                my $c = "hr$k-" . ($i % 7);
                my ($st) = post_view($port,
                    qq({"contentId":"$c","sessionId":"s$k-$i"}));
                $ok{$c}++ if $st == 202;
            }
            open my $o, '>', "$dir/count$k";
            print $o "$_ $ok{$_}\n" for sort keys %ok;
            close $o;
            POSIX::_exit(0);
        }
        push @kids, $kid;
    }
    # let the traffic run, then reload while it goes on
    ok(scalar(wait_until { rviews('eng:{c:hr1-1}') > 0 } 10),
       "traffic flows and is flushed");
    sleep 0.5;    # pacing: the traffic runs a while before the reload
    my @old = worker_pids();
    my $t0 = time;
    kill 'HUP', master_pid();
    wait_until { !grep { alive($_) } @old } 15;
    my $took = time - $t0;
    # the traffic goes on a while after the old workers left
    sleep 0.5;
    open my $s, '>', $stop; close $s;
    waitpid($_, 0) for @kids;
    ok($took < 2, sprintf("the old workers left %.2f s after the reload "
                          . "(deadline 10 s)", $took));
    my %acc;
    for my $k (1 .. 3) {
        for (split /\n/, slurp("$dir/count$k")) {
            my ($c, $n) = split / /;
            $acc{$c} = $n;
        }
    }
    my $total = 0;
    $total += $_ for values %acc;
    ok($total > 100, "events accepted under traffic ($total)");
    ok(scalar(wait_until { flushed() } 15), "all flushed after the reload");
    my ($bad, $sbad) = (0, 0);
    for my $c (sort keys %acc) {
        $bad++ if rviews("eng:{c:$c}") != $acc{$c};
        my (undef, $b) = http_request($port, 'GET', "/engagement/summary/$c");
        $sbad++ unless $b =~ /"views":$acc{$c}\b/;
    }
    is($bad, 0, "Redis totals equal the accepted events of each content");
    is($sbad, 0, "the summaries equal the accepted events of each content");
    log_is_clean('reload');
--- no_shutdown_error_log eval
qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/



=== TEST 2: one content's events straddling a minute boundary land in their own minute buckets
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
--- config
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    # a private nginx whose clock reaches a minute boundary 1.5 s after
    # it starts; its flush interval (3 s) holds the events of both sides
    # of the boundary pending together
    # (times below are the shimmed clock's: the real one plus $off)
    my $now = time;
    my $off = int(58.5 - ($now - int($now / 60) * 60));
    $off += 60 if $off < 0;
    my $boundary = (int(($now + $off) / 60) + 1) * 60;
    my $shim = flush_wallclock_shim($off);
    my $prefix = new_prefix('minutes');
    my $p = free_port();
    write_conf($prefix, port => $p, http => "
        engagement_zone engagement:4m;
        engagement_dedupe_zone engagement_dedupe:4m;
        engagement_redis 127.0.0.1:$rport timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0;
        engagement_flush_interval 3s;
        engagement_state_file " . scratch_dir('state') . "/minutes.state;",
        server => 'location = /engagement/view { engagement view; }
                   location = /status { engagement status; }');
    my $pid = do {
        local $ENV{TEST_NGINX_PRELOAD} =
            join(' ', grep { $_ } $ENV{TEST_NGINX_PRELOAD}, $shim);
        start_nginx($prefix, $p);
    };
    ok($pid, "minutes: nginx with its clock near a minute boundary starts");
    my $before = 0;
    for my $i (1 .. 3) {
        my ($st) = post_view($p, qq({"contentId":"mb","sessionId":"a$i"}));
        $before++ if $st == 202;
    }
    my $sent_at = time + $off;
    ok($sent_at < $boundary, sprintf("minutes: the first events came %.2f s "
                                     . "before the boundary", $boundary - $sent_at));
    # the real clock is the shimmed one less $off: wait past the boundary
    wait_until { time + $off > $boundary + 0.2 } 5;
    my $after = 0;
    for my $i (1 .. 2) {
        my ($st) = post_view($p, qq({"contentId":"mb","sessionId":"b$i"}));
        $after++ if $st == 202;
    }
    is($before + $after, 5, "minutes: 5 events accepted");
    ok(scalar(wait_until { redis_cli($rport, undef, 'HGET', 'eng:{c:mb}', 'views') eq '5' } 15),
       "minutes: all 5 flushed to Redis");
    my $m1 = strftime('%Y%m%d%H%M', gmtime($boundary - 30));
    my $m2 = strftime('%Y%m%d%H%M', gmtime($boundary + 30));
    is(redis_cli($rport, undef, 'HGET', "eng:{c:mb}:m:$m1", 'views'), 3,
       "minutes: the minute before the boundary has its 3 events");
    is(redis_cli($rport, undef, 'HGET', "eng:{c:mb}:m:$m2", 'views'), 2,
       "minutes: the minute after the boundary has its 2 events");
    my $ttl = redis_cli($rport, undef, 'TTL', "eng:{c:mb}:m:$m2");
    ok($ttl > 0, "minutes: the later minute's bucket has its TTL ($ttl)");
    is(stop_nginx($pid), 0, "minutes: nginx stops");
    unlike(slurp("$prefix/logs/error.log"),
           qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/,
           "minutes: no alert, crash or sanitizer report");
--- no_shutdown_error_log eval
qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/
