# Creator milestones on a Redis Cluster (engagement_redis cluster ... with
# engagement_milestone, _publish and _webhook): a real cluster of six
# redis-server processes (3 masters, 3 replicas, cluster-node-timeout
# 1000 ms, cluster-require-full-coverage no) made with redis-cli
# --cluster create, two edges (nginx "a", the test's, and "b", started
# here), an HTTP sink of our own for the webhook, and a redis-cli
# SUBSCRIBE recording the PUBLISHes. The content's script records a
# crossing in its slot's pending hash eng:ms:out:{<tag>}; the workers move
# it to the stream (slot of eng:milestones), the PUBLISH and the outbox
# (slot of {ms}), each guarded, then remove it (milestone_fwd.c). So:
# - views and likes of 30 contents over all masters, from both edges at
#   once: each threshold in exactly one stream entry, each notification
#   PUBLISHed once and POSTed once, nothing left pending (block 1);
# - a notification moved again (a worker lost between the steps, its
#   pending entry left behind): no second entry, PUBLISH or POST (2);
# - the master of the stream's slot killed (kill -9) while thresholds are
#   crossed: the notifications wait pending and arrive once after the
#   promotion (3).
# Servers are stopped by pid.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Engagement::Cluster;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use JSON::PP;
use POSIX ();

our $port = nginx_port();

master_on();
workers(2);
log_level('info');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

# --- the cluster (t/lib/Engagement/Cluster.pm) ---------------------------

BEGIN { $ENV{TEST_NGINX_PORT} //= 1984 }
cluster_create('mscluster', 300);

# --- the HTTP sink: records each POST's Idempotency-Key, answers 200 ----

our $SinkPort = free_ports(500, 50, 1);
$ENV{TEST_NGINX_SINK_PORT} = $SinkPort;
our $SinkDir = scratch_dir('mscluster-sink');
our ($SinkPid, $SubPid, $BPid, $BPort);

sub start_sink {
    unlink "$SinkDir/ready", "$SinkDir/log";
    my $pid = fork() // die;
    if ($pid == 0) {
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
            $body //= '';
            my ($len) = ($head // '') =~ /^Content-Length:\s*(\d+)/mi;
            while (length($body) < ($len // 0)) {
                my $n = sysread($c, $body, $len - length $body, length $body);
                last unless $n;
            }
            my ($key) = ($head // '') =~ /^Idempotency-Key:\s*(\S+)/mi;
            open my $fh, '>>', "$SinkDir/log";
            print $fh ($key // ''), "\t$body\n";
            close $fh;
            print $c "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            close $c;
        }
    }
    $SinkPid = $pid;
    wait_until { -e "$SinkDir/ready" } 5 or die "the sink did not start";
}

# (id => body) of the POSTs, and the count of POSTs
sub posts {
    my (%b, $n);
    for (split /\n/, slurp("$SinkDir/log")) {
        my ($k, $body) = split /\t/, $_, 2;
        $b{$k} = $body;
        $n++;
    }
    return ($n // 0, %b);
}

# PUBLISHes reach every node's subscribers in a cluster: one node heard
sub start_sub {
    my $pid = fork() // die;
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM PIPE HUP QUIT CHLD ALRM);
        open STDOUT, '>', "$SinkDir/sub" or POSIX::_exit(2);
        exec('redis-cli', '-p', $cports[2], 'SUBSCRIBE', 'ms:pub') or POSIX::_exit(127);
    }
    $SubPid = $pid;
}

sub published { grep { /^\{/ } split /\n/, slurp("$SinkDir/sub") }

sub start_b {
    my $prefix = new_prefix('mscluster-b');
    $BPort = free_ports(450, 50, 1);
    write_conf($prefix, port => $BPort, workers => 2, http => qq(
    engagement_zone engagement:4m;
    engagement_redis cluster $ENV{TEST_NGINX_CLUSTER} timeout=500ms connect_timeout=300ms backoff=50ms:200ms buckets=0 uniques=0 wait=1 wait_timeout=200ms;
    engagement_series_zone off;
    engagement_flush_interval 50ms;
    engagement_edge_id edge-b;
    engagement_milestone views 3 6 10;
    engagement_milestone likes 2;
    engagement_milestone_publish ms:pub rate=100000;
    engagement_milestone_webhook http://127.0.0.1:$SinkPort/hook timeout=1s connect_timeout=500ms;
), server => q(
    location = /engagement/view { engagement view; }
    location = /engagement/like { engagement like; }
));
    $BPid = start_nginx($prefix, $BPort) or die "edge b did not start";
    return $prefix;
}

END {
    stop_nginx($BPid) if $BPid;
    for my $p ($SinkPid, $SubPid) {
        next unless $p;
        kill 'TERM', $p;
        waitpid($p, 0);
    }
    cnode_kill($_) for keys %cpid;
}

sub view {
    my ($p, $c, $s) = @_;
    my ($st) = http_request($p, 'POST', '/engagement/view',
        qq({"contentId":"$c","sessionId":"$s","viewerId":"v$s"}),
        'Content-Type' => 'application/json');
    return $st;
}

sub like_req {
    my ($p, $c, $u) = @_;
    my ($st) = http_request($p, 'POST', '/engagement/like',
        qq({"contentId":"$c","userId":"$u"}), 'Content-Type' => 'application/json');
    return $st;
}

# the stream's entries' JSON, decoded
sub stream {
    my @e;
    for (split /\n/, ccli(alive(), 'XRANGE', 'eng:milestones', '-', '+')) {
        push @e, decode_json($_) if /^\{/;
    }
    return @e;
}

# Redis Cluster's CRC16 (XMODEM), and a slot's tag as cluster_map.c makes
# it: the first of [0-9a-z]{1,4}, shortest first, in that slot
sub crc16 {
    my $crc = 0;
    for my $c (unpack 'C*', shift) {
        $crc ^= $c << 8;
        for (1 .. 8) {
            $crc = ($crc & 0x8000) ? (($crc << 1) ^ 0x1021) : ($crc << 1);
            $crc &= 0xffff;
        }
    }
    return $crc;
}

sub slot_tag {
    my ($slot) = @_;
    my @d = (0 .. 9, 'a' .. 'z');
    for my $len (1 .. 4) {
        for my $i (0 .. 36 ** $len - 1) {
            my ($s, $v) = ('', $i);
            for (1 .. $len) { $s = $d[$v % 36] . $s; $v = int($v / 36) }
            return $s if (crc16($s) & 16383) == $slot;
        }
    }
    return undef;
}

# the pending notifications left in every master
sub pending {
    my $n = 0;
    for my $p (values %{{masters()}}) {
        for my $k (split /\n/, redis_cli($p, undef, 'KEYS', 'eng:ms:out:*')) {
            $n += redis_cli($p, undef, 'HLEN', $k);
        }
    }
    return $n;
}

# every threshold wanted is in the stream and POSTed
sub covered {
    my (%want) = @_;
    my %seen;
    for my $e (stream()) {
        $seen{"$e->{contentId}:$e->{metric}:$_"} = 1 for @{ $e->{crossed} };
    }
    my ($n, %posts) = posts();
    my %posted = map { my ($c, $m) = /^(.*):(\w+):\d+$/; ("$c:$m" => 1) } keys %posts;
    for my $cm (keys %want) {
        return 0 unless $posted{$cm};
        for (@{ $want{$cm} }) { return 0 unless $seen{"$cm:$_"} }
    }
    return 1;
}

# checks the stream, the POSTs and the PUBLISHes against the thresholds
# the contents were taken across (want: "content:metric" => [thresholds])
sub check_once {
    my ($tag, %want) = @_;
    my @e = grep { exists $want{"$_->{contentId}:$_->{metric}"} } stream();
    my (%seen, $twice, @wrong);
    for my $e (@e) {
        $seen{"$e->{contentId}:$e->{metric}:$_"}++ for @{ $e->{crossed} };
    }
    my $expect = 0;
    for my $cm (sort keys %want) {
        for my $t (@{ $want{$cm} }) {
            $expect++;
            push @wrong, "$cm:$t x" . ($seen{"$cm:$t"} // 0) if ($seen{"$cm:$t"} // 0) != 1;
        }
    }
    is(scalar(@wrong), 0, "$tag: each of the $expect thresholds in exactly one stream entry ("
       . scalar(@e) . " entries)") or diag("@wrong[0 .. ($#wrong < 9 ? $#wrong : 9)]");
    my %ids = map { ("$_->{contentId}:$_->{metric}:$_->{threshold}" => 1) } @e;
    is(scalar(keys %ids), scalar(@e), "$tag: no notification twice in the stream");
    my ($nposts, %posts) = posts();
    my @mine = grep { my ($c, $m) = /^(.*):(\w+):\d+$/; exists $want{"$c:$m"} } keys %posts;
    is(join(',', sort @mine), join(',', sort keys %ids),
       "$tag: the webhook got the same " . scalar(keys %ids) . " notifications");
    my @pub = grep { my $j = decode_json($_); exists $want{"$j->{contentId}:$j->{metric}"} } published();
    is(scalar(@pub), scalar(@e), "$tag: as many PUBLISHes as stream entries (" . scalar(@pub) . ")");
    return scalar(@e);
}

run_tests();

__DATA__

=== TEST 1: views and likes from two edges over all masters: each threshold once in the stream, the PUBLISHes and the webhook
--- http_config
    engagement_zone engagement:4m;
    engagement_redis cluster $TEST_NGINX_CLUSTER timeout=500ms connect_timeout=300ms backoff=50ms:200ms buckets=0 uniques=0 wait=1 wait_timeout=200ms;
    engagement_series_zone off;
    engagement_flush_interval 50ms;
    engagement_edge_id edge-a;
    engagement_milestone views 3 6 10;
    engagement_milestone likes 2;
    engagement_milestone_publish ms:pub rate=100000;
    engagement_milestone_webhook http://127.0.0.1:$TEST_NGINX_SINK_PORT/hook timeout=1s connect_timeout=500ms;
--- config
    location = /engagement/view { engagement view; }
    location = /engagement/like { engagement like; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    main::start_sink();
    main::start_sub();
    main::start_b();
    ok(scalar(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 } 10),
       "two edges: a's workers ready");
    my @c = map { "k$_" } 1 .. 30;
    my %slots = map { (ccli(main::alive(), 'CLUSTER', 'KEYSLOT', "eng:{c:$_}") => 1) } @c;
    # both edges at once: a child sends b's share while this sends a's
    my $kid = fork() // die;
    if ($kid == 0) {
        my $bad = 0;
        for my $r (1 .. 5) {
            for my $id (@c) { $bad++ if main::view($main::BPort, $id, "b$r-$id") != 202 }
            $bad++ if $r <= 1 && grep { main::like_req($main::BPort, $_, 'ub') != 200 } @c[0 .. 9];
            sleep 0.15;
        }
        POSIX::_exit($bad ? 1 : 0);
    }
    my $bad = 0;
    for my $r (1 .. 5) {
        for my $id (@c) { $bad++ if main::view($port, $id, "a$r-$id") != 202 }
        $bad++ if $r <= 1 && grep { main::like_req($port, $_, 'ua') != 200 } @c[0 .. 9];
        sleep 0.15;
    }
    waitpid($kid, 0);
    is("$bad/$?", "0/0", "two edges: 300 views and 20 likes answered");
    my %want = map { ("$_:views" => [3, 6, 10]) } @c;
    $want{"$_:likes"} = [2] for @c[0 .. 9];
    ok(scalar(wait_until { main::covered(%want) && main::pending() == 0 } 20),
       "two edges: all moved on, nothing left pending");
    sleep 0.5;
    my %views = map { ($_ => ccli(main::alive(), 'HGET', "eng:{c:$_}", 'views')) } @c;
    is(scalar(grep { $views{$_} != 10 } @c), 0, "two edges: every content at 10 views");
    my %m = main::masters();
    my @spread = grep { redis_cli($_, undef, 'KEYS', 'eng:{c:k*}') =~ /k/ } values %m;
    is(scalar @spread, 3, "two edges: " . scalar(keys %slots) . " slots over the 3 masters");
    my $n = main::check_once('two edges', %want);
    my ($nposts) = main::posts();
    is($nposts, $n, "two edges: one POST per notification ($nposts)");
    log_is_clean("two edges");



=== TEST 2: a notification moved again (its pending entry left behind by a lost worker): no second entry, PUBLISH or POST
--- http_config
    engagement_zone engagement:4m;
    engagement_redis cluster $TEST_NGINX_CLUSTER timeout=500ms connect_timeout=300ms backoff=50ms:200ms buckets=0 uniques=0 wait=1 wait_timeout=200ms;
    engagement_series_zone off;
    engagement_flush_interval 50ms;
    engagement_edge_id edge-a;
    engagement_milestone views 3 6 10;
    engagement_milestone likes 2;
    engagement_milestone_publish ms:pub rate=100000;
    engagement_milestone_webhook http://127.0.0.1:$TEST_NGINX_SINK_PORT/hook timeout=1s connect_timeout=500ms;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(scalar(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 } 10),
       "again: ready");
    my $len0 = () = main::stream();
    my ($posts0) = main::posts();
    my $pub0 = () = main::published();
    # three notifications of block 1 put back as pending, as the content's
    # script wrote them, in their slots' hashes
    my @e = (main::stream())[0 .. 2];
    my $put = 0;
    for my $e (@e) {
        my $nid = "$e->{contentId}:$e->{metric}:$e->{threshold}";
        my $slot = ccli(main::alive(), 'CLUSTER', 'KEYSLOT', "eng:{c:$e->{contentId}}");
        my $tag = main::slot_tag($slot);
        my $pend = encode_json({ id => $e->{contentId}, metric => $e->{metric},
                                 threshold => $e->{threshold}, total => $e->{total},
                                 msg => encode_json($e), body => '{}', channel => 'ms:pub',
                                 rate => 100000, minute => '202601010000', time => $e->{at} });
        $put += ccli(main::alive(), 'HSET', "eng:ms:out:{$tag}", $nid, $pend);
    }
    # (counted from HSET's answers: the sweep may move one at once)
    is($put, 3, "again: 3 notifications pending again");
    # the sweep (worker 0, all slots in about two minutes) or a flush of
    # the slot finds them: a view of each content flushes its slot
    main::view($port, $_->{contentId}, "again-$_->{contentId}") for @e;
    ok(scalar(wait_until { main::pending() == 0 } 10), "again: moved on and removed");
    sleep 1;
    my $len1 = () = main::stream();
    my ($posts1) = main::posts();
    my $pub1 = () = main::published();
    is("$len1/$posts1/$pub1", "$len0/$posts0/$pub0",
       "again: the stream, the POSTs and the PUBLISHes unchanged ($len0/$posts0/$pub0)");
    log_is_clean("again");



=== TEST 3: the stream's master killed (kill -9) while thresholds are crossed: each arrives once after the promotion
--- http_config
    engagement_zone engagement:4m;
    engagement_redis cluster $TEST_NGINX_CLUSTER timeout=500ms connect_timeout=300ms backoff=50ms:200ms buckets=0 uniques=0 wait=1 wait_timeout=200ms;
    engagement_series_zone off;
    engagement_flush_interval 50ms;
    engagement_edge_id edge-a;
    engagement_milestone views 3 6 10;
    engagement_milestone likes 2;
    engagement_milestone_publish ms:pub rate=100000;
    engagement_milestone_webhook http://127.0.0.1:$TEST_NGINX_SINK_PORT/hook timeout=1s connect_timeout=500ms;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(scalar(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 } 10),
       "failover: ready");
    my $slot = ccli(main::alive(), 'CLUSTER', 'KEYSLOT', 'eng:milestones');
    my %m = main::masters();
    my ($victim) = grep { ccli($_, 'CLUSTER', 'COUNTKEYSINSLOT', $slot) > 0 } values %m;
    ok($victim, "failover: the stream's master found");
    # contents of the other masters only: their views are flushed now
    my ($line) = grep { /myself/ } split /\n/, redis_cli($victim, undef, 'CLUSTER', 'NODES');
    my @ranges = map { [ /^(\d+)(?:-(\d+))?$/ ] } grep { defined && /^\d/ } (split / /, $line)[8 .. 100];
    my $owned = sub { my ($s) = @_; grep { $s >= $_->[0] && $s <= ($_->[1] // $_->[0]) } @ranges };
    my @c = grep { !$owned->(main::crc16("c:$_") & 16383) } map { "f$_" } 1 .. 40;
    main::cnode_kill($victim, 'KILL');
    my $t0 = time;
    my $ok = 0;
    for my $r (1 .. 4) {
        for my $id (@c) { $ok++ if main::view($port, $id, "f$r-$id") == 202 }
        sleep 0.1;
    }
    is($ok, 4 * @c, "failover: views of " . scalar(@c) . " contents answered during the failover");
    ok(scalar(wait_until { main::pending() > 0 } 3), "failover: crossings wait pending while the stream's master is down ("
       . main::pending() . ")");
    ok(scalar(wait_until { main::cluster_ok() && scalar(keys %{{main::masters()}}) == 3 } 20),
       sprintf("failover: a replica promoted"));
    my $promoted = time - $t0;
    # the old master comes back, a replica of the promoted one: with wait=1
    # a master without a replica confirms no write (docs/cluster.md)
    main::cnode_start($victim);
    ok(scalar(wait_until { main::pending() == 0 } 15), sprintf("failover: nothing pending (replica promoted after %.1f s)", $promoted));
    my %want = map { ("$_:views" => [3]) } @c;
    ok(scalar(wait_until { main::covered(%want) } 15), "failover: all in the stream and POSTed");
    sleep 0.5;
    main::check_once('failover', %want);
    log_is_clean("failover");
    # edge b, running since block 1: stopped, its logs clean
    my $st = stop_nginx($main::BPid);
    undef $main::BPid;
    is($st, 0, "edge b: stopped cleanly");
    my $blog = slurp(scratch_dir() . "/nginx-mscluster-b/logs/error.log")
             . slurp(scratch_dir() . "/nginx-mscluster-b/logs/stderr.log");
    my @bad = grep { /\[(alert|crit|emerg)\]|AddressSanitizer|LeakSanitizer|runtime error|exited on signal/ }
              split /\n/, $blog;
    is(scalar(@bad), 0, "edge b: no alert, crash or sanitizer report in its logs")
        or diag("@bad[0 .. ($#bad < 4 ? $#bad : 4)]");
