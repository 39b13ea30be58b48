# Exactness of the Redis flush where the batch identity used to fail
# (issue 12): two counters zones seeing one content, two nginx instances
# sharing an edge id on one Redis, a clock that steps back between two
# runs; a reload that adds or removes engagement_redis.
#
# Each block gets its own redis-server (started by the block preprocessor
# on a free port, data in a private temporary directory, passed to the
# config as $TEST_NGINX_REDIS_PORT); a second nginx, when a block needs
# one, runs from a private prefix (new_prefix). The steps after the
# block's request are the Perl of its "--- post_check" section.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes qw(sleep);
use Engagement::Proxy;
use IO::Socket::INET;
use POSIX ();

our $port = nginx_port();
our ($rport, $state);

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
    $state = scratch_dir('state') . "/block" . $block->seq_num . ".state";
    unlink $state, "$state.restored";
    $ENV{TEST_NGINX_STATE_FILE} = $state;
});

# the Redis total of one content
sub rviews {
    my ($id, $field) = @_;
    my $v = redis_cli($rport, undef, 'HGET', "eng:{c:$id}", $field // 'views');
    return $v eq '' ? 0 : $v;
}

# the Redis total of one content in the Redis on $rp
sub rviews_on {
    my ($rp, $id) = @_;
    my $v = redis_cli($rp, undef, 'HGET', "eng:{c:$id}", 'views');
    return $v eq '' ? 0 : $v;
}

# nothing pending or in flight in any zone of the nginx on $p
sub flushed_on {
    my ($p) = @_;
    my (undef, $t) = http_request($p, 'GET', '/status');
    return $t =~ /^nginx_engagement_pending_contents/m
        && $t !~ /^nginx_engagement_(pending|inflight)_contents\{[^}]*\} [1-9]/m;
}

# the locations of a private nginx, unless a block says otherwise
our $locations = 'location = /engagement/view { engagement view; }
                  location /engagement/summary { engagement summary; }
                  location = /status { engagement status; }';

# a private nginx's configuration, written (again) in its prefix: http,
# server (default: $locations), workers (1), module (a file in modules/
# to load instead of the module under test)
sub flush_conf {
    my (%o) = @_;
    write_conf($o{prefix}, port => $o{port}, workers => $o{workers} // 1,
               http => $o{http}, server => $o{server} // $locations);
    return unless $o{module};
    my $f = "$o{prefix}/conf/nginx.conf";
    my $c = slurp($f);
    $c =~ s{modules/ngx_http_engagement_module\.so}{modules/$o{module}};
    open my $fh, '>', $f or die $!;
    print $fh $c;
    close $fh;
}

# a private nginx on its own port and prefix, started: (pid, port,
# prefix); module => 'test.so' loads the test build
sub flush_nginx {
    my ($name, %o) = @_;
    $o{prefix} = new_prefix($name);
    $o{port} = free_port();
    symlink(flush_test_module(), "$o{prefix}/modules/test.so")
        if ($o{module} // '') eq 'test.so';
    flush_conf(%o);
    my $pid = start_nginx($o{prefix}, $o{port});
    diag("$name: " . slurp("$o{prefix}/logs/stderr.log")) unless $pid;
    return ($pid, $o{port}, $o{prefix});
}

# a reload (HUP) of a private nginx: 'refused' (one more [emerg] in its
# log), 'passed' (its workers are all new) or '' (neither within 10 s)
sub flush_reload {
    my ($pid, $prefix) = @_;
    my $log = "$prefix/logs/error.log";
    my @old = worker_pids($pid);
    my $before = () = slurp($log) =~ /\[emerg\]/g;
    kill 'HUP', $pid;
    return wait_until {
        my $n = () = slurp($log) =~ /\[emerg\]/g;
        return 'refused' if $n > $before;
        my @w = worker_pids($pid);
        return 'passed' if @w && !grep { my $o = $_; grep { $_ == $o } @w } @old;
        return '';
    } 10;
}

# the http{} of a private nginx flushing to the Redis on port $to, with
# a counters zone of $size and the state file $name under scratch_dir
sub flush_http {
    my ($to, $size, $name, $more) = @_;
    return "engagement_zone engagement:$size;
            engagement_dedupe_zone engagement_dedupe:4m;
            engagement_redis 127.0.0.1:$to timeout=300ms connect_timeout=300ms backoff=50ms:100ms buckets=0 uniques=0;
            engagement_flush_interval 50ms;
            engagement_state_file " . scratch_dir('state') . "/$name.state;
            " . ($more // '');
}

# a library that sets the wall clock $secs ahead (the monotonic clock is
# left alone), as a clock later stepped back by NTP would have been
sub flush_clock_shim {
    my ($secs) = @_;
    my $dir = scratch_dir('shim');
    open my $fh, '>', "$dir/shim.c" or die $!;
    print $fh <<"EOC";
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
/* by system calls, not dlsym: a sanitizer's runtime may call these first */
int gettimeofday(struct timeval *tv, void *tz) {
    int r = syscall(SYS_gettimeofday, tv, tz);
    if (r == 0 && tv) tv->tv_sec += $secs;
    return r;
}
time_t time(time_t *t) {
    struct timeval tv;
    gettimeofday(&tv, 0);
    if (t) *t = tv.tv_sec;
    return tv.tv_sec;
}
int clock_gettime(clockid_t c, struct timespec *ts) {
    int r = syscall(SYS_clock_gettime, c, ts);
    if (r == 0 && (c == CLOCK_REALTIME || c == CLOCK_REALTIME_COARSE))
        ts->tv_sec += $secs;
    return r;
}
EOC
    close $fh;
    system('cc', '-shared', '-fPIC', '-O1', '-o', "$dir/shim.so",
           "$dir/shim.c") == 0 or die "cc failed";
    return "$dir/shim.so";
}

# the test build (build.sh test-build), or TEST_NGINX_TEST_MODULE
sub flush_test_module {
    return $ENV{TEST_NGINX_TEST_MODULE} if $ENV{TEST_NGINX_TEST_MODULE};
    system('nice', root_dir() . '/build.sh', 'test-build') == 0
        or die "build.sh test-build failed";
    return root_dir() . '/build-test/ngx_http_engagement_module.so';
}

# views over one keep-alive connection; answers the count of each status
sub flush_views {
    my ($p, @bodies) = @_;
    my %st;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p", Timeout => 5) or return {};
    for my $b (@bodies) {
        print $s "POST /engagement/view HTTP/1.1\r\nHost: x\r\n"
            . "Content-Type: application/json\r\nContent-Length: "
            . length($b) . "\r\n\r\n$b";
        my ($head, $line) = ('', '');
        while (defined($line = <$s>)) { last if $line eq "\r\n"; $head .= $line }
        my ($code) = $head =~ m{^HTTP/1\.1 (\d+)};
        my ($len) = $head =~ /^Content-Length: (\d+)/mi;
        read($s, my $body, $len // 0);
        $st{$code // 0}++;
        if ($head =~ /^Connection: close/mi) {
            close $s;
            $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p", Timeout => 5) or last;
        }
    }
    close $s if $s;
    return \%st;
}


run_tests();

__DATA__

=== TEST 1: two counters zones see the same content: Redis has both zones' views
--- http_config
    engagement_zone za:4m;
    engagement_zone zb:4m;
    engagement_dedupe_zone dd:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0;
    engagement_flush_interval 50ms;
    engagement_edge_id test-edge;
    engagement_state_file $TEST_NGINX_STATE_FILE;
--- config
    location = /a/view { engagement view zone=za dedupe=dd; }
    location = /b/view { engagement view zone=zb dedupe=dd; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my %ok;
    for my $i (1 .. 60) {
        for my $z ('a', 'b') {
            my ($st) = post_view($port,
                qq({"contentId":"shared","sessionId":"$z$i","viewerId":"u$z$i"}),
                "/$z/view");
            $ok{$z}++ if $st == 202;
        }
        sleep 0.02 if $i % 10 == 0;
    }
    is($ok{a} + $ok{b}, 120, "zones: every view counted locally");
    ok(scalar(wait_until { rviews('shared') >= 120 } 10), "zones: all flushed");
    sleep 0.3;   # a pacing: any late, wrong flush would show now
    is(rviews('shared'), 120, "zones: Redis has the views of both zones, exactly");
    log_is_clean("zones");



=== TEST 2: two nginx instances sharing an edge id on one Redis: exact
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0;
    engagement_flush_interval 50ms;
    engagement_edge_id same-edge;
    engagement_state_file $TEST_NGINX_STATE_FILE;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my ($pid, $p2, $prefix) = flush_nginx('shared-edge',
        http => flush_http($rport, '4m', 'second', 'engagement_edge_id same-edge;'));
    ok($pid, "edge: a second nginx with the same edge id runs");
    my $ok = 0;
    for my $i (1 .. 60) {
        for my $pp ($port, $p2) {
            my ($st) = post_view($pp,
                qq({"contentId":"both","sessionId":"s$pp-$i","viewerId":"u$pp-$i"}));
            $ok++ if $st == 202;
        }
        sleep 0.02 if $i % 10 == 0;
    }
    is($ok, 120, "edge: every view counted locally");
    ok(scalar(wait_until { flushed_on($port) && flushed_on($p2) } 10),
       "edge: both instances flushed");
    is(stop_nginx($pid), 0, "edge: the second nginx stops");
    is(rviews('both'), 120, "edge: Redis has the views of both instances, exactly");
    unlike(slurp("$prefix/logs/error.log"), qr/\[alert\]|\[emerg\]/,
           "edge: no alert in the second nginx");
    log_is_clean("edge");



=== TEST 3: a clock that steps back between two runs: the later run's views count
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0;
    engagement_flush_interval 50ms;
    engagement_edge_id clock-edge;
    engagement_state_file $TEST_NGINX_STATE_FILE;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    # the first run's clock is a day ahead; then the clock is set right
    # (the block's own nginx) and the same edge counts the same content
    my $shim = flush_clock_shim(86400);
    my ($pid, $p2);
    {
        local $ENV{TEST_NGINX_PRELOAD} =
            join(' ', grep { $_ } $ENV{TEST_NGINX_PRELOAD}, $shim);
        ($pid, $p2) = flush_nginx('clock-ahead',
            http => flush_http($rport, '4m', 'ahead', 'engagement_edge_id clock-edge;'));
    }
    ok($pid, "clock: the run with its clock ahead starts");
    for my $i (1 .. 20) {
        post_view($p2, qq({"contentId":"tick","sessionId":"a$i","viewerId":"a$i"}));
    }
    ok(scalar(wait_until { rviews('tick') == 20 } 10), "clock: the first run's views in Redis");
    is(stop_nginx($pid), 0, "clock: the first run stops");
    my $ok = 0;
    for my $i (1 .. 20) {
        my ($st) = post_view($port, qq({"contentId":"tick","sessionId":"b$i","viewerId":"b$i"}));
        $ok++ if $st == 202;
        sleep 0.06 if $i % 5 == 0;   # a pacing: several flushes
    }
    is($ok, 20, "clock: the later run counts its views");
    ok(scalar(wait_until { flushed_on($port) } 10), "clock: the later run flushed");
    is(rviews('tick'), 40, "clock: Redis has both runs' views, exactly");
    log_is_clean("clock");



=== TEST 4: the edge id changes while a batch Redis applied is in flight: applied once
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0;
    engagement_edge_id block-edge;
    engagement_state_file $TEST_NGINX_STATE_FILE;
--- config
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    # a run with edge id "before" flushes through our proxy, which cuts the
    # connection right after Redis applied the flush; the proxy then goes,
    # so the batch is still in flight at the stop and goes to the state
    # file; the next run, with edge id "after", resends it
    my $ctl = scratch_dir('proxy') . "/ctl-edge";
    open my $fh, '>', $ctl or die $!; print $fh "1"; close $fh;
    my $pport = free_ports(360, 50, 1);
    my $ppid = Engagement::Proxy::start($pport, $rport, $ctl, 0);
    my $sf = scratch_dir('state') . "/edge-change.state";
    unlink $sf, "$sf.restored";
    # a long backoff: no reconnection to the proxy before the stop
    my $http = sub {
        my ($to, $edge) = @_;
        my $h = flush_http($to, '4m', 'edge-change',
                           "engagement_flush_deadline 300ms; engagement_edge_id $edge;");
        $h =~ s/backoff=\S+;/backoff=5s:5s;/;
        # the seven views go in one round, not split by a 50 ms round
        # between two posts (seen under ASan); the checks below hold either way
        $h =~ s/engagement_flush_interval 50ms;/engagement_flush_interval 1s;/
            if $edge eq 'before';
        return $h;
    };
    my ($pid, $p2, $prefix) = flush_nginx('edge-before', http => $http->($pport, 'before'));
    ok($pid, "edge change: the first run starts");
    my $ready = wait_until {
        my (undef, $t) = http_request($p2, 'GET', '/status');
        $t =~ /^nginx_engagement_redis_ready_workers\{[^}]*\} 1$/m;
    } 10;
    ok($ready, "edge change: connected through the proxy");
    for my $i (1 .. 7) {
        post_view($p2, qq({"contentId":"moved","sessionId":"s$i","viewerId":"u$i"}));
    }
    ok(scalar(wait_until { slurp($ctl) eq "0" } 10), "edge change: the proxy cut the flush's reply");
    kill 'TERM', $ppid;
    waitpid($ppid, 0);
    my $applied = rviews('moved');
    ok($applied >= 1 && $applied <= 7, "edge change: Redis applied the batch ($applied views)");
    is(stop_nginx($pid), 0, "edge change: the first run stops");
    my ($inflight) = slurp($sf) =~ /^c moved \d+:[0-9a-f]{16} (\d+) /m;
    is($inflight, $applied,
       "edge change: the batch in flight is in the state file, with its stream and the views Redis applied");
    ($pid, $p2, $prefix) = flush_nginx('edge-after', http => $http->($rport, 'after'));
    ok($pid, "edge change: the second run, another edge id, starts");
    ok(scalar(wait_until { flushed_on($p2) } 10), "edge change: the restored batch is flushed");
    is(stop_nginx($pid), 0, "edge change: the second run stops");
    is(rviews('moved'), 7, "edge change: the resent batch is not applied twice");
    log_is_clean("edge change");



=== TEST 5: a reload that adds engagement_redis to a zone with local totals is refused; the totals stay
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
--- config
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my $zones = "engagement_zone engagement:4m;
                 engagement_dedupe_zone engagement_dedupe:4m;
                 engagement_state_file " . scratch_dir('state') . "/on.state;";
    my ($pid, $p, $prefix) = flush_nginx('redis-on', workers => 2, http => $zones);
    ok($pid, "adding Redis: nginx without Redis starts");
    for my $i (1 .. 9) {
        post_view($p, qq({"contentId":"local","sessionId":"s$i"}));
    }
    my (undef, $b) = http_request($p, 'GET', '/engagement/summary/local');
    like($b, qr/"views":9\b/, "adding Redis: 9 local views");
    flush_conf(prefix => $prefix, port => $p, workers => 2,
               http => "$zones
                        engagement_redis 127.0.0.1:$rport timeout=500ms buckets=0 uniques=0;
                        engagement_flush_interval 50ms;");
    is(flush_reload($pid, $prefix), 'refused', "adding Redis: the reload is refused");
    like(slurp("$prefix/logs/error.log"),
         qr/\[emerg\].*engagement_zone "engagement" holds 1 contents counted without Redis: a reload that adds "engagement_redis" would overwrite them/,
         "adding Redis: the refusal says why");
    sleep 0.3;   # a pacing: a flush or a read would have happened by now
    (undef, $b) = http_request($p, 'GET', '/engagement/summary/local');
    like($b, qr/"views":9\b/, "adding Redis: the local totals are still there");
    is(rviews('local'), 0, "adding Redis: nothing was sent to Redis");
    is(stop_nginx($pid), 0, "adding Redis: nginx stops");
    log_is_clean("adding Redis");



=== TEST 6: a reload that removes engagement_redis while deltas are unflushed is refused; the stop saves them
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
--- config
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my $sf = scratch_dir('state') . "/off.state";
    unlink $sf, "$sf.restored";
    # Redis is down for this nginx: every delta stays pending
    my $down = free_ports(400, 50, 1);
    my ($pid, $p, $prefix) = flush_nginx('redis-off', workers => 2,
        http => flush_http($down, '4m', 'off', 'engagement_flush_deadline 200ms;'));
    ok($pid, "removing Redis: nginx with Redis (down) starts");
    for my $i (1 .. 6) {
        post_view($p, qq({"contentId":"unsent","sessionId":"s$i"}));
    }
    my (undef, $t) = http_request($p, 'GET', '/status');
    like($t, qr/^nginx_engagement_pending_contents\{zone="engagement"\} 1$/m,
         "removing Redis: the content is pending");
    my $without = flush_http($down, '4m', 'off', 'engagement_flush_deadline 200ms;');
    $without =~ s/engagement_redis [^;]*;//;
    flush_conf(prefix => $prefix, port => $p, workers => 2, http => $without);
    is(flush_reload($pid, $prefix), 'refused', "removing Redis: the reload is refused");
    like(slurp("$prefix/logs/error.log"),
         qr/\[emerg\].*engagement_zone "engagement" holds 1 contents not yet flushed to Redis: a reload that removes "engagement_redis" would never send them/,
         "removing Redis: the refusal says why");
    is(stop_nginx($pid), 0, "removing Redis: nginx stops");
    like(slurp($sf), qr/^c unsent 0 (\S+ ){4}6 /m,
         "removing Redis: the 6 pending views are in the state file");
    log_is_clean("removing Redis");



=== TEST 7: zones written with another layout are refused by a reload, each kind
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
--- config
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    # a build for which every reading of the configuration is a new layout
    # (build.sh test-build: -DNGX_HTTP_ENGAGEMENT_TEST_LAYOUT=1), so each zone
    # a reload finds was written with another: each must be refused (one
    # per reload, nginx stops at the first), then renamed, until the
    # reload passes; the salt zone, whose name is fixed, goes with the
    # view location that uses it
    my $spool = scratch_dir('layout-spool');
    my $dead = free_ports(400, 50, 1);
    my %gen = map { $_ => 0 } qw(counters dedupe limit salt writer);
    my $conf = sub {
        return (module => 'test.so',
            http => "engagement_zone c$gen{counters}:1m;
                     engagement_dedupe_zone d$gen{dedupe}:1m;
                     engagement_limit_zone l$gen{limit}:1m;
                     engagement_writer http://127.0.0.1:$dead/ zone=w$gen{writer}:1m spool=$spool;",
            server => $gen{salt} ? '' :
            "location = /engagement/view { engagement view zone=c$gen{counters} dedupe=d$gen{dedupe};
                                           engagement_limit zone=l$gen{limit} key=\$binary_remote_addr rate=100r/s; }");
    };
    my ($pid, $p, $prefix) = flush_nginx('layout', $conf->());
    ok($pid, "layout: nginx starts")
        or diag(slurp("$prefix/logs/stderr.log"));
    return unless $pid;
    post_view($p, qq({"contentId":"lay","sessionId":"s1"}));
    my %refused;
    my $kinds = qr/(engagement_zone|engagement_dedupe_zone|engagement_limit_zone|engagement_writer zone|zone) "([^"]+)" was written by/;
    my %of = (c => 'counters', d => 'dedupe', l => 'limit', w => 'writer');
    my $passed = 0;
    for my $try (1 .. 7) {
        flush_conf(prefix => $prefix, port => $p, $conf->());
        my $r = flush_reload($pid, $prefix);
        last unless $r;
        if ($r eq 'passed') { $passed = $try; last }
        my @lines = grep { /\[emerg\]/ } split /\n/, slurp("$prefix/logs/error.log");
        my ($kind, $name) = $lines[-1] =~ $kinds or last;
        my $k = $name eq 'engagement_salt' ? 'salt' : $of{substr($name, 0, 1)};
        $refused{$k} = $lines[-1];
        $gen{$k}++;
    }
    is($passed, 6, "layout: the sixth reload, with no old zone left, passes");
    for my $k (qw(counters dedupe limit salt writer)) {
        ok($refused{$k}, "layout: the $k zone is refused")
            or diag(slurp("$prefix/logs/error.log"));
    }
    like($refused{counters} // '', qr/layout [0-9a-f]{8}, this module uses [0-9a-f]{8}/,
         "layout: the refusal shows both layouts");
    is(stop_nginx($pid), 0, "layout: nginx stops");
    unlike(slurp("$prefix/logs/error.log"), qr/\[alert\]|exited on signal/,
           "layout: no alert or crash");



=== TEST 8: a state file with a malformed line and a repeated one: the good lines flush exactly, nothing is orphaned
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
--- config
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my $sf = scratch_dir('state') . "/bad-lines.state";
    my $t = time;
    open my $fh, '>', $sf or die $!;
    print $fh "zone engagement 0\n",
              "c good 0 0 0 0 0 5 0 0 $t 0 0\n",
              # its one viewer hash is not hex: the whole line is bad
              "c bad 0 0 0 0 0 3 0 0 $t 0 1 zzzzzzzzzzzzzzzz\n",
              "c dup 0 0 0 0 0 4 0 0 $t 0 0\n",
              "c dup 0 0 0 0 0 4 0 0 $t 0 0\n",
              "c tail 0 0 0 0 0 2 0 0 $t 0 0\n";
    close $fh;
    my ($pid, $p, $prefix) = flush_nginx('bad-state', workers => 2,
                                         http => flush_http($rport, '4m', 'bad-lines'));
    ok($pid, "bad lines: nginx starts");
    ok(scalar(wait_until { flushed_on($p) } 10), "bad lines: everything restored is flushed");
    sleep 0.2;   # a pacing: a second flush of a repeated line would show now
    is(rviews('good'), 5, "bad lines: the good line, exactly");
    is(rviews('dup'), 4, "bad lines: the repeated line, once");
    is(rviews('tail'), 2, "bad lines: the line after them, exactly");
    is(rviews('bad'), 0, "bad lines: nothing of the malformed line");
    my (undef, $b) = http_request($p, 'GET', '/engagement/summary/bad');
    like($b, qr/"pending":0\b/, "bad lines: no orphaned pending counts");
    my $log = slurp("$prefix/logs/error.log");
    my $n = () = $log =~ /invalid line in the state file of zone "engagement" skipped/g;
    is($n, 2, "bad lines: the malformed and the repeated line are logged as skipped");
    like($log, qr/restored 3 unflushed entries/, "bad lines: three contents restored");
    is(stop_nginx($pid), 0, "bad lines: nginx stops");
    unlike(slurp("$prefix/logs/error.log"), qr/\[alert\]|exited on signal/,
           "bad lines: no alert or crash");



=== TEST 9: a zone too small for a state file's viewer hashes: the counts flush, the shortage is not "invalid"
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
--- config
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my $sf = scratch_dir('state') . "/small.state";
    my $t = time;
    open my $fh, '>', $sf or die $!;
    print $fh "zone engagement 0\n",
              "c big 0 0 0 0 0 7 0 0 $t 0 20000",
              (map { sprintf(" %016x", $_ * 7919 + 1) } 1 .. 20000), "\n";
    close $fh;
    my ($pid, $p, $prefix) = flush_nginx('small-state',
                                         http => flush_http($rport, '64k', 'small'));
    ok($pid, "small zone: nginx starts");
    ok(scalar(wait_until { rviews('big') == 7 } 10), "small zone: the content's 7 views reach Redis");
    my $log = slurp("$prefix/logs/error.log");
    like($log, qr/zone "engagement" is too small for its state file/,
         "small zone: the shortage is said as such");
    unlike($log, qr/invalid line/, "small zone: the line is not called invalid");
    is(stop_nginx($pid), 0, "small zone: nginx stops");



=== TEST 10: the viewer list of a content is bounded while Redis is down; what is left out is counted
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
--- config
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    # the test build keeps 64 viewer hashes per content and flush
    my $down = free_ports(400, 50, 1);
    my ($pid, $p, $prefix) = flush_nginx('uv-bound', module => 'test.so',
                                         http => flush_http($down, '4m', 'uv'));
    ok($pid, "uv bound: nginx (test build) starts");
    my $st = flush_views($p, map { qq({"contentId":"hot","sessionId":"s$_","viewerId":"v$_"}) } 1 .. 100);
    is($st->{202}, 100, "uv bound: every view is counted");
    my (undef, $t) = http_request($p, 'GET', '/status');
    like($t, qr/^nginx_engagement_unique_viewers_dropped_total\{zone="engagement"\} 36$/m,
         "uv bound: the 36 viewers beyond the bound are counted as dropped");
    my $rpid = start_redis($down);
    ok(scalar(wait_until { rviews_on($down, 'hot') == 100 } 10),
       "uv bound: once Redis is back, all 100 views are flushed");
    my $uv = redis_cli($down, undef, 'PFCOUNT', 'eng:{c:hot}:uv');
    ok($uv >= 60 && $uv <= 64, "uv bound: the unique count has the bounded list ($uv)");
    is(stop_nginx($pid), 0, "uv bound: nginx stops");
    stop_redis($rpid);
    unlike(slurp("$prefix/logs/error.log"), qr/\[alert\]|exited on signal/,
           "uv bound: no alert or crash");



=== TEST 11: a hot content's viewers fill a small zone while Redis is down: its views still count, never 503
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
--- config
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my $down = free_ports(400, 50, 1);
    my ($pid, $p, $prefix) = flush_nginx('uv-full',
                                         http => flush_http($down, '64k', 'uv-full'));
    ok($pid, "uv full: nginx starts");
    my $st = flush_views($p, map { qq({"contentId":"viral","sessionId":"s$_","viewerId":"v$_"}) } 1 .. 6000);
    is($st->{202}, 6000, "uv full: all 6000 views counted, none refused")
        or diag(join ' ', %$st);
    my (undef, $t) = http_request($p, 'GET', '/status');
    my ($dropped) = $t =~ /^nginx_engagement_unique_viewers_dropped_total\{zone="engagement"\} (\d+)$/m;
    ok(($dropped // 0) > 0, "uv full: the viewers the zone had no room for are counted (" . ($dropped // 'none') . ")");
    my $rpid = start_redis($down);
    ok(scalar(wait_until { rviews_on($down, 'viral') == 6000 } 10),
       "uv full: once Redis is back, all 6000 views are flushed");
    is(stop_nginx($pid), 0, "uv full: nginx stops");
    stop_redis($rpid);
    unlike(slurp("$prefix/logs/error.log"), qr/\[alert\]|exited on signal/,
           "uv full: no alert or crash");



=== TEST 12: a peer that is not Redis (an HTTP server on the port) is logged, not silent
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
--- config
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my $hport = free_ports(400, 50, 1);
    my $srv = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$hport", Listen => 16,
                                    ReuseAddr => 1) or die "listen: $!";
    my $hpid = fork() // die;
    if ($hpid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(TERM INT HUP PIPE QUIT);
        while (my $c = $srv->accept) {
            sysread($c, my $buf, 65536);
            print $c "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            close $c;
        }
        POSIX::_exit(0);
    }
    close $srv;
    my ($pid, $p, $prefix) = flush_nginx('not-redis',
                                         http => flush_http($hport, '4m', 'not-redis'));
    ok($pid, "not redis: nginx starts");
    wait_until { slurp("$prefix/logs/error.log") =~ /engagement redis: setting up/ } 5;
    my $log = slurp("$prefix/logs/error.log");
    like($log, qr/\[error\].*engagement redis: setting up the connection to 127\.0\.0\.1:$hport failed: Protocol error.*is it a Redis server\? retrying with backoff/,
         "not redis: the protocol error is logged as an error");
    ok(scalar(wait_until { (() = slurp("$prefix/logs/error.log") =~ /setting up the connection/g) >= 3 } 5),
       "not redis: each retry says it again");
    my @err = slurp("$prefix/logs/error.log") =~ /\[error\].*setting up the connection/g;
    is(scalar @err, 1, "not redis: at the error level once per outage");
    is(stop_nginx($pid), 0, "not redis: nginx stops");
    kill 'TERM', $hpid;
    waitpid($hpid, 0);



=== TEST 13: a unique count above 2^32 is shown whole
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0;
    engagement_flush_interval 50ms;
    engagement_edge_id test-edge;
    engagement_state_file $TEST_NGINX_STATE_FILE;
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    # a dense HyperLogLog whose 16384 six-bit registers all hold 30: its
    # estimate is far above 2^32 (written over a socket: it holds NULs)
    my $regs = '';
    my $bits = join '', map { scalar reverse sprintf('%06b', 30) } 1 .. 16384;
    $regs .= pack('b*', $bits);
    my $hll = "HYLL" . "\0\0\0\0" . "\0" x 7 . "\x80" . $regs;
    my $key = 'eng:{c:huge}:uv';
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$rport") or die $!;
    print $s "*3\r\n\$3\r\nSET\r\n\$" . length($key) . "\r\n$key\r\n\$" . length($hll) . "\r\n$hll\r\n";
    my $ans = <$s>;
    close $s;
    is($ans, "+OK\r\n", "huge: the HyperLogLog is stored");
    my $pf = redis_cli($rport, undef, 'PFCOUNT', $key);
    ok($pf > 4294967295, "huge: Redis counts more than 2^32 ($pf)");
    post_view($port, qq({"contentId":"huge","sessionId":"s1","viewerId":"u1"}));
    ok(scalar(wait_until { flushed_on($port) } 10), "huge: flushed");
    $pf = redis_cli($rport, undef, 'PFCOUNT', $key);
    my (undef, $b) = http_request($port, 'GET', '/engagement/summary/huge');
    like($b, qr/"uniqueViewers":$pf\b/, "huge: the summary shows Redis's count whole ($pf)");
    log_is_clean("huge");
