# Cross-edge dedupe (issue 17): engagement_dedupe_scope global. Three
# nginx edges with distinct edge ids (the test's nginx "a", and "b" and
# "c" started here from private prefixes) share a secret file, one real
# redis-server and one real clickhouse-server. The same viewer on several
# edges counts once: in Redis's totals, minute buckets and unique viewers,
# in the series by country, in ClickHouse's rows and rollups. Views wait
# for Redis to decide (answered 202, "reason":"pending"); a Redis that
# stops answering, a worker killed with kill -9 and a reload while views
# wait lose none and double none. nginx -t refuses what cannot work.
#
# The servers are ours, on free loopback ports, their data in private
# temporary directories, stopped by pid.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Engagement::ClickHouse;
use Engagement::Edges;
use Test::Nginx::Socket;
use Time::HiRes qw(sleep time);
use JSON::PP ();
use POSIX ();

if (ch_bin()) {
    Test::More::plan('no_plan');
} else {
    Test::More::plan(skip_all => 'clickhouse-server is not installed (./build.sh installs it)');
}

our $chp = free_ports(170, 15, 3);
our $chdir = scratch_dir("clickhouse-global-$chp");
our $rport = free_ports(135, 20, 1);
ch_setup(port => $chp, dir => $chdir);
$ENV{TEST_NGINX_CH_PORT} = $chp;
$ENV{TEST_NGINX_REDIS_PORT} = $rport;
$ENV{TEST_NGINX_SPOOL} = scratch_dir("spool-global-a");

# the secret every edge has (32 random bytes), and one too short
our $secret = edges_secret("global-secret");
{
    open my $fh, '>', "$secret.short" or die $!;
    print $fh "0123456789";
    close $fh;
}
$ENV{TEST_NGINX_SECRET} = $secret;

our $ch = ch_start(fresh => 1);
ch_schema();
start_redis($rport);

our $Loc = <<'_EOC_';
    location = /engagement/view { engagement view; }
    location = /engagement/analytics { engagement analytics; }
    location = /status { engagement status; }
_EOC_

edges_setup(redis => "127.0.0.1:$rport", secret => $secret, ch => $chp, loc => $Loc);
edges_blocks($ENV{TEST_NGINX_SPOOL}, 60);

sub rcli { redis_cli($rport, undef, @_) }

sub rsum_minutes {
    my ($c) = @_;
    my $sum = 0;
    for my $k (grep { length } split /\n/, rcli('KEYS', "eng:{c:$c}:m:*")) {
        $sum += rcli('HGET', $k, 'views') || 0;
    }
    return $sum;
}

# every edge drained, then the content's Redis total, buckets, CH rows
sub exact {
    my ($c, $n, $what, @ports) = @_;
    ok(wait_until(sub { !grep { !drained($_) } @ports }, 30), "$what: every edge drained");
    is(rcli('HGET', "eng:{c:$c}", 'views'), $n, "$what: Redis total of $c is $n");
    is(rsum_minutes($c), $n, "$what: the minute buckets of $c add up to $n");
    is(ch("SELECT sum(views) FROM eng.events FINAL WHERE content_id = '$c'"), $n,
       "$what: ClickHouse's rows of $c count $n views");
    is(ch("SELECT sum(views) FROM eng.views_minute WHERE content_id = '$c'"), $n,
       "$what: the minute rollup of $c: $n");
}

run_tests();

stop_edges();
stop_redis(redis_pid($rport));
ch_stop($ch);

__DATA__

=== TEST 1: three edges in the global scope: one viewer on three edges is one view, in Redis's totals, buckets and uniques, the series, ClickHouse's rows and rollups
--- timeout: 90
--- no_error_log
[error]
[alert]
exited on signal
AddressSanitizer
runtime error
--- post_check
    my @ports = (nginx_port(), start_edge('b', 2170), start_edge('c', 2190));
    edges_ready('Redis', @ports);
    my @countries = qw(US DE JP BR);
    my (%exp, %by_country, %uniq);
    my ($sent, $pending, $dups) = (0, 0, 0);
    my $t0 = time;
    # 240 first views: content g<i % 4>, session s<i>, edge i % 3
    for my $i (0 .. 239) {
        my $c = 'g' . ($i % 4);
        my $country = $countries[$i % 4];
        my ($st, $b) = view($ports[$i % 3], $c, "s$i", $country);
        $sent++;
        if ($st == 202 && $b =~ /"counted":false,"reason":"pending"/) {
            $pending++;
            $exp{$c}++;
            $uniq{$c}{"s$i"} = 1;
            $by_country{$country}++;
        }
    }
    is($pending, 240, "240 first views answered 202, pending");
    # 40 repeats on the edge that took the first: duplicates there
    for my $i (map { $_ * 6 } 0 .. 39) {
        my ($st, $b) = view($ports[$i % 3], 'g' . ($i % 4), "s$i", 'US');
        $sent++;
        $dups++ if $st == 200 && $b =~ /"counted":false,"reason":"duplicate"/;
    }
    is($dups, 40, "40 repeats on the same edge: duplicates at once");
    # (the first views decided first: a repeat on another edge while the
    # first still waits may be decided before it, and count in its place,
    # with its country)
    ok(wait_until(sub { !grep { !drained($_) } @ports }, 30), "the first views are decided");
    # 30 of the first viewers again, each on another edge: Redis says duplicate
    for my $i (0 .. 29) {
        my ($st, $b) = view($ports[($i + 1) % 3], 'g' . ($i % 4), "s$i", 'JP');
        $sent++;
        $pending++ if $st == 202 && $b =~ /"reason":"pending"/;
    }
    is($pending, 270, "the 30 viewers seen on another edge wait for Redis too");
    # 10 viewers on all three edges
    my $ans = same_viewers('shared', 10, @ports);
    $sent += 30;
    is($ans->{pending}, 30, "10 viewers on 3 edges: 30 answers pending") or diag(Test::More::explain($ans));
    $exp{shared} = 10;
    $by_country{DE} += 10;
    $uniq{shared}{$_} = 1 for map { "shared-v$_" } 1 .. 10;
    ok(wait_until(sub { !grep { !drained($_) } @ports }, 30),
       "every edge has decided, flushed to Redis and shipped to ClickHouse");
    my $total = 0;
    for my $c (sort keys %exp) {
        is(rcli('HGET', "eng:{c:$c}", 'views'), $exp{$c}, "Redis total of $c: $exp{$c}");
        is(rsum_minutes($c), $exp{$c}, "the minute buckets of $c add up to $exp{$c}");
        my $n = scalar keys %{ $uniq{$c} };
        my $u = rcli('PFCOUNT', "eng:{c:$c}:uv");
        ok(abs($u - $n) <= 1, "unique viewers of $c across the edges: $u (sent $n, within a HyperLogLog's error)");
        $total += $exp{$c};
    }
    # the figures of the edges: decided counted and duplicate
    my ($counted, $gdup) = (0, 0);
    for my $p (@ports) {
        $counted += metric($p, 'nginx_engagement_global_dedupe_decided_total\{outcome="counted"\}') // 0;
        $gdup += metric($p, 'nginx_engagement_global_dedupe_decided_total\{outcome="duplicate"\}') // 0;
    }
    is($counted, $total, "the edges counted $total views after Redis decided");
    is($gdup, 50, "and filed 50 as another edge's (30 + 20 of the shared viewers)");
    # the series by country, read through each edge
    my $from = int($t0) - 120;
    my $to = int(time) + 60;
    for my $p (@ports) {
        my ($st, $b) = http_request($p, 'GET',
            "/engagement/analytics?scope=all&from=$from&to=$to&step=hour&by=country");
        is($st, 200, "analytics by country on port $p") or diag($b);
        my $j = eval { JSON::PP::decode_json($b) } || {};
        for my $k (sort keys %by_country) {
            my $got = 0;
            $got += $_->{views} for @{ $j->{series}{$k} || [] };
            is($got, $by_country{$k}, "analytics on port $p: country $k has $by_country{$k} views");
        }
    }
    # ClickHouse: every event once; the counted ones, the rollups
    is(ch("SELECT count() FROM eng.events FINAL"), $sent, "ClickHouse has each of the $sent events once");
    is(ch("SELECT uniqExact(edge) FROM eng.events"), 3, "rows from three edges");
    is(ch("SELECT sum(views) FROM eng.events FINAL"), $total, "their views add up to $total");
    is(ch("SELECT count() FROM eng.events FINAL WHERE reason = 'duplicate'"), 90,
       "90 rows say duplicate (40 on one edge, 50 across edges)");
    for my $c (sort keys %exp) {
        is(ch("SELECT sum(views) FROM eng.views_minute WHERE content_id = '$c'"), $exp{$c},
           "the minute rollup of $c: $exp{$c}");
    }
    is(ch("SELECT sum(events) FROM eng.views_minute"), $sent, "the rollup saw every event once");

=== TEST 2: Redis stops answering while views wait (SIGSTOP past the timeout): the rounds are sent again and answered as before, each view counted once
--- post_check
    my @ports = (nginx_port(), $Edge{b}, $Edge{c});
    edges_ready('Redis', @ports);
    my $resent0 = 0;
    $resent0 += metric($_, 'nginx_engagement_global_dedupe_resent_total') // 0 for @ports;
    # a first view of each viewer on one edge, taken into a round, then
    # Redis stops with the round in its socket
    kill 'STOP', redis_pid($rport);
    my $ans = same_viewers('paused', 12, @ports);
    is($ans->{pending}, 36, "12 viewers on 3 edges while Redis is stopped: 36 answers pending")
        or diag(Test::More::explain($ans));
    sleep 2.5;
    kill 'CONT', redis_pid($rport);
    exact('paused', 12, 'after Redis answers again', @ports);
    my $resent = 0;
    $resent += metric($_, 'nginx_engagement_global_dedupe_resent_total') // 0 for @ports;
    ok($resent > $resent0, "rounds were sent again (" . ($resent - $resent0) . ")");

=== TEST 3: both workers of an edge killed with kill -9 while their rounds wait on a stopped Redis: the new workers send them again, each view counted once
--- post_check
    my @ports = (nginx_port(), $Edge{b}, $Edge{c});
    my $pb = $Edge{b};
    kill 'STOP', redis_pid($rport);
    my $ans = same_viewers('killed', 10, @ports);
    is($ans->{pending}, 30, "10 viewers on 3 edges: 30 answers pending") or diag(Test::More::explain($ans));
    sleep 0.5;
    my @w = worker_pids($Master{b});
    is(scalar(@w), 2, "edge b has two workers");
    kill 'KILL', @w;
    my %old = map { $_ => 1 } @w;
    ok(wait_until(sub { my @n = worker_pids($Master{b}); @n == 2 && !grep { $old{$_} } @n }, 10),
       "edge b's master started two new workers");
    kill 'CONT', redis_pid($rport);
    exact('killed', 10, 'after the kill', @ports);

=== TEST 4: edge b reloaded while its views wait on a stopped Redis: counted once after
--- post_check
    my @ports = (nginx_port(), $Edge{b}, $Edge{c});
    kill 'STOP', redis_pid($rport);
    my $ans = same_viewers('reloaded', 10, @ports);
    is($ans->{pending}, 30, "10 viewers on 3 edges: 30 answers pending") or diag(Test::More::explain($ans));
    my $logpos = length(slurp("$Prefix{b}/logs/error.log"));
    kill 'HUP', $Master{b};
    sleep 1;
    kill 'CONT', redis_pid($rport);
    exact('reloaded', 10, 'after the reload', @ports);
    unlike(substr(slurp("$Prefix{b}/logs/error.log"), $logpos), qr/\[alert\]|\[emerg\]|AddressSanitizer/,
           "edge b's log since the reload has no alert");

=== TEST 5: edge c stopped (QUIT) while its views wait on a stopped Redis that answers again before the exit deadline: its exiting workers decide them, the stop saves the counts, and the restarted edge flushes them: counted once
--- post_check
    my @ports = (nginx_port(), $Edge{b}, $Edge{c});
    kill 'STOP', redis_pid($rport);
    my $ans = same_viewers('stopped', 10, $Edge{c}, $Edge{b});
    is($ans->{pending}, 20, "10 viewers on edges c and b: 20 answers pending") or diag(Test::More::explain($ans));
    my $logpos = length(slurp("$Prefix{c}/logs/error.log"));
    my $pid = $Master{c};
    kill 'QUIT', $pid;
    sleep 0.5;
    kill 'CONT', redis_pid($rport);
    ok(wait_until(sub { waitpid($pid, POSIX::WNOHANG()) == $pid }, 15), "edge c stopped");
    my $log = substr(slurp("$Prefix{c}/logs/error.log"), $logpos);
    unlike($log, qr/\[alert\]|\[emerg\]|AddressSanitizer/, "edge c's stop logged no alert");
    # the same prefix again: the state file gives back what was not flushed
    @Pids = grep { $_ != $pid } @Pids;
    my $p = $Edge{c};
    my $npid = start_nginx($Prefix{c}, $p) or die "edge c did not start again";
    push @Pids, $npid;
    $Master{c} = $npid;
    exact('stopped', 10, 'after the stop and a start', @ports);

=== TEST 6: global without a secret
--- http_config
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    engagement_dedupe_scope global;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
"engagement_dedupe_scope global" needs secret=<file>: the same file of random bytes on every edge

=== TEST 7: a secret file too short
--- http_config
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    engagement_dedupe_scope global secret=$TEST_NGINX_SECRET.short;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
must hold 16 to 4096 bytes (e.g. made with "head -c 32 /dev/urandom"), it has 10

=== TEST 8: a secret file that is not there
--- http_config
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    engagement_dedupe_scope global secret=$TEST_NGINX_SECRET.none;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
"engagement_dedupe_scope": the secret file

=== TEST 9: global without engagement_redis
--- http_config
    engagement_dedupe_scope global secret=$TEST_NGINX_SECRET;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
"engagement_dedupe_scope global" needs "engagement_redis": the edges decide duplicates there

=== TEST 10: a scope that is neither edge nor global
--- http_config
    engagement_dedupe_scope planet;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
"engagement_dedupe_scope" is "edge" or "global", not "planet"

=== TEST 11: a zone too small
--- http_config
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    engagement_dedupe_scope global secret=$TEST_NGINX_SECRET size=8k;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
"engagement_dedupe_scope": invalid "size=8k": at least 64k

=== TEST 12: a batch out of range
--- http_config
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    engagement_dedupe_scope global secret=$TEST_NGINX_SECRET batch=0;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
"engagement_dedupe_scope": invalid "batch=0": 1 to 512

=== TEST 13: an unknown parameter
--- http_config
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    engagement_dedupe_scope global secret=$TEST_NGINX_SECRET zone=x;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
"engagement_dedupe_scope": unknown parameter "zone=x"

=== TEST 14: the edge scope takes no parameters
--- http_config
    engagement_dedupe_scope edge secret=$TEST_NGINX_SECRET;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
"engagement_dedupe_scope edge" takes no parameters
