# Redis Cluster (engagement_redis cluster ...): a real cluster of six
# redis-server processes (3 masters, 3 replicas, cluster-node-timeout
# 1000 ms, cluster-require-full-coverage no) on loopback ports of this test, made with redis-cli --cluster
# create. Views of many contents (over all masters) counted exactly; a
# slot moved to another master under load (ASK while it moves, MOVED
# after) counted exactly; a master killed (kill -9), its replica
# promoted, views sent during and after: 0 lost, 0 doubled. The cluster
# is made once for the file and its servers stopped by pid at the end.
# Milestones are accepted (block 1; t/201 runs them); misused parameters
# are refused at nginx -t (blocks 2-4); a plain Redis as the seed is said once (5);
# series, reactions, trending, resume and live run on the cluster
# (blocks 6-9), then the slot move (10), a paused master (11), the failover (12)
# and password= (13).
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Engagement::Cluster;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes qw(sleep time);
use File::Path ();
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
cluster_create('cluster', 300);

# a plain Redis (no cluster) for the block that points the cluster form at it
our $plain = free_ports(400, 50, 1);
start_redis($plain);
$ENV{TEST_NGINX_PLAIN_REDIS} = $plain;

END { cnode_kill($_) for keys %cpid; stop_redis(redis_pid($plain)) if $plain }

# views of contents (id => n) over keep-alive connections, each its own
# session and viewer; answers how many were 202
sub views {
    my ($p, $tag, %n) = @_;
    my $ok = 0;
    my $s;
    for my $id (sort keys %n) {
        for my $i (1 .. $n{$id}) {
            $s //= IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p", Timeout => 5)
                or next;
            my ($k) = $id =~ /(\d+)$/;
            my $b = qq({"contentId":"$id","sessionId":"$tag-$id-$i","viewerId":"v$tag-$id-$i","channelId":"ch@{[ ($k // 0) % 3 ]}","category":"cat@{[ ($k // 0) % 4 ]}"});
            print $s "POST /engagement/view HTTP/1.1\r\nHost: x\r\n"
                . "Content-Type: application/json\r\nContent-Length: "
                . length($b) . "\r\n\r\n$b";
            my ($head, $line) = ('', '');
            while (defined($line = <$s>)) { last if $line eq "\r\n"; $head .= $line }
            my ($len) = $head =~ /^Content-Length: (\d+)/mi;
            read($s, my $body, $len // 0);
            $ok++ if $head =~ m{^HTTP/1\.1 202};
            if ($head !~ m{^HTTP/1\.1} || $head =~ /^Connection: close/mi) {
                close $s;
                undef $s;
            }
        }
    }
    close $s if $s;
    return $ok;
}

sub rviews {
    my ($id) = @_;
    my $v = ccli(alive(), 'HGET', "eng:{c:$id}", 'views');
    return $v =~ /^\d+$/ ? $v : 0;
}

# nothing pending or in flight in the main nginx
sub flushed {
    my $t = status_text();
    return $t =~ /^nginx_engagement_pending_contents\{zone="engagement"\} 0$/m
        && $t =~ /^nginx_engagement_inflight_contents\{zone="engagement"\} 0$/m;
}

# every content's total against what was sent: (lost, doubled, wrong ids)
sub compare {
    my (%want) = @_;
    my ($lost, $doubled, @bad) = (0, 0);
    for my $id (sort keys %want) {
        my $got = rviews($id);
        next if $got == $want{$id};
        push @bad, "$id:$got/$want{$id}";
        $lost += $want{$id} - $got if $got < $want{$id};
        $doubled += $got - $want{$id} if $got > $want{$id};
    }
    return ($lost, $doubled, @bad);
}

our %sent;

# the block about password= runs with every node asking for one
our $pass = 's3cret';
add_block_preprocessor(sub {
    my ($block) = @_;
    return unless $block->name =~ /password=/;
    for my $p (grep { $cpid{$_} } @cports) {
        redis_cli($p, undef, 'CONFIG', 'SET', 'masterauth', $pass);
        redis_cli($p, undef, 'CONFIG', 'SET', 'requirepass', $pass);
    }
});

run_tests();

__DATA__

=== TEST 1: cluster mode accepts engagement_milestone (t/201-cluster-milestones.t runs it)
--- http_config
    engagement_redis cluster $TEST_NGINX_CLUSTER;
    engagement_series_zone off;
    engagement_milestone views 10;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- no_error_log
[emerg]



=== TEST 2: cluster mode refuses db= (a cluster has database 0 only)
--- http_config
    engagement_redis cluster $TEST_NGINX_CLUSTER db=1;
    engagement_series_zone off;
--- config
    location = /engagement/view { engagement view; }
--- must_die
--- error_log
engagement_redis cluster: "db=1" is not allowed: a Redis Cluster has database 0 only



=== TEST 3: cluster mode needs a seed
--- http_config
    engagement_redis cluster timeout=1s;
    engagement_series_zone off;
--- config
    location = /engagement/view { engagement view; }
--- must_die
--- error_log
engagement_redis cluster needs at least one host:port of a cluster node



=== TEST 4: wait= belongs to the cluster form
--- http_config
    engagement_redis 127.0.0.1:1 wait=1;
--- config
    location = /engagement/view { engagement view; }
--- must_die
--- error_log
invalid parameter "wait=1" of engagement_redis



=== TEST 5: the cluster form pointed at a plain Redis: said once, nothing sent, views kept
--- http_config
    engagement_zone engagement:1m;
    engagement_redis cluster 127.0.0.1:$TEST_NGINX_PLAIN_REDIS timeout=500ms connect_timeout=500ms backoff=50ms:200ms;
    engagement_series_zone off;
    engagement_flush_interval 50ms;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    is(views($port, 'p', p1 => 3), 3, "plain: views answered 202 (kept in shared memory)");
    ok(scalar(wait_until { error_log_text() =~ /CLUSTER SLOTS on 127\.0\.0\.1:$main::plain failed: ERR .*; is it a node of a Redis Cluster\?/ } 5),
       "plain: the error says what is wrong");
    sleep 1;
    my $n = () = error_log_text() =~ /\[error\].*CLUSTER SLOTS/g;
    ok($n >= 1 && $n <= 2, "plain: said once per worker at the error level ($n), then at info");
    is(redis_cli($main::plain, undef, 'KEYS', 'eng:*'), '', "plain: nothing written to it");
    is(status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0, 0, "plain: no worker ready");
    log_is_clean("plain");



=== TEST 6: views of 200 contents over all masters, and their series: counted exactly
--- http_config
    engagement_zone engagement:8m;
    engagement_dedupe_zone engagement_dedupe:8m;
    engagement_redis cluster $TEST_NGINX_CLUSTER timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0 wait=1 wait_timeout=200ms;
    engagement_flush_interval 50ms;
    engagement_edge_id cluster-edge;
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /engagement/analytics { engagement analytics; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(scalar(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 } 10),
       "many: both workers have every master ready");
    my %n = map { ("m$_" => 1 + $_ % 5) } 1 .. 200;
    my $want = 0;
    $want += $_ for values %n;
    is(views($port, 'a', %n), $want, "many: every view answered 202");
    %main::sent = %n;
    ok(scalar(wait_until { flushed() } 15), "many: all flushed");
    my ($lost, $doubled, @bad) = compare(%n);
    diag(sprintf("many: %d flush calls for %d content flushes (a call per hash slot)",
                 status_metric('nginx_engagement_flush_calls_total{zone="engagement"}') // -1,
                 status_metric('nginx_engagement_flush_contents_total{zone="engagement"}') // -1));
    is("$lost/$doubled", "0/0", "many: 0 lost, 0 doubled ($want views of 200 contents)")
        or diag("@bad[0 .. ($#bad < 9 ? $#bad : 9)]");
    my %m = masters();
    my @spread = grep { redis_cli($_, undef, 'DBSIZE') > 20 } values %m;
    is(scalar @spread, 3, "many: the contents are spread over the 3 masters");
    # the masters lose their scripts: NOSCRIPT, the call sent as EVAL
    redis_cli($_, undef, 'SCRIPT', 'FLUSH') for values %m;
    my %more = map { ("m$_" => 2) } 1 .. 30;
    is(views($port, 'a2', %more), 60, "noscript: 60 more views answered");
    $n{$_} += 2 for keys %more;
    $want += 60;
    ok(scalar(wait_until { flushed() } 15), "noscript: flushed");
    ($lost, $doubled, @bad) = compare(%n);
    is("$lost/$doubled", "0/0", "noscript: 0 lost, 0 doubled after SCRIPT FLUSH");
    like(error_log_text(), qr/NOSCRIPT from 127\.0\.0\.1:\d+: sent as EVAL/,
         "noscript: answered by EVAL");
    # a summary reads its content on that content's master
    my ($st, $body) = http_request($port, 'GET', '/engagement/summary/m7');
    like($body, qr/"views":5\b/, "many: a summary reads the total from its master");
    # the series: one call per slot of a round's keys, each its own batch
    # key; the deployment's ({all}) and a category's day buckets add up
    my $sum = sub {
        my ($tag) = @_;
        my $owner = ccli(alive(), 'CLUSTER', 'KEYSLOT', "eng:{$tag}");
        my $t = 0;
        for my $p (values %{{masters()}}) {
            for my $k (split /\n/, redis_cli($p, undef, 'KEYS', "eng:{$tag}:d:*")) {
                next if $k =~ /:d:\d+:/;    # a breakdown, not the totals
                $t += redis_cli($p, undef, 'HGET', $k, 'views') || 0;
            }
        }
        return $t;
    };
    my $cat1 = 0;
    $cat1 += $n{"m$_"} for grep { $_ % 4 == 1 } 1 .. 200;
    ok(scalar(wait_until { $sum->('all') >= $want && $sum->('cat:cat1') >= $cat1 } 15),
       "many: the series reached Redis");
    sleep 1.2;   # a series round more: a resend applied twice would show
    is($sum->('all'), $want, "many: the deployment's series counts every view once ($want)");
    is($sum->('cat:cat1'), $cat1, "many: a category's series counts its views once ($cat1)");
    # analytics: each bucket read on its scope's master
    my $now = time;
    my ($from, $to) = (int($now) - 2 * 86400, int($now) + 60);
    my (undef, $ab) = http_request($port, 'GET', "/engagement/analytics?contentId=m7&from=$from&to=$to&step=day");
    like($ab, qr/"total":\{"views":$n{m7}\}/, "analytics: a content's days from its master ($n{m7})");
    (undef, $ab) = http_request($port, 'GET', "/engagement/analytics?category=cat1&from=$from&to=$to&step=day");
    like($ab, qr/"total":\{"views":$cat1\}/, "analytics: a category's days from its master ($cat1)");
    # a reload under load: the old workers' final rounds, the new ones'
    # (views on a connection each while the workers change: every 202 is
    # one view, in a file the parent reads)
    my %r = map { ("m$_" => 3) } 1 .. 40;
    my $file = scratch_dir('reload') . '/answered';
    my $pid = fork() // die;
    if (!$pid) {
        open my $fh, '>', $file or POSIX::_exit(1);
        for my $id (sort keys %r) {
            for my $i (1 .. 3) {
                my ($st) = post_view($port, qq({"contentId":"$id","sessionId":"r1-$id-$i","viewerId":"vr1-$id-$i"}));
                print $fh "$id\n" if $st == 202;
            }
        }
        close $fh;
        POSIX::_exit(0);
    }
    sleep 0.1;
    ok(reload_nginx(2), "reload: new workers");
    waitpid($pid, 0);
    my $during = 0;
    for (split /\n/, slurp($file)) { $n{$_}++; $during++ }
    my $ok = views($port, 'r2', %r);
    $n{$_} += 3 for keys %r;
    ok(scalar(wait_until { flushed() } 15), "reload: flushed");
    ($lost, $doubled, @bad) = compare(%n);
    is("$lost/$doubled", "0/0",
       "reload: 0 lost, 0 doubled across a reload ($during views answered during it, $ok after)")
        or diag("@bad[0 .. ($#bad < 9 ? $#bad : 9)]");
    log_is_clean("many");



=== TEST 7: reactions on contents of every master: exactly once per request id
--- http_config
    engagement_zone engagement:8m;
    engagement_dedupe_zone engagement_dedupe:8m;
    engagement_redis cluster $TEST_NGINX_CLUSTER timeout=500ms connect_timeout=500ms backoff=50ms:400ms wait=1 wait_timeout=200ms;
    engagement_series_zone off;
    engagement_flush_interval 50ms;
--- config
    location = /engagement/like { engagement like; }
    location = /engagement/state { engagement state; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(scalar(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 } 10),
       "react: ready");
    my ($ok, $dup) = (0, 0);
    for my $c (1 .. 30) {
        for my $u (1 .. 4) {
            for my $try (1 .. 2) {   # each request twice: the retry is a duplicate
                my ($st, $b) = http_request($port, 'POST', '/engagement/like',
                    qq({"contentId":"r$c","userId":"u$u","reaction":"love","requestId":"q$c-$u"}),
                    'Content-Type' => 'application/json');
                $ok++ if $st == 200;
                $dup++ if $b =~ /duplicate_request/;
            }
        }
    }
    is("$ok/$dup", "240/120", "react: 240 answered, the 120 retries as duplicates");
    my @bad = grep { ccli(alive(), 'HGET', "eng:{c:r$_}", 'r:love') ne '4' } 1 .. 30;
    is(scalar @bad, 0, "react: every content has exactly 4 loves in Redis") or diag("@bad");
    my %m = masters();
    my @spread = grep { redis_cli($_, undef, 'KEYS', 'eng:{c:r*}:reactions') ne '' } values %m;
    is(scalar @spread, 3, "react: the contents are on the 3 masters");
    my (undef, $b) = http_request($port, 'GET', '/engagement/state?contentId=r7&userId=u2');
    like($b, qr/"reaction":"love".*"love":4/, "react: a state read from the content's master");
    log_is_clean("react");



=== TEST 8: trending on the cluster: the {tr} sets and each item's exact views from its own master
--- http_config
    engagement_zone engagement:8m;
    engagement_dedupe_zone engagement_dedupe:8m;
    engagement_redis cluster $TEST_NGINX_CLUSTER timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0 wait=1 wait_timeout=200ms;
    engagement_series_zone off;
    engagement_flush_interval 50ms;
    engagement_edge_id cluster-edge;
    engagement_trending_zone trend:8m categories=4;
    engagement_trending_bucket 2s;
--- config
    location = /engagement/view { engagement view; }
    location = /engagement/trending { engagement trending; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(scalar(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 } 10),
       "trending: ready");
    my %n = map { ("t$_" => 31 - $_) } 1 .. 30;
    my $want = 0;
    $want += $_ for values %n;
    is(views($port, 'tr', %n), $want, "trending: $want views answered 202");
    ok(scalar(wait_until { flushed() && (status_metric('nginx_engagement_trending_buckets') // 1) == 0 } 10),
       "trending: the counts and the trending bucket went to Redis");
    my ($st, $b) = http_request($port, 'GET', '/engagement/trending?window=5m&limit=30');
    is($st, 200, "trending: 200");
    my @items = $b =~ /"contentId":"(t\d+)","score":[^,]*,"views":(\d+)/g;
    my %got = @items;
    is(scalar keys %got, 30, "trending: the 30 contents ranked") or diag($b);
    my @bad = grep { ($got{$_} // -1) != $n{$_} } sort keys %n;
    is(scalar @bad, 0, "trending: every item's views exact (read from its own master)") or diag("@bad: $b");
    my @s = $b =~ /"score":([\d.]+)/g;
    my @up = grep { $s[$_] < $s[$_ + 1] } 0 .. $#s - 1;
    ok(@s == 30 && !@up, "trending: items by score, the highest first");
    log_is_clean("trending");



=== TEST 9: resume positions, history and live viewers on the cluster: each user's and content's keys on their own master
--- http_config
    engagement_zone engagement:8m;
    engagement_redis cluster $TEST_NGINX_CLUSTER timeout=500ms connect_timeout=500ms backoff=50ms:400ms wait=1 wait_timeout=200ms;
    engagement_series_zone off;
    engagement_edge_id cluster-edge;
--- config
    location = /engagement/heartbeat { engagement heartbeat; }
    location = /engagement/resume { engagement resume; }
    location = /engagement/history { engagement history; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(scalar(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 } 10),
       "resume: ready");
    my $ok = 0;
    for my $u (1 .. 20) {
        my ($st) = http_request($port, 'POST', '/engagement/heartbeat',
            qq({"contentId":"h$u","sessionId":"s$u","positionMs":@{[ 1000 * $u ]},"userId":"u$u"}),
            'Content-Type' => 'application/json');
        $ok++ if $st == 200;
    }
    is($ok, 20, "resume: 20 heartbeats answered");
    ok(scalar(wait_until { !grep { ccli(alive(), 'HGET', "eng:{u:u$_}:resume", "h$_") !~ /^@{[ 1000 * $_ ]}:/ } 1 .. 20 } 10),
       "resume: every user's position on the user's master");
    my %m = masters();
    my @on = grep { redis_cli($_, undef, 'KEYS', 'eng:{u:u*}:resume') ne '' } values %m;
    is(scalar @on, 3, "resume: the users are spread over the 3 masters");
    my (undef, $b) = http_request($port, 'GET', '/engagement/history?userId=u7');
    like($b, qr/"contentId":"h7","positionMs":7000/, "resume: a history read from the user's master");
    ok(scalar(wait_until { ccli(alive(), 'EXISTS', 'eng:{c:h3}:live') eq '1' } 10),
       "live: the edge's live count shared on the content's master");
    log_is_clean("resume");



=== TEST 10: a slot moved to another master under load (ASK, TRYAGAIN), then back (MOVED): exact
--- http_config
    engagement_zone engagement:8m;
    engagement_dedupe_zone engagement_dedupe:8m;
    engagement_redis cluster $TEST_NGINX_CLUSTER timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0 wait=1 wait_timeout=200ms;
    engagement_series_zone off;
    engagement_flush_interval 50ms;
    engagement_edge_id cluster-edge;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(scalar(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 } 10),
       "move: ready");
    my %want = (mv => 0);
    $want{mv} += views($port, 'b1', mv => 20);
    ok(scalar(wait_until { flushed() } 10), "move: first views flushed");
    my $slot = redis_cli(alive(), undef, 'CLUSTER', 'KEYSLOT', 'eng:{c:mv}');
    my %m = masters();
    my ($src) = grep { redis_cli($m{$_}, undef, 'CLUSTER', 'COUNTKEYSINSLOT', $slot) > 0 } keys %m;
    my ($dst) = grep { $_ ne $src } sort keys %m;
    ok($src && $dst, "move: slot $slot from $m{$src} to $m{$dst}");
    redis_cli($m{$dst}, undef, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $src);
    redis_cli($m{$src}, undef, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $dst);
    my @keys = split /\n/, redis_cli($m{$src}, undef, 'CLUSTER', 'GETKEYSINSLOT', $slot, 1000);
    like(redis_cli($m{$src}, undef, 'MIGRATE', '127.0.0.1', $m{$dst}, '', 0, 5000, 'KEYS', @keys),
         qr/OK/, "move: " . scalar(@keys) . " keys migrated");
    # the slot is migrating, its keys gone from the source: ASK; the
    # flush script (a batch key not yet on the target) gets TRYAGAIN
    # from the importing node and waits in shared memory
    $want{mv} += views($port, 'b2', mv => 20);
    ok(scalar(wait_until { error_log_text() =~ /TRYAGAIN/ } 5),
       "move: the flush of the moving slot waits (TRYAGAIN)");
    sleep 0.3;
    is(rviews('mv'), 20, "move: nothing of it applied meanwhile");
    for my $p (values %m) {
        redis_cli($p, undef, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $dst);
    }
    ok(scalar(wait_until { flushed() } 10), "move: the waiting views flushed once the move is over");
    my ($lost, $doubled, @bad) = compare(%want);
    is("$lost/$doubled", "0/0", "move: 0 lost, 0 doubled ($want{mv} views)") or diag("@bad");
    like(error_log_text(), qr/engagement redis cluster: ASK $slot /, "move: an ASK was followed");
    # the slot moves on at once to the third master, with no view on the
    # way: whether a worker's map names the source or the target, it is
    # old, and its next flush of the slot is answered MOVED
    my ($third) = grep { $_ ne $src && $_ ne $dst } sort keys %m;
    sleep 0.6;
    redis_cli($m{$third}, undef, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $dst);
    redis_cli($m{$dst}, undef, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $third);
    @keys = split /\n/, redis_cli($m{$dst}, undef, 'CLUSTER', 'GETKEYSINSLOT', $slot, 1000);
    like(redis_cli($m{$dst}, undef, 'MIGRATE', '127.0.0.1', $m{$third}, '', 0, 5000, 'KEYS', @keys),
         qr/OK/, "move on: " . scalar(@keys) . " keys migrated to the third master");
    # the new owner first: the old one then answers MOVED to it at once
    for my $p ($m{$third}, $m{$dst}, $m{$src}) {
        redis_cli($p, undef, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $third);
    }
    my $before = length error_log_text();
    $want{mv} += views($port, 'b3', mv => 20);
    ok(scalar(wait_until { flushed() } 10), "move on: views flushed");
    ($lost, $doubled, @bad) = compare(%want);
    is("$lost/$doubled", "0/0", "move on: 0 lost, 0 doubled ($want{mv} views)") or diag("@bad");
    my $after = substr(error_log_text(), $before);
    SKIP: {
        # a worker whose periodic read of the map (every 10 s) fell
        # between the move and its flush needs no MOVED: that read is
        # logged ("slot map from"), so only then is it said, not failed
        skip("the workers read the map again between the move and the flush", 1)
            if $after !~ /MOVED $slot / && $after =~ /slot map from/;
        like($after, qr/engagement redis cluster: MOVED $slot /, "move on: a MOVED was followed");
    }
    log_is_clean("move");
--- no_error_log
[alert]



=== TEST 11: a master paused (SIGSTOP 0.8 s) under load: calls time out and are resent as the same batches: exact
--- http_config
    engagement_zone engagement:8m;
    engagement_dedupe_zone engagement_dedupe:8m;
    engagement_redis cluster $TEST_NGINX_CLUSTER timeout=300ms connect_timeout=300ms backoff=50ms:200ms buckets=0 uniques=0 wait=1 wait_timeout=100ms;
    engagement_series_zone off;
    engagement_flush_interval 50ms;
    engagement_edge_id cluster-edge;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(scalar(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 } 10),
       "pause: ready");
    my %want = map { ("p$_" => 0) } 1 .. 30;
    my $send = sub { my ($tag) = @_; my $ok = views($port, $tag, map { ($_ => 1) } keys %want);
                     $want{$_}++ for keys %want; return $ok };
    my %m = masters();
    my $paused = $m{(sort keys %m)[1]};
    my $ok = $send->('p0');
    kill 'STOP', $cpid{$paused};
    for my $r (1 .. 4) { $ok += $send->("p$r"); sleep 0.15 }
    kill 'CONT', $cpid{$paused};
    for my $r (5 .. 6) { $ok += $send->("p$r"); sleep 0.1 }
    is($ok, 210, "pause: every view answered 202");
    ok(scalar(wait_until { flushed() } 15), "pause: all flushed");
    my ($lost, $doubled, @bad) = compare(%want);
    my $rep = status_metric('nginx_engagement_flush_commands_total{zone="engagement",result="repeat"}') // 0;
    my $fail = status_metric('nginx_engagement_flush_commands_total{zone="engagement",result="failed"}') // 0;
    is("$lost/$doubled", "0/0",
       "pause: 0 lost, 0 doubled (210 views; $fail content flushes failed and were resent, $rep found applied already)")
        or diag("@bad");
    like(error_log_text(), qr/command timed out on 127\.0\.0\.1:$paused/, "pause: the paused master's calls timed out");
    ok(scalar(wait_until { cluster_ok() } 10), "pause: the cluster is whole again");
    log_is_clean("pause");



=== TEST 12: a master killed (kill -9), its replica promoted: 0 lost, 0 doubled
--- http_config
    engagement_zone engagement:8m;
    engagement_dedupe_zone engagement_dedupe:8m;
    engagement_redis cluster $TEST_NGINX_CLUSTER timeout=500ms connect_timeout=300ms backoff=50ms:200ms buckets=0 uniques=0 wait=1 wait_timeout=200ms;
    engagement_series_zone off;
    engagement_flush_interval 50ms;
    engagement_edge_id cluster-edge;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(scalar(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 } 10),
       "failover: ready");
    my %want = map { ("f$_" => 0) } 1 .. 60;
    my $add = sub { my ($tag, $k) = @_; my %n = map { ($_ => $k) } keys %want;
                    $want{$_} += 0 for keys %n; my $ok = views($port, $tag, %n);
                    $want{$_} += $k for keys %n; return $ok };
    is($add->('c1', 2), 120, "failover: views before");
    ok(scalar(wait_until { flushed() } 10), "failover: flushed before");
    my %m = masters();
    my $vid = (sort keys %m)[0];
    my $victim = $m{$vid};
    my ($replica) = map { /:(\d+)/ } grep { (split / /)[3] eq $vid }
        split /\n/, redis_cli(alive(), undef, 'CLUSTER', 'NODES');
    my @surv = grep { redis_cli($victim, undef, 'EXISTS', "eng:{c:$_}") ne '1' } sort keys %want;
    ok(@surv > 20 && @surv < 60, "failover: " . (60 - @surv) . " of the 60 contents on the master to kill");
    my $t0 = time;
    cnode_kill($victim, 'KILL');
    # views go on while the cluster notices and promotes the replica; the
    # other masters' contents keep being flushed meanwhile (the cluster
    # does not require full coverage): the dead master's wait in flight
    my ($during, $surv_at, $surv_before) = (0, 0, 0);
    for my $r (1 .. 8) {
        $during += $add->("c2-$r", 1);
        if ($r == 3) {
            $surv_at = wait_until { !grep { rviews($_) != $want{$_} } @surv } 3;
            $surv_before = $surv_at && redis_cli($replica, undef, 'ROLE') !~ /^master/;
            $surv_at = time - $t0;
        }
        sleep 0.2;
    }
    is($during, 480, "failover: views during the failover answered 202");
    ok($surv_before, sprintf("failover: the other masters' contents flushed %.1f s after the kill, "
                             . "before the replica's promotion", $surv_at));
    ok(scalar(wait_until { cluster_ok() && scalar(keys %{{masters()}}) == 3 } 20),
       "failover: a replica was promoted");
    my $promoted = time - $t0;
    # the old master comes back, as a replica of the promoted one
    cnode_start($victim);
    is($add->('c3', 2), 120, "failover: views after");
    ok(scalar(wait_until { flushed() } 20), "failover: all flushed");
    my ($lost, $doubled, @bad) = compare(%want);
    my $total = 0;
    $total += $_ for values %want;
    is("$lost/$doubled", "0/0",
       sprintf("failover: 0 lost, 0 doubled (%d views of 60 contents, promoted after %.1f s)",
               $total, $promoted)) or diag("@bad");
    unlike(error_log_text(), qr/\[alert\]|\[crit\]|\[emerg\]/, "failover: no alert");



=== TEST 13: password=: AUTH on every master's connection, counts exact
--- http_config
    engagement_zone engagement:8m;
    engagement_redis cluster $TEST_NGINX_CLUSTER password=s3cret timeout=500ms connect_timeout=500ms backoff=50ms:400ms buckets=0 uniques=0;
    engagement_series_zone off;
    engagement_flush_interval 50ms;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(scalar(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 } 10),
       "password: both workers have every master ready");
    my %n = map { ("pw$_" => 2) } 1 .. 30;
    is(views($port, 'pw', %n), 60, "password: 60 views answered");
    ok(scalar(wait_until { flushed() } 10), "password: flushed");
    my @bad = grep {
        my $p = alive();
        open(my $fh, '-|', 'redis-cli', '-c', '-p', $p, '-a', $main::pass, '--no-auth-warning',
             'HGET', "eng:{c:$_}", 'views') or die;
        local $/; my $v = <$fh> // ''; close $fh; $v =~ s/\s+\z//;
        $v ne '2' } sort keys %n;
    is(scalar @bad, 0, "password: every total exact") or diag("@bad");
    like(redis_cli(alive(), undef, 'GET', 'x'), qr/NOAUTH/, "password: the nodes do ask for it");
    log_is_clean("password");
