# Guards the counters zone against floods (issue 12, items 8 and 10):
# events that count nothing make no entry, so a flood of below-policy
# events with random content ids cannot fill the zone and refuse everyone;
# a full zone still counts content it holds; with Redis, making room for
# one event evicts a bounded number of cached entries, never the cache.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';

our $port = nginx_port();
our $rport;

master_on();
workers(1);
log_level('warn');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

# "--- redis: fresh <size>" starts a redis-server for the block, and its
# http_config is a counters zone of that size flushed there
add_block_preprocessor(sub {
    my ($block) = @_;
    return unless $block->{redis};
    $rport = free_ports(300, 50, 1);
    start_redis($rport);
    my $http = dd_redis_http($rport, $block->{redis}[0] =~ /(\d+k)/, 'flood-edge');
    $block->can('set_value') ? $block->set_value(http_config => $http)
                             : ($block->{http_config} = [$http]);
});

# (status, reason or 'counted') of one view
sub fl_view {
    my ($c, $who, $ms, $more) = @_;
    my ($st, $body) = post_view($port,
        qq({"contentId":"$c","sessionId":"s$who","viewerId":"u$who","durationMs":$ms)
        . ($more // '') . '}');
    my $r = $body =~ /"counted":true/ ? 'counted'
          : $body =~ /"(?:reason|error)":"(\w+)"/ ? $1 : $body;
    return ($st, $r);
}

# a figure of the counters zone (its labels: zone, then kind for some)
sub fl_metric {
    my ($name) = @_;
    my $t = status_text();
    return $t =~ /^nginx_engagement_$name\{zone="engagement"(?:,kind="counters")?\} (\d+)$/m
           ? $1 : -1;
}

run_tests();

__DATA__

=== TEST 1: without Redis, a flood of below-policy events with random content ids makes no entry; a full zone still counts the content it holds
--- http_config
    engagement_zone engagement:32k;
    engagement_dedupe_zone engagement_dedupe:1m;
--- config
    location = /engagement/view {
        engagement view;
        engagement_view_after 10s;
        engagement_engaged_after 30s;
    }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my @r = fl_view('present', 'p1', 20000);
    is("@r", '202 counted', 'a view of the present content counts');

    my %answers;
    for my $i (1 .. 600) {
        my ($st, $r) = fl_view("flood-$i-" . int(rand 1e9), "f$i", 1000);
        $answers{"$st $r"}++;
    }
    is(join(', ', map { "$_: $answers{$_}" } sort keys %answers),
       '200 below_policy: 600', 'every flood event is answered below_policy');
    is(fl_metric('zone_entries'), 1, 'the flood made no entry');

    @r = fl_view('fresh', 'n1', 20000);
    is("@r", '202 counted', 'a new content still counts after the flood');

    # counted views of new content do fill it: counts are the only copy
    my ($full, $i) = (0, 0);
    while (!$full && $i < 2000) {
        $i++;
        my ($st) = fl_view("fill-$i", "g$i", 20000);
        $full = $st == 503;
    }
    ok($full, "counted views of $i new contents fill the zone: 503");

    my $counted = 0;
    for my $j (2 .. 6) {
        my ($st, $r) = fl_view('present', "p$j", 20000);
        $counted++ if $st == 202 && $r eq 'counted';
    }
    is($counted, 5, 'the full zone still counts the content it holds');
    my ($st, $r) = fl_view('present', 'p2', 20000);
    is("$st $r", '200 duplicate', 'and still deduplicates it');
    my (undef, $sum) = http_request($port, 'GET', '/engagement/summary/present');
    like($sum, qr/"views":6,/, 'present: 6 views in the summary');
    is(fl_metric('cache_evictions_total'), 0, 'nothing counted was evicted');
--- error_log
is full



=== TEST 2: with Redis, room for one event is made by evicting a bounded number of cached entries, not the cache
--- redis: fresh 256k
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    # short ids fill the zone with clean (flushed) entries of one size
    # (replays: no unique-viewer list, entries of one size only)
    my $n = 0;
    while (fl_metric('cache_evictions_total') == 0 && $n < 1000) {
        for (1 .. 50) {
            $n++;
            fl_view("a$n", "a$n", 0, ',"replay":true');
        }
        dd_flushed();
    }
    ok(fl_metric('cache_evictions_total') > 0, "$n contents fill the zone");
    # every other one used again: the LRU tail holds one entry of each
    # page, so a page for a bigger entry frees only after half the cache
    for (my $i = 2; $i <= $n; $i += 2) {
        fl_view("a$i", "b$i", 0, ',"replay":true');
    }
    ok(dd_flushed(), 'flushed');
    my $entries = fl_metric('zone_entries');
    my $ev0 = fl_metric('cache_evictions_total');
    my $long = 'L' x 120;
    # the bound: 4 tries of 4 rounds of at most 2 entries
    my ($tries, $most, $answer) = (0, 0, '');
    while ($answer ne '202 counted' && $tries < 100) {
        $tries++;
        my $ev0 = fl_metric('cache_evictions_total');
        $answer = join ' ', fl_view($long, 'l1', 0, ',"replay":true');
        my $ev = fl_metric('cache_evictions_total') - $ev0;
        $most = $ev if $ev > $most;
    }
    is($answer, '202 counted', "a bigger entry counts after $tries tries");
    ok($most <= 32, "each try evicted at most 32 cached entries ($most)");
    ok(fl_metric('zone_entries') > $entries / 2,
       "the cache was not emptied ($entries entries before, "
       . fl_metric('zone_entries') . " after)");
    ok(dd_flushed(), 'flushed');
    is(redis_cli($rport, undef, 'HGET', "eng:{c:$long}", 'replays'), 1,
       'the event counted once in Redis');



=== TEST 3: a short dedupe window elsewhere does not wipe the previous salt a longer window still needs
--- http_config
    engagement_salt_rotate 2s;
--- config
    location = /long/view { engagement view; engagement_dedupe_window 1m; }
    location = /short/view { engagement view; engagement_dedupe_window 100ms; }
--- request
GET /status
--- error_code: 404
--- post_check
    # views at chosen points of the 2 s salt periods: waits for the clock
    my $at = sub {
        my ($phase) = @_;
        my $now = Time::HiRes::time();
        my $d = $phase - ($now - int($now / 2) * 2);
        $d += 2 if $d <= 0.05;
        Time::HiRes::sleep($d);
    };
    my $view = sub {
        my ($loc, $c) = @_;
        my ($st, $body) = post_view($port, qq({"contentId":"$c","sessionId":"s1"}),
                                    "/$loc/view");
        return $st;
    };
    $at->(1.5);
    is($view->('long', 'w'), 202, 'a view with the 1 min window, before a rotation');
    # (the salt's clock counts whole seconds)
    $at->(1.3);
    is($view->('short', 'other'), 202,
       'a view with the 100 ms window, 1.3 s after the rotation');
    is($view->('long', 'w'), 200,
       'the first view repeated: still a duplicate (the previous salt is kept for 1 min)');



=== TEST 4: a zone named engagement_salt is refused
--- http_config
    engagement_zone engagement_salt:32k;
--- config
    location = /v { engagement view zone=engagement_salt; }
--- must_die
--- error_log
zone name "engagement_salt" is reserved for the module's identity salt



=== TEST 5: an enum directive's error lists its choices
--- config
    location = /v { engagement view; engagement_dedupe_key cookie; }
--- must_die
--- error_log
invalid value "cookie" of "engagement_dedupe_key": must be viewer, session or client



=== TEST 6: engagement_opt_out lists its choices
--- config
    location = /v { engagement view; engagement_opt_out maybe; }
--- must_die
--- error_log
invalid value "maybe" of "engagement_opt_out": must be off, anonymous or drop



=== TEST 7: /health names a full zone whatever the length of its name (the answer is sized from the name)
--- http_config eval
"    engagement_zone " . ('z' x 4000) . ":32k;\n"
. "    engagement_dedupe_zone engagement_dedupe:1m;\n"
--- config eval
"    location = /engagement/view { engagement view zone=" . ('z' x 4000) . "; engagement_view_after 10s; }\n"
. "    location = /health { engagement health; }\n"
--- request
GET /health
--- response_body_like: ^\{"status":"ok"
--- post_check
    my ($full, $i) = (0, 0);
    while (!$full && $i < 2000) {
        $i++;
        my ($st) = fl_view("fill-$i", "h$i", 20000);
        $full = $st == 503;
    }
    ok($full, "counted views of $i new contents fill the zone: 503");
    my ($st, $body) = http_request($port, 'GET', '/health');
    is($st, 503, 'health is 503 while the zone is full');
    is($body, '{"status":"unavailable","reason":"zone_full","zone":"' . ('z' x 4000) . "\"}\n",
       'and names the zone, all 4,000 characters of it');
--- error_log eval
qr/engagement zone "z{100}/
