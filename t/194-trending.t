# Guards trending (issue 14): counted views and new likes feed a
# space-saving sketch per time bucket in the trending zone, globally and
# per category; once a bucket has closed one worker merges it into Redis's
# sorted sets (eng:{tr}:m:<minute>, eng:{tr}:h:<hour>, and
# eng:{tr:cat:<c>}:...) at most once per (edge, zone, bucket, scope); GET
# /engagement/trending ranks by the decayed sum of the window's sets, so a
# burst on a new content ranks first in 5m while the steady favourite of a
# skewed (Zipf) load over 200 contents stays first in 24h, and answers the
# exact views of each item (its own buckets in Redis) with views per
# minute, growth and like rate; the category filter keeps to its category;
# the space-saving error bound holds with a small k; bad parameters are a
# 400 naming the parameter; Redis down is a 503 with Retry-After, and the
# buckets kept meanwhile reach Redis once it is back. Buckets of 2 s
# (engagement_trending_bucket, a minute in production) keep it fast: the
# windows are counted in buckets (5m: 5 buckets).
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use JSON::PP;
use List::Util qw(shuffle sum);
use Time::HiRes qw(sleep time);
use IO::Socket::INET;

our $rport = free_ports(500, 50, 1);
start_redis($rport);
$ENV{TEST_NGINX_REDIS_PORT} = $rport;
our $L = 2;     # the bucket, s

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
master_on();
workers(2);
add_response_body_check(post_check_hook());

our $HttpConfig = <<'_EOC_';
    engagement_zone engagement:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms buckets=1s;
    engagement_edge_id edge-a;
    engagement_trending_zone trend:8m categories=4 category_k=128;
    engagement_trending_bucket 2s;
_EOC_

our $Loc = <<'_EOC_';
    location = /engagement/view { engagement view; }
    location = /engagement/like { engagement like; }
    location = /engagement/trending { engagement trending; }
    location = /status { engagement status; }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    return if $block->{must_die};
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    $block->set_value("config", $Loc) unless defined $block->config;
    $block->set_value("no_error_log", "[alert]\nexited on signal\nAddressSanitizer\nLeakSanitizer\nruntime error")
        unless defined $block->no_error_log;
});

sub rcli { redis_cli($rport, undef, @_) }

# views over keep-alive connections: [contentId, category] each; the number counted
my $vseq = 0;
sub send_views {
    my (@views) = @_;
    my $counted = 0;
    my $s;
    my $n = 0;
    for my $v (@views) {
        if (!$s || $n++ % 200 == 0) {
            close $s if $s;
            $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . nginx_port(), Timeout => 5) or die "connect: $!";
        }
        $vseq++;
        my $body = qq({"contentId":"$v->[0]","sessionId":"s$$-$vseq","viewerId":"v$$-$vseq");
        $body .= qq(,"category":"$v->[1]") if defined $v->[1];
        $body .= '}';
        print $s "POST /engagement/view HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            . "Content-Length: " . length($body) . "\r\n\r\n$body";
        my $head = '';
        while (defined(my $line = <$s>)) {
            last if $line eq "\r\n";
            $head .= $line;
        }
        my ($len) = $head =~ /Content-Length: (\d+)/i;
        my $rb = '';
        read($s, $rb, $len // 0);
        $counted++ if $head =~ m{^HTTP/1\.1 202} && $rb =~ /"counted":true/;
    }
    close $s if $s;
    return $counted;
}

sub trending {
    my ($q) = @_;
    my ($st, $b, $h) = http_request(nginx_port(), 'GET', "/engagement/trending$q");
    my $doc = $st == 200 ? eval { decode_json($b) } : undef;
    return ($st, $doc, $b, $h);
}

sub ids { join ' ', map { $_->{contentId} } @{ $_[0]{items} // [] } }

# until both workers reach Redis (five answers in a row)
sub ready {
    my $row = 0;
    return wait_until(sub {
        $row = (trending('?window=5m&category=probe'))[0] == 200 ? $row + 1 : 0;
        $row >= 5 }, 10);
}

# until the bucket of time t has closed and Redis has confirmed it (its end,
# the grace of 1 s, a turn): no bucket is held (no view may come after t)
sub wait_bucket_sent {
    my ($t) = @_;
    my $end = (int($t / $L) + 1) * $L + 1;
    sleep($end - time + 0.1) if $end > time;
    return wait_until(sub { status_metric('nginx_engagement_trending_buckets') == 0 }, 5);
}

run_tests();

__DATA__

=== TEST 1: Zipf load over 200 contents, then a burst on a new content: the burst first in 5m, the favourite first in 24h, exact counts, category filter, signals, cache, figures
--- request
GET /status
--- response_body_like: nginx_engagement_trending_updates_total 0
--- timeout: 60
--- post_check
    Test::More::ok(main::ready(), 'TEST 1 - the workers reach Redis');
    my ($st, $d, $b) = main::trending('?window=5m');
    Test::More::like($b, qr/^\{"window":"5m","category":null,"bucketSeconds":2,"items":\[\],"generatedAt":\d{13}\}\n\z/, 'TEST 1 - nothing yet: no items');
    # z1..z200: z<r> gets int(240 / r) views (at least 1); odd ranks are music, even news
    my (%sent, @views);
    for my $r (1 .. 200) {
        my $n = int(240 / $r) || 1;
        $sent{"z$r"} = $n;
        push @views, (["z$r", $r % 2 ? 'music' : 'news']) x $n;
    }
    my $total = scalar @views;
    my $c = main::send_views(shuffle @views);
    Test::More::is($c, $total, "TEST 1 - the $total views of the skewed load are counted");
    my $t1 = time;
    # the burst three buckets or more after the last view of the load
    my $at = (int($t1 / $main::L) + 3) * $main::L + 0.05;
    sleep($at - time) if $at > time;
    $c = main::send_views((['burst', 'news']) x 100);
    $sent{burst} = 100;
    my $t2 = time;
    Test::More::is($c, 100, 'TEST 1 - the 100 views of the burst are counted');
    Test::More::ok(main::wait_bucket_sent($t2), 'TEST 1 - the burst\'s bucket has closed and gone to Redis');
    Test::More::diag(sprintf('load %d views, burst %.1f s after it', $total, $t2 - $t1));

    ($st, $d, $b) = main::trending('?window=5m');
    Test::More::is($st, 200, 'TEST 1 - 5m answers 200');
    Test::More::is($d->{items}[0]{contentId}, 'burst', 'TEST 1 - 5m: the burst ranks first') or Test::More::diag($b);
    Test::More::is($d->{items}[0]{views}, 100, 'TEST 1 - 5m: its exact views, 100');
    Test::More::ok($d->{items}[0]{viewsPerMinute} > 0, "TEST 1 - 5m: views per minute $d->{items}[0]{viewsPerMinute}");
    Test::More::ok(exists $d->{items}[0]{growth} && exists $d->{items}[0]{likeRate}, 'TEST 1 - growth and likeRate are answered');
    Test::More::is(scalar @{ $d->{items} }, 10, 'TEST 1 - 10 items by default');

    ($st, $d, $b) = main::trending('?window=24h&limit=20');
    Test::More::is($st, 200, 'TEST 1 - 24h answers 200');
    Test::More::is($d->{items}[0]{contentId}, 'z1', 'TEST 1 - 24h: the steady favourite z1 ranks first') or Test::More::diag($b);
    Test::More::is(scalar @{ $d->{items} }, 20, 'TEST 1 - limit=20 answers 20 items');
    my @top = map { $_->{contentId} } @{ $d->{items} };
    Test::More::ok((grep { $_ eq 'burst' } @top), 'TEST 1 - 24h: the burst is in the top 20');
    my @bad = grep { $_->{views} != $sent{ $_->{contentId} } } @{ $d->{items} };
    Test::More::is(scalar @bad, 0, 'TEST 1 - 24h: every item\'s views equal the views sent to it')
        or Test::More::diag(join ', ', map { "$_->{contentId} $_->{views} != $sent{$_->{contentId}}" } @bad);
    # the scores of the 24h window follow the views (one bucket set, decay per hour)
    my @s = map { $_->{score} } @{ $d->{items} };
    Test::More::ok((!grep { $s[$_] < $s[$_ + 1] } 0 .. $#s - 1), 'TEST 1 - items come by score, the highest first');
    Test::More::ok($d->{items}[0]{score} > 200 && $d->{items}[0]{score} <= 240, "TEST 1 - z1's 24h score $d->{items}[0]{score} is its 240 views, decayed by at most an hour");

    ($st, $d, $b) = main::trending('?window=1h&limit=100');
    Test::More::is($st, 200, 'TEST 1 - 1h answers 200');
    @top = map { $_->{contentId} } @{ $d->{items} };
    Test::More::ok((grep { $_ eq 'burst' } @top) && (grep { $_ eq 'z1' } @top), 'TEST 1 - 1h: both the burst and z1 are in the top 100');

    ($st, $d, $b) = main::trending('?window=5m&category=news&limit=50');
    Test::More::is($d->{category}, 'news', 'TEST 1 - the category is answered');
    Test::More::is($d->{items}[0]{contentId}, 'burst', 'TEST 1 - category news, 5m: the burst first');
    ($st, $d, $b) = main::trending('?window=24h&category=news&limit=100');
    @bad = grep { $_->{contentId} ne 'burst' && ($_->{contentId} =~ /^z(\d+)$/ ? $1 % 2 : 1) } @{ $d->{items} };
    Test::More::is(scalar @bad, 0, 'TEST 1 - category news: only news contents') or Test::More::diag($b);
    Test::More::is($d->{items}[0]{contentId}, 'z2', 'TEST 1 - category news, 24h: z2 (120 views) first');
    ($st, $d, $b) = main::trending('?window=24h&category=music&limit=100');
    @bad = grep { !($_->{contentId} =~ /^z(\d+)$/ && $1 % 2) } @{ $d->{items} };
    Test::More::is(scalar @bad, 0, 'TEST 1 - category music: only music contents, no burst');
    Test::More::is($d->{items}[0]{contentId}, 'z1', 'TEST 1 - category music, 24h: z1 first');
    Test::More::is($d->{items}[0]{views}, 240, 'TEST 1 - and its exact views, 240');
    ($st, $d, $b) = main::trending('?window=5m&category=nothing-here');
    Test::More::is($b =~ /"items":\[\]/ ? 1 : 0, 1, 'TEST 1 - a category with no views: no items');

    # Redis's sets: a bucket's members once, scores the views of the bucket
    my @keys = grep { /:m:/ } split /\n/, main::rcli('KEYS', 'eng:{tr}:*');
    my $sum = 0;
    $sum += main::rcli('ZSCORE', $_, 'burst') || 0 for @keys;
    Test::More::is($sum, 100, 'TEST 1 - the burst\'s 100 views are in the minute sets once');
    my $ttl = main::rcli('TTL', $keys[0]);
    Test::More::ok($ttl > 7000 && $ttl <= 7200, "TEST 1 - a minute set expires in 2 hours ($ttl s)");
    my ($hk) = grep { /:h:/ } split /\n/, main::rcli('KEYS', 'eng:{tr}:*');
    $ttl = main::rcli('TTL', $hk);
    Test::More::ok($ttl > 259000 && $ttl <= 259200, "TEST 1 - an hour set expires in 3 days ($ttl s)");

    # the cache: answers of one worker within 1 s are the same answer
    my %gen;
    for (1 .. 6) { my ($s2, $d2) = main::trending('?window=24h&limit=7'); $gen{ $d2->{generatedAt} }++ }
    Test::More::ok(keys(%gen) <= 2, 'TEST 1 - six reads within the cache time: at most one Redis read per worker (' . scalar(keys %gen) . ')');

    # a page storm: 40 identical requests at once cost Redis one read per worker
    my $calls = status_metric('nginx_engagement_trending_read_calls_total');
    my @socks = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . nginx_port(), Timeout => 5) } 1 .. 40;
    print $_ "GET /engagement/trending?window=1h&limit=9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" for @socks;
    my %bodies;
    my $ok200 = 0;
    for my $sk (@socks) { local $/; my $r = <$sk>; $ok200++ if $r =~ m{^HTTP/1\.1 200}; $bodies{ (split /\r\n\r\n/, $r, 2)[1] }++ }
    Test::More::is($ok200, 40, 'TEST 1 - 40 requests at once: 40 answers');
    Test::More::ok(keys(%bodies) <= 2, 'TEST 1 - at most two different answers (one per worker)');
    my $more = status_metric('nginx_engagement_trending_read_calls_total') - $calls;
    Test::More::ok($more >= 1 && $more <= 2, "TEST 1 - they cost Redis $more read(s): one per worker at most");

    # requests aborted while they wait for Redis: the read finishes for nobody
    for my $lim (11 .. 20) {
        my $sk = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . nginx_port(), Timeout => 5);
        print $sk "GET /engagement/trending?window=24h&limit=$lim HTTP/1.1\r\nHost: x\r\n\r\n";
        close $sk;
    }
    sleep 0.5;
    ($st, $d) = main::trending('?window=24h&limit=11');
    Test::More::is($st, 200, 'TEST 1 - after 10 aborted reads, the same question is answered');
    Test::More::is(scalar @{ $d->{items} }, 11, 'TEST 1 - with its 11 items');

    my $s = status_text();
    Test::More::like($s, qr/^nginx_engagement_trending_updates_total @{[ $total + 100 ]}$/m, 'TEST 1 - status: every counted view updated the sketch');
    Test::More::like($s, qr/^nginx_engagement_trending_evictions_total 0$/m, 'TEST 1 - status: no eviction (201 contents, k=256; 101 a category, category_k=128)');
    Test::More::like($s, qr/^nginx_engagement_trending_late_total 0$/m, 'TEST 1 - status: none late');
    Test::More::like($s, qr/^nginx_engagement_trending_buckets_dropped_total 0$/m, 'TEST 1 - status: no bucket dropped');
    Test::More::like($s, qr/^nginx_engagement_trending_flush_errors_total 0$/m, 'TEST 1 - status: no flush error');
    my ($hits) = $s =~ /^nginx_engagement_trending_cache_hits_total (\d+)$/m;
    Test::More::ok($hits >= 4 + 38, "TEST 1 - status: $hits cache hits (cached or waiting for the same read)");
    SKIP: {
        Test::More::skip('promtool not installed', 1) unless -x '/usr/bin/promtool';
        my $tmp = File::Temp->new(TMPDIR => 1, SUFFIX => '.prom');
        print $tmp $s;
        close $tmp;
        my $out = `/usr/bin/promtool check metrics < $tmp 2>&1`;
        Test::More::is($?, 0, 'TEST 1 - promtool check metrics passes with the trending figures') or Test::More::diag($out);
    }
    (undef, $b) = http_request(nginx_port(), 'GET', '/status?format=json');
    Test::More::like($b, qr/,"trending":\{"updates":\d+,[^{}]*"buckets":\d+\}[,}]/, 'TEST 1 - the JSON status has the trending object');



=== TEST 2: a small sketch (k=8): evictions counted, every score within the space-saving bound (true count + N/k per bucket), the heavy content exact or over, first
--- http_config
    engagement_zone engagement:4m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms buckets=1s;
    engagement_edge_id edge-b;
    engagement_trending_zone small:1m k=8 categories=0;
    engagement_trending_bucket 2s;
--- request
GET /status
--- response_body_like: nginx_engagement_trending_updates_total 0
--- timeout: 30
--- post_check
    main::rcli('FLUSHALL');
    Test::More::ok(main::ready(), 'TEST 2 - the workers reach Redis');
    # within one bucket: 60 views of "heavy", 1..3 views of 40 others
    my $at = (int(time / $main::L) + 1) * $main::L + 0.02;
    sleep($at - time);
    my %sent = (heavy => 60);
    my @views = (['heavy']) x 60;
    for my $i (1 .. 40) { my $n = 1 + $i % 3; $sent{"o$i"} = $n; push @views, (["o$i"]) x $n }
    my $total = scalar @views;
    my $c = main::send_views(shuffle @views);
    my $t = time;
    Test::More::is($c, $total, "TEST 2 - $total views counted");
    Test::More::ok(int($t / $main::L) == int($at / $main::L), 'TEST 2 - all in one bucket') or Test::More::diag('slow machine: the load spans two buckets');
    Test::More::ok(main::wait_bucket_sent($t), 'TEST 2 - the bucket has gone to Redis');
    my @keys = grep { /:m:/ } split /\n/, main::rcli('KEYS', 'eng:{tr}:*');
    my %score;
    for my $k (@keys) {
        my @z = split /\n/, main::rcli('ZRANGE', $k, 0, -1, 'WITHSCORES');
        while (my ($m, $sc) = splice @z, 0, 2) { $score{$m} += $sc }
    }
    Test::More::ok(keys(%score) <= 8 * @keys, 'TEST 2 - at most k=8 members per bucket');
    my $bound = $total / 8;
    my @over = grep { $score{$_} > $sent{$_} + $bound * @keys } keys %score;
    Test::More::is(scalar @over, 0, "TEST 2 - every score is at most its true count + N/k ($bound)")
        or Test::More::diag(join ', ', map { "$_ $score{$_} vs $sent{$_}" } @over);
    Test::More::ok($score{heavy} >= 60 && $score{heavy} <= 60 + $bound * @keys, "TEST 2 - heavy's score $score{heavy} is at least its 60 views");
    my ($st, $d) = main::trending('?window=5m');
    Test::More::is($d->{items}[0]{contentId}, 'heavy', 'TEST 2 - heavy ranks first');
    Test::More::is($d->{items}[0]{views}, 60, 'TEST 2 - its views are exact (its own buckets), 60');
    my $ev = status_metric('nginx_engagement_trending_evictions_total');
    Test::More::ok($ev > 0, "TEST 2 - evictions counted ($ev)");



=== TEST 3: a new like counts engagement_trending_like_weight views (5); an unlike, a repeat and a change of type nothing
--- request
GET /status
--- response_body_like: nginx_engagement_trending_updates_total 0
--- timeout: 30
--- post_check
    main::rcli('FLUSHALL');
    Test::More::ok(main::ready(), 'TEST 3 - the workers reach Redis');
    my $like = sub {
        my ($m, $body) = @_;
        return (http_request(nginx_port(), $m, '/engagement/like', $body, 'Content-Type' => 'application/json'))[0];
    };
    Test::More::is($like->('POST', '{"contentId":"liked","userId":"u1"}'), 200, 'TEST 3 - a like');
    Test::More::is($like->('POST', '{"contentId":"liked","userId":"u2"}'), 200, 'TEST 3 - another user\'s like');
    Test::More::is($like->('POST', '{"contentId":"liked","userId":"u2"}'), 200, 'TEST 3 - the same like again (unchanged)');
    Test::More::is($like->('POST', '{"contentId":"liked","userId":"u2","reaction":"love"}'), 200, 'TEST 3 - a change of type');
    Test::More::is($like->('DELETE', '{"contentId":"liked","userId":"u1"}'), 200, 'TEST 3 - an unlike');
    my $t = time;
    Test::More::is(main::send_views(['viewed']), 1, 'TEST 3 - one view of another content');
    Test::More::ok(main::wait_bucket_sent($t), 'TEST 3 - the bucket has gone to Redis');
    my ($hk) = grep { /:h:/ } split /\n/, main::rcli('KEYS', 'eng:{tr}:*');
    Test::More::is(main::rcli('ZSCORE', $hk, 'liked'), 10, 'TEST 3 - two new likes: 2 x 5 views in the hour set');
    Test::More::is(main::rcli('ZSCORE', $hk, 'viewed'), 1, 'TEST 3 - a view: 1');



=== TEST 4: bad parameters are a 400 naming the parameter; a POST is a 405
--- request
GET /engagement/trending?window=7d
--- error_code: 400
--- response_body_like: "field":"window"
--- post_check
    for my $case (['?limit=0', 'limit'], ['?limit=101', 'limit'], ['?limit=abc', 'limit'], ['?limit=', 'limit'],
                  ['?window=', 'window'], ['?window=5M', 'window'], ['?category=a%20b', 'category'],
                  ['?category=', 'category'], ['?category=' . ('c' x 129), 'category'], ['?window=1h&limit=-1', 'limit']) {
        my ($st, $b) = http_request(nginx_port(), 'GET', "/engagement/trending$case->[0]");
        Test::More::ok($st == 400 && $b =~ /"error":"invalid_field","field":"$case->[1]"/, "TEST 4 - $case->[0]: 400 naming $case->[1]")
            or Test::More::diag("$st $b");
    }
    my ($st, $b, $h) = http_request(nginx_port(), 'POST', '/engagement/trending', '{}', 'Content-Type' => 'application/json');
    Test::More::is($st, 405, 'TEST 4 - POST: 405');
    Test::More::is($h->{allow}, 'GET, HEAD', 'TEST 4 - Allow: GET, HEAD');
    Test::More::is(status_metric('nginx_engagement_trending_reads_total'), 0, 'TEST 4 - no read counted');



=== TEST 5: Redis down: 503 with Retry-After; views are kept in the zone and reach Redis once it is back, once
--- request
GET /status
--- response_body_like: nginx_engagement_trending_updates_total 0
--- no_error_log
[alert]
exited on signal
AddressSanitizer
--- timeout: 40
--- post_check
    main::rcli('FLUSHALL');
    Test::More::ok(main::ready(), 'TEST 5 - the workers reach Redis');
    main::stop_redis(Engagement::Test::redis_pid($main::rport));
    Test::More::ok(main::wait_until(sub { (main::trending('?window=24h&limit=3'))[0] == 503 }, 5), 'TEST 5 - Redis stopped: 503');
    my ($st, $d, $b, $h) = main::trending('?window=24h&limit=4');
    Test::More::is($st, 503, 'TEST 5 - a read is a 503');
    Test::More::is($h->{'retry-after'}, 1, 'TEST 5 - with Retry-After: 1');
    Test::More::like($b, qr/"error":"backend_unavailable"/, 'TEST 5 - and a JSON error');
    my $t = time;
    Test::More::is(main::send_views((['offline', 'news']) x 7), 7, 'TEST 5 - 7 views counted while Redis is down');
    # two buckets close with Redis away
    sleep(2 * $main::L + 1.5);
    Test::More::ok(status_metric('nginx_engagement_trending_buckets') >= 1, 'TEST 5 - the closed bucket is kept');
    main::start_redis($main::rport, keep => 1);
    Test::More::ok(main::wait_until(sub { status_metric('nginx_engagement_trending_buckets') <= 1
        && main::rcli('KEYS', 'eng:{tr}:h:*') =~ /h:/ }, 10), 'TEST 5 - Redis back: the bucket is sent');
    my ($hk) = grep { /:h:/ } split /\n/, main::rcli('KEYS', 'eng:{tr}:*');
    Test::More::is(main::rcli('ZSCORE', $hk, 'offline'), 7, 'TEST 5 - its 7 views, once');
    my ($ck) = grep { /:h:/ } split /\n/, main::rcli('KEYS', 'eng:{tr:cat:news}:*');
    Test::More::is(main::rcli('ZSCORE', $ck, 'offline'), 7, 'TEST 5 - and in its category\'s set');
    Test::More::ok(status_metric('nginx_engagement_trending_flush_errors_total') + status_metric('nginx_engagement_trending_read_errors_total') > 0,
        'TEST 5 - the errors are counted');



=== TEST 6: a reload keeps the zone and its buckets (counts before and after it reach Redis once); a reload with new sketch sizes is refused, said in the log, the running workers going on
--- request
GET /status
--- response_body_like: nginx_engagement_trending_updates_total 0
--- timeout: 40
--- error_log
[emerg]
--- post_check
    main::rcli('FLUSHALL');
    Test::More::ok(main::ready(), 'TEST 6 - the workers reach Redis');
    my $at = (int(time / $main::L) + 1) * $main::L + 0.02;
    sleep($at - time);
    Test::More::is(main::send_views((['kept', 'news']) x 9), 9, 'TEST 6 - 9 views');
    Test::More::ok(reload_nginx(2), 'TEST 6 - reloaded (HUP): new workers serve');
    Test::More::is(main::send_views((['kept', 'news']) x 4), 4, 'TEST 6 - 4 more views after the reload');
    my $t = time;
    Test::More::ok(main::wait_bucket_sent($t), 'TEST 6 - the buckets have gone to Redis');
    my ($hk) = grep { /:h:/ } split /\n/, main::rcli('KEYS', 'eng:{tr}:*');
    Test::More::is(main::rcli('ZSCORE', $hk, 'kept'), 13, 'TEST 6 - all 13 views in the hour set, once');
    Test::More::is(status_metric('nginx_engagement_trending_updates_total'), 13, 'TEST 6 - the zone\'s figures were kept');
    Test::More::unlike(error_log_text(), qr/new sketch sizes/, 'TEST 6 - the zone was taken over as it was');
    # the same zone, other sketch sizes
    my $conf = servroot() . '/conf/nginx.conf';
    my $c = slurp($conf);
    $c =~ s/category_k=128/category_k=64/ or die 'no category_k in the config';
    open my $fh, '>', $conf or die; print $fh $c; close $fh;
    my @before = sort { $a <=> $b } worker_pids();
    kill 'HUP', master_pid();
    Test::More::ok(main::wait_until(sub { error_log_text() =~ /trending zone "trend": new sketch sizes \(k=, categories=, category_k=\) or a new engagement_trending_bucket need a restart/ }, 10),
        'TEST 6 - a reload with category_k=64 is refused, and the log says why');
    sleep 0.5;
    Test::More::is(join(',', sort { $a <=> $b } worker_pids()), join(',', @before),
        'TEST 6 - the running workers go on');
    $t = time;
    Test::More::is(main::send_views((['after', 'news']) x 2), 2, 'TEST 6 - 2 views after it');
    Test::More::ok(main::wait_bucket_sent($t), 'TEST 6 - their bucket has gone to Redis');
    my @h = grep { /:h:/ } split /\n/, main::rcli('KEYS', 'eng:{tr:cat:news}:*');
    my $sum = 0;
    $sum += main::rcli('ZSCORE', $_, 'after') || 0 for @h;
    Test::More::is($sum, 2, 'TEST 6 - they reach the category\'s hour set');



=== TEST 7: the signals of an item from its own buckets: views and likes summed, views per minute, growth (the slope over closed minutes), like rate
--- request
GET /status
--- response_body_like: nginx_engagement_trending_updates_total 0
--- timeout: 80
--- post_check
    use POSIX qw(strftime);
    main::rcli('FLUSHALL');
    Test::More::ok(main::ready(), 'TEST 7 - the workers reach Redis');
    # well inside a minute: the 1h window's counts (120 s of 2 s buckets) are then 3 minutes
    main::wait_until(sub { my $s = time % 60; $s >= 2 && $s <= 45 }, 60);
    # and at the start of a bucket: the read comes before the next one
    # (its age 0), even on a loaded machine
    main::wait_until(sub { my $t = time; $t - int($t / $main::L) * $main::L < 0.2 }, 10);
    my $now = time;
    my $m = int($now / 60);
    my $min = sub { strftime('%Y%m%d%H%M', gmtime($_[0] * 60)) };
    main::rcli('HSET', 'eng:{c:sig}:m:' . $min->($m - 2), 'views', 10, 'likes', 1);
    main::rcli('HSET', 'eng:{c:sig}:m:' . $min->($m - 1), 'views', 30, 'likes', 5);
    main::rcli('HSET', 'eng:{c:sig}:m:' . $min->($m), 'views', 5);
    # the set of the last closed bucket (bucket b is named as minute b)
    main::rcli('ZADD', 'eng:{tr}:m:' . $min->(int($now / $main::L) - 1), 1000, 'sig');
    my ($st, $d, $b) = main::trending('?window=1h&limit=5');
    my $took = time - $now;
    Test::More::is($d->{items}[0]{contentId}, 'sig', 'TEST 7 - the item is answered') or Test::More::diag($b);
    my $it = $d->{items}[0];
    Test::More::is($it->{score}, 1000, 'TEST 7 - its score, the set\'s (age 0: weight 1)');
    Test::More::is($it->{views}, 45, 'TEST 7 - views: 10 + 30 + 5 of its three minutes');
    Test::More::is($it->{likes}, 6, 'TEST 7 - likes: 1 + 5');
    Test::More::is($it->{growth}, 20, 'TEST 7 - growth: from 10 to 30 views a minute over the closed minutes, +20');
    Test::More::is($it->{likeRate}, 0.1333, 'TEST 7 - like rate: 6 / 45');
    my $span = $now - (int($now / $main::L) - 60) * $main::L;
    Test::More::ok(abs($it->{viewsPerMinute} - 45 * 60 / $span) < 0.5 + 45 * 60 / $span * $took / $span,
        "TEST 7 - views per minute: 45 over the window's $span s ($it->{viewsPerMinute})");



=== TEST 8: engagement trending without engagement_redis is refused at nginx -t
--- http_config
    engagement_zone engagement:1m;
--- config
    location = /t { engagement trending; }
--- must_die
--- error_log
"engagement_trending_zone" and "engagement trending" need "engagement_redis"



=== TEST 9: engagement_trending_zone parameters out of bounds are refused at nginx -t
--- http_config
    engagement_redis 127.0.0.1:6379;
    engagement_trending_zone t:1m k=2;
--- config
    location = /t { engagement trending; }
--- must_die
--- error_log
invalid "k=2" of "engagement_trending_zone": k= from 8 to 4096



=== TEST 10: engagement_trending_bucket beyond a minute is refused at nginx -t
--- http_config
    engagement_redis 127.0.0.1:6379;
    engagement_trending_bucket 2m;
--- config
    location = /t { engagement trending; }
--- must_die
--- error_log
invalid time "2m" of "engagement_trending_bucket": from 1s to 1m



=== TEST 11: a zone too small for its sketches is refused at start
--- http_config
    engagement_redis 127.0.0.1:6379;
    engagement_trending_zone t:64k k=4096;
--- config
    location = /t { engagement trending; }
--- must_die
--- error_log
trending zone "t" is too small
