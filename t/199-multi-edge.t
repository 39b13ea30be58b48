# A multi-edge simulation (issue 17): three nginx edges with distinct edge
# ids (the test's nginx "a", and "b" and "c" started here from private
# prefixes) on one real redis-server and one real clickhouse-server, fed
# by a round-robin client. The totals, the minute buckets, the series by
# country (read through /engagement/analytics on any edge), the unique
# viewers and the ClickHouse rows and rollups are exact: each equals what
# the client sent, whatever edge took it. A repeat on the same edge is a
# duplicate; in the edge dedupe scope (the only one today) the same viewer
# on another edge counts there too, as documented.
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

if (ch_bin()) {
    Test::More::plan('no_plan');
} else {
    Test::More::plan(skip_all => 'clickhouse-server is not installed (./build.sh installs it)');
}

our $chp = free_ports(160, 15, 3);
our $chdir = scratch_dir("clickhouse-multi-$chp");
our $rport = free_ports(120, 20, 1);
ch_setup(port => $chp, dir => $chdir);
$ENV{TEST_NGINX_CH_PORT} = $chp;
$ENV{TEST_NGINX_REDIS_PORT} = $rport;
$ENV{TEST_NGINX_SPOOL} = scratch_dir("spool-multi-a");

our $ch = ch_start(fresh => 1);
ch_schema();
start_redis($rport);

master_on();
workers(2);
log_level('info');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

our $Loc = <<'_EOC_';
    location = /engagement/view { engagement view; }
    location = /engagement/analytics { engagement analytics; }
    location = /status { engagement status; }
_EOC_

edges_setup(redis => "127.0.0.1:$rport", ch => $chp, loc => $Loc, tag => 'multi');

sub rcli { redis_cli($rport, undef, @_) }

sub rsum_minutes {
    my ($c) = @_;
    my $sum = 0;
    for my $k (grep { length } split /\n/, rcli('KEYS', "eng:{c:$c}:m:*")) {
        $sum += rcli('HGET', $k, 'views') || 0;
    }
    return $sum;
}

run_tests();

stop_edges();
stop_redis(redis_pid($rport));
ch_stop($ch);

__DATA__

=== TEST 1: three edges, one Redis, one ClickHouse: totals, minute buckets, series by country, unique viewers, ClickHouse rows and rollups all equal what the round-robin client sent
--- http_config eval
main::edge_http('edge-a', $ENV{TEST_NGINX_SPOOL})
--- config eval
$::Loc
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- timeout: 60
--- no_error_log
[error]
[alert]
exited on signal
AddressSanitizer
runtime error
--- post_check
    my @ports = (nginx_port(), start_edge('b', 2160), start_edge('c', 2180));
    edges_ready('Redis', @ports);
    my @countries = qw(US DE JP BR);
    my (%exp, %uniq, %by_country);
    my ($sent, $counted, $dups) = (0, 0, 0);
    my $t0 = time;
    # 360 first views: content m<i % 6>, session s<i>, edge i % 3
    for my $i (0 .. 359) {
        my $c = 'm' . ($i % 6);
        my $country = $countries[$i % 4];
        my ($st, $b) = view($ports[$i % 3], $c, "s$i", $country);
        $sent++;
        if ($st == 202 && $b =~ /"counted":true/) {
            $counted++;
            $exp{$c}++;
            $uniq{$c}{"s$i"} = 1;
            $by_country{$country}++;
        }
    }
    is($counted, 360, "360 first views answered counted");
    # 60 repeats, each on the edge that took the first: duplicates
    for my $i (map { $_ * 6 } 0 .. 59) {
        my ($st, $b) = view($ports[$i % 3], 'm' . ($i % 6), "s$i", 'US');
        $sent++;
        $dups++ if $st == 200 && $b =~ /"counted":false,"reason":"duplicate"/;
    }
    is($dups, 60, "60 repeats on the same edge are duplicates, not counted");
    # edge scope: one viewer on the three edges counts on each
    my $shared = 0;
    for my $j (0 .. 7) {
        for my $p (@ports) {
            my ($st, $b) = view($p, 'shared', "v$j", 'DE');
            $sent++;
            $shared++ if $st == 202 && $b =~ /"counted":true/;
        }
    }
    is($shared, 24, "8 viewers on 3 edges: 24 views in the edge scope");
    $exp{shared} = 24;
    $by_country{DE} += 24;
    ok(wait_until(sub { !grep { !drained($_) } @ports }, 30),
       "every edge has flushed to Redis and shipped to ClickHouse");
    my $total = 0;
    for my $c (sort keys %exp) {
        is(rcli('HGET', "eng:{c:$c}", 'views'), $exp{$c}, "Redis total of $c: $exp{$c}");
        is(rsum_minutes($c), $exp{$c}, "the minute buckets of $c add up to $exp{$c}");
        $total += $exp{$c};
    }
    for my $c (map { "m$_" } 0 .. 5) {
        my $n = scalar keys %{ $uniq{$c} };
        my $u = rcli('PFCOUNT', "eng:{c:$c}:uv");
        ok(abs($u - $n) <= 1, "unique viewers of $c: $u (sent $n, within a HyperLogLog's error)");
    }
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
        is(scalar(keys %{ $j->{series} || {} }), scalar(keys %by_country), "no other country");
    }
    # ClickHouse: every event once, counted ones per content, the rollup
    is(ch("SELECT count() FROM eng.events FINAL"), $sent, "ClickHouse has each of the $sent events once");
    is(ch("SELECT uniqExact(edge) FROM eng.events"), 3, "rows from three edges");
    is(ch("SELECT sum(views) FROM eng.events FINAL"), $total, "their views add up to $total");
    for my $c (sort keys %exp) {
        is(ch("SELECT sum(views) FROM eng.views_minute WHERE content_id = '$c'"), $exp{$c},
           "the minute rollup of $c: $exp{$c}");
    }
    is(ch("SELECT sum(events) FROM eng.views_minute"), $sent, "the rollup saw every event once");
