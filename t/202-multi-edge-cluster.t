# The multi-edge simulation on a Redis Cluster (issue 17): three nginx
# edges with distinct edge ids (the test's nginx "a", and "b" and "c"
# started here from private prefixes) in the global dedupe scope, on one
# Redis Cluster of six real redis-server processes (3 masters, 3
# replicas; t/lib/Engagement/Cluster.pm) and one real clickhouse-server,
# fed round-robin. Views of many contents (over every master) and the
# same viewers on several edges: Redis's totals, minute buckets and
# unique viewers, ClickHouse's rows and rollups are exact. Then a master
# is killed (kill -9) while views wait for Redis's decision, its replica
# promoted: 0 lost, 0 doubled, every repeat filed as a duplicate.
#
# The servers are ours, on free loopback ports, their data in private
# temporary directories, stopped by pid.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Engagement::ClickHouse;
use Engagement::Cluster;
use Engagement::Edges;
use Test::Nginx::Socket;
use Time::HiRes qw(sleep time);
use JSON::PP ();

if (ch_bin()) {
    Test::More::plan('no_plan');
} else {
    Test::More::plan(skip_all => 'clickhouse-server is not installed (./build.sh installs it)');
}

BEGIN { $ENV{TEST_NGINX_PORT} //= 1984 }
our $chp = free_ports(180, 15, 3);
our $chdir = scratch_dir("clickhouse-gcluster-$chp");
ch_setup(port => $chp, dir => $chdir);
$ENV{TEST_NGINX_SPOOL} = scratch_dir("spool-gcluster-a");

our $secret = edges_secret("gcluster-secret");

our $ch = ch_start(fresh => 1);
ch_schema();
cluster_create('gcluster', 320);

our $Loc = <<'_EOC_';
    location = /engagement/view { engagement view; }
    location = /engagement/analytics { engagement analytics; }
    location = /status { engagement status; }
_EOC_

# wait=1: a round's decisions are on a replica before an edge takes them
edges_setup(redis => "cluster $ENV{TEST_NGINX_CLUSTER} wait=1 wait_timeout=200ms",
            secret => $secret, ch => $chp, loc => $Loc, tag => 'gcluster');
edges_blocks($ENV{TEST_NGINX_SPOOL}, 120);

sub rviews {
    my ($c) = @_;
    my $v = ccli(alive(), 'HGET', "eng:{c:$c}", 'views');
    return $v =~ /^\d+$/ ? $v : 0;
}

# the content's views in the minute buckets, read back through the edge
# at $p (/engagement/analytics reads them from the cluster)
sub bucket_views {
    my ($p, $c, $from) = @_;
    my ($st, $b) = http_request($p, 'GET',
        "/engagement/analytics?contentId=$c&metric=views&step=minute&from=$from");
    my $j = $st && $st == 200 ? eval { JSON::PP::decode_json($b) } : undef;
    return $j ? $j->{total}{views} // 0 : "$st $b";
}

sub all_drained {
    my @ports = @_;
    return wait_until(sub { !grep { !drained($_) } @ports }, 40);
}

# every content of %want exact in Redis, its buckets and ClickHouse
sub exact {
    my ($what, $from, $p, %want) = @_;
    my (@redis, @buckets, @rows, @rollup);
    my $total = 0;
    my %ch_rows = map { split /\t/ } split /\n/,
        ch("SELECT content_id, sum(views) FROM eng.events FINAL GROUP BY content_id");
    my %ch_roll = map { split /\t/ } split /\n/,
        ch("SELECT content_id, sum(views) FROM eng.views_minute GROUP BY content_id");
    for my $c (sort keys %want) {
        $total += $want{$c};
        push @redis, "$c: " . rviews($c) if rviews($c) != $want{$c};
        my $bv = bucket_views($p, $c, $from);
        push @buckets, "$c: $bv" if $bv ne $want{$c};
        push @rows, "$c: " . ($ch_rows{$c} // 0) if ($ch_rows{$c} // 0) != $want{$c};
        push @rollup, "$c: " . ($ch_roll{$c} // 0) if ($ch_roll{$c} // 0) != $want{$c};
    }
    my $n = keys %want;
    is("@redis", '', "$what: Redis's totals of the $n contents are exact ($total views)");
    is("@buckets", '', "$what: their minute buckets, read through the cluster, add up");
    is("@rows", '', "$what: ClickHouse's rows count each view once");
    is("@rollup", '', "$what: the minute rollup too");
    return $total;
}

sub decided {
    my ($outcome, @ports) = @_;
    my $n = 0;
    $n += metric($_, "nginx_engagement_global_dedupe_decided_total\\{outcome=\"$outcome\"\\}") // 0
        for @ports;
    return $n;
}

run_tests();

stop_edges();
cluster_stop();
ch_stop($ch);

__DATA__

=== TEST 1: three edges, one Redis Cluster, one ClickHouse: views of 24 contents over every master, repeats on the same edge and on others, the same viewers on all three edges: every figure exact
--- timeout: 120
--- no_error_log
[error]
[alert]
exited on signal
AddressSanitizer
runtime error
--- post_check
    my @ports = (nginx_port(), start_edge('b', 2230), start_edge('c', 2250));
    edges_ready('the cluster', @ports);
    my $from = int(time) - 120;
    my (%want, %uniq);
    my ($sent, $pending, $dups) = (0, 0, 0);
    # 240 first views, round-robin: content m<i % 24>, viewer s<i>
    for my $i (0 .. 239) {
        my $c = 'm' . ($i % 24);
        my ($st, $b) = view($ports[$i % 3], $c, "s$i");
        $sent++;
        if ($st == 202 && $b =~ /"reason":"pending"/) {
            $pending++;
            $want{$c}++;
            $uniq{$c}{"s$i"} = 1;
        }
    }
    is($pending, 240, "240 first views answered 202, pending");
    # 36 repeats on the edge that took the first: duplicates at once
    for my $i (map { $_ * 6 } 0 .. 35) {
        my ($st, $b) = view($ports[$i % 3], 'm' . ($i % 24), "s$i");
        $sent++;
        $dups++ if $st == 200 && $b =~ /"reason":"duplicate"/;
    }
    is($dups, 36, "36 repeats on the same edge: duplicates there");
    # 48 of the first viewers on another edge: Redis decides
    my $cross = 0;
    for my $i (0 .. 47) {
        my ($st, $b) = view($ports[($i + 1) % 3], 'm' . ($i % 24), "s$i");
        $sent++;
        $cross++ if $st == 202 && $b =~ /"reason":"pending"/;
    }
    is($cross, 48, "48 viewers seen on another edge wait for Redis");
    # 6 viewers of each of 4 contents on all three edges
    for my $k (0 .. 3) {
        my $ans = same_viewers("shared$k", 6, @ports);
        $sent += 18;
        is($ans->{pending}, 18, "shared$k: 6 viewers on 3 edges, 18 answers pending")
            or diag(Test::More::explain($ans));
        $want{"shared$k"} = 6;
        $uniq{"shared$k"}{$_} = 1 for map { "shared$k-v$_" } 1 .. 6;
    }
    ok(all_drained(@ports), "every edge has decided, flushed to the cluster and shipped to ClickHouse");
    my $total = exact('global on the cluster', $from, $ports[1], %want);
    is($total, 264, "264 views counted of $sent events");
    is(decided('counted', @ports), $total, "the edges counted $total views after Redis decided");
    is(decided('duplicate', @ports), 48 + 4 * 12, "and filed 96 as another edge's (48 + 4 x 12)");
    my @off;
    for my $c (sort keys %uniq) {
        my $n = scalar keys %{ $uniq{$c} };
        my $u = ccli(alive(), 'PFCOUNT', "eng:{c:$c}:uv");
        push @off, "$c: $u/$n" if abs($u - $n) > 1;
    }
    is("@off", '', "unique viewers of each content across the edges (one HyperLogLog each, within its error)");
    # the contents' slots over every master
    my %bymaster;
    my %m = masters();
    for my $c (keys %want) {
        for my $mp (values %m) {
            $bymaster{$mp}++ if redis_cli($mp, undef, 'EXISTS', "eng:{c:$c}") eq '1';
        }
    }
    is(scalar(keys %bymaster), 3, "the contents are on all three masters ("
       . join(', ', map { "$_: $bymaster{$_}" } sort keys %bymaster) . ")");
    is(ch("SELECT count() FROM eng.events FINAL"), $sent, "ClickHouse has each of the $sent events once");
    is(ch("SELECT uniqExact(edge) FROM eng.events"), 3, "rows from three edges");
    is(ch("SELECT count() FROM eng.events FINAL WHERE reason = 'duplicate'"), 36 + 96,
       "132 rows say duplicate (36 on one edge, 96 across edges)");
    is(ch("SELECT sum(events) FROM eng.views_minute"), $sent, "the rollup saw every event once");

=== TEST 2: a master killed (kill -9) while views of its contents wait for Redis's decision, its replica promoted: 0 lost, 0 doubled, every repeat a duplicate
--- post_check
    my @ports = (nginx_port(), $Edge{b}, $Edge{c});
    edges_ready('the cluster', @ports);
    my $from = int(time) - 120;
    my $counted0 = decided('counted', @ports);
    my $dup0 = decided('duplicate', @ports);
    # one viewer of each of 30 contents, decided and flushed
    my %want;
    for my $k (1 .. 30) {
        my ($st) = view($ports[$k % 3], "f$k", "f$k-first");
        $want{"f$k"} = 1 if $st == 202;
    }
    is(scalar(keys %want), 30, "30 first views pending");
    ok(all_drained(@ports), "decided and flushed");
    my %m = masters();
    my $victim = $m{ (sort keys %m)[0] };
    my @on = grep { redis_cli($victim, undef, 'EXISTS', "eng:{c:$_}") eq '1' } sort keys %want;
    ok(@on >= 3 && @on < 30, scalar(@on) . " of the 30 contents on the master to kill");
    my ($replica) = map { /:(\d+)/ } grep { (split / /)[3] eq (sort keys %m)[0] }
        split /\n/, redis_cli(alive(), undef, 'CLUSTER', 'NODES');
    ok($replica, "the victim $victim has a replica ($replica)");
    my $t0 = time;
    cnode_kill($victim, 'KILL');
    # 3 viewers of each content on all three edges, and the first viewer
    # again on each edge: those of the dead master's slots wait
    my %ans;
    for my $c (sort keys %want) {
        my $a = same_viewers($c, 3, @ports);
        $ans{$_} += $a->{$_} for keys %$a;
        $want{$c} += 3;
        for my $p (@ports) {
            my ($st, $b) = view($p, $c, "$c-first");
            my $k = $st == 202 && $b =~ /"reason":"pending"/ ? 'pending'
                  : $st == 200 && $b =~ /"reason":"duplicate"/ ? 'duplicate' : "$st $b";
            $ans{$k}++;
        }
    }
    is(($ans{pending} // 0) + ($ans{duplicate} // 0), 360, "360 answers during the failover, pending or duplicate")
        or diag(Test::More::explain(\%ans));
    # the old master starts again (empty) only once its replica is master:
    # back before that, it would come back as the master of its slots
    ok(wait_until(sub { redis_cli($replica, undef, 'ROLE') =~ /^master/ && cluster_ok() }, 20),
       "the replica was promoted");
    my $promoted = time - $t0;
    cnode_start($victim);
    ok(all_drained(@ports), sprintf("every edge drained (promoted after %.1f s)", $promoted));
    my $total = exact('after the failover', $from, $ports[2], %want);
    is($total, 120, "120 views of 30 contents: 0 lost, 0 doubled");
    is(decided('counted', @ports) - $counted0, 120, "the edges counted 120 after Redis decided");
    # repeats: 2 of each 3-edge viewer, and the first viewer on 3 edges
    is(decided('duplicate', @ports) - $dup0 + ($ans{duplicate} // 0), 30 * (3 * 2 + 3),
       "270 repeats, each a duplicate (decided by Redis, or at once by the edge that had it)");
