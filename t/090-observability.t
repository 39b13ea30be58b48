# Guards observability with Redis in play: the status endpoint (promtool
# on a histogram, freshness, Redis gauges), the JSON form carrying the same
# numbers as the text form, the health check flipping on a full zone and
# on Redis down past its grace, and the access-log variables.
#
# The redis-server is ours (a free port, data in a private temporary
# directory, $TEST_NGINX_REDIS_PORT in the config); the block's
# "--- post_check" stops and starts it and waits on status figures.
use strict;
use warnings;
use FindBin;
# our helpers first: their END (which stops our servers) then runs after
# the runner's END has stopped nginx
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use JSON::PP;
use Time::HiRes qw(sleep time);

our $port = nginx_port();
our $rport = free_ports(400, 50, 1);
start_redis($rport);
$ENV{TEST_NGINX_REDIS_PORT} = $rport;

master_on();
workers(2);
log_level('info');
no_shuffle();
add_response_body_check(post_check_hook());

sub metric {
    my ($t, $k) = @_;
    return $t =~ /^\Q$k\E (\S+)$/m ? $1 : undef;
}
sub promtool_ok {
    my ($text, $name) = @_;
    my $out = scratch_dir() . '/promtool.out';
    open my $fh, '|-', "promtool check metrics > $out 2>&1" or die;
    print $fh $text;
    close $fh;
    is($?, 0, "promtool check metrics: $name") or diag(slurp($out));
}
sub health { my ($st, $b) = http_request($port, 'GET', '/health'); return ($st, $b) }
sub wait_health {
    my ($want, $secs) = @_;
    my ($st, $b);
    wait_until { ($st, $b) = health(); $st == $want } $secs;
    return ($st, $b);
}
sub idle {
    my $t = status_text();
    return metric($t, 'nginx_engagement_pending_contents{zone="engagement"}') == 0
        && metric($t, 'nginx_engagement_inflight_contents{zone="engagement"}') == 0;
}

run_tests();

__DATA__

=== TEST 1: status, JSON status, health and the access log, with Redis up, down and back
--- http_config
    engagement_zone engagement:32k;
    engagement_dedupe_zone engagement_dedupe:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms;
    engagement_flush_interval 200ms;
    engagement_health_grace 700ms;
    log_format eng '$request_method $uri $status $engagement_outcome $engagement_reason $engagement_content_id';
--- config
    access_log logs/eng.log eng;
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
    location = /health { engagement health; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 },
       'both workers connect to Redis');
    my ($st, $b) = health();
    is($st, 200, 'healthy at start');
    is($b, qq({"status":"ok","redis":"ready","pendingContents":0}\n), 'health says ok, Redis ready');

    my $t = status_text();
    promtool_ok($t, 'fresh, with Redis');
    is(metric($t, 'nginx_engagement_redis_ready_workers{zone="engagement"}'), 2, 'both workers have a ready Redis connection');
    my $start = metric($t, 'nginx_engagement_start_time_seconds{zone="engagement"}');
    ok(abs($start - time) < 30, 'start time is now');

    # traffic, flushed: the histogram counts the rounds
    post_view($port, qq({"contentId":"h$_","sessionId":"s"})) for 1 .. 5;
    wait_until {
        idle() && (status_metric('nginx_engagement_flush_duration_seconds_count{zone="engagement"}') // 0) >= 1
    };
    $t = status_text();
    promtool_ok($t, 'after flushes');
    my $count = metric($t, 'nginx_engagement_flush_duration_seconds_count{zone="engagement"}');
    my $inf = metric($t, 'nginx_engagement_flush_duration_seconds_bucket{zone="engagement",le="+Inf"}');
    ok($count >= 1, "flush rounds observed ($count)");
    is($inf, $count, 'the +Inf bucket equals the count');
    is(metric($t, 'nginx_engagement_flush_commands_total{zone="engagement",result="ok"}'), 5, 'five content flushes confirmed');
    is(metric($t, 'nginx_engagement_oldest_pending_age_seconds{zone="engagement"}'), 0, 'nothing is waiting');

    # the JSON form has the same numbers as the text form
    my (undef, $json) = http_request($port, 'GET', '/status?format=json');
    $t = status_text();
    my $doc = decode_json($json);
    my ($cz) = grep { $_->{zone} eq 'engagement' } @{ $doc->{zones} };
    my $same = 0;
    my $checked = 0;
    for my $line (split /\n/, $t) {
        next unless $line =~ /^nginx_engagement_(\w+)\{zone="engagement"(?:,kind="counters")?(?:,(?:metric|reason|result)="(\w+)")?\} (\d+)$/;
        my ($fam, $val, $n) = ($1, $2, $3);
        next if $fam =~ /^(zone_free_bytes|zone_used_bytes|read_requests_total)$/;   # move between the two reads
        my $key = $fam . (defined $val ? "_$val" : '');
        $checked++;
        if (defined $cz->{$key} && $cz->{$key} == $n) { $same++ } else { diag("$key: text $n, json " . ($cz->{$key} // 'missing')) }
    }
    ok($checked >= 25, "compared $checked figures");
    is($same, $checked, 'the JSON form carries the same numbers as the text form');
    is($cz->{flush_duration_seconds_bucket}{'+Inf'}, $cz->{flush_duration_seconds_count}, 'JSON has the histogram');

    # Redis down: pending grows old, health flips after the grace period
    stop_redis(redis_pid($rport));
    post_view($port, q({"contentId":"late","sessionId":"s"}));
    ($st, $b) = health();
    is($st, 200, 'still healthy inside the grace period');
    ($st, $b) = wait_health(503, 5);
    is($st, 503, 'health flips to 503 when Redis is down past the grace');
    like($b, qr/^\{"status":"unavailable","reason":"redis_unavailable","downForMs":\d+\}\n\z/, 'with the reason');
    wait_until { (status_metric('nginx_engagement_oldest_pending_age_seconds{zone="engagement"}') // 0) >= 1 };
    $t = status_text();
    ok(metric($t, 'nginx_engagement_oldest_pending_age_seconds{zone="engagement"}') >= 1, 'the oldest pending delta ages');
    is(metric($t, 'nginx_engagement_redis_ready_workers{zone="engagement"}'), 0, 'no worker has Redis');
    promtool_ok($t, 'Redis down');

    # fill the tiny counters zone with content Redis has never confirmed
    my $full = 0;
    for my $i (1 .. 400) {
        my ($s) = post_view($port, qq({"contentId":"fill-$i","sessionId":"s"}));
        if ($s == 503) { $full = 1; last }
    }
    ok($full, 'the counters zone fills while Redis is down');
    ($st, $b) = health();
    is($st, 503, 'health is 503 while the zone is full');
    like($b, qr/"reason":"(?:zone_full|redis_unavailable)"/, 'with a reason');

    # Redis back: everything flushes, cached entries can be evicted, health recovers
    start_redis($rport, keep => 1);
    wait_until { idle() };
    ($st) = post_view($port, q({"contentId":"after-full","sessionId":"s"}));
    is($st, 202, 'new content is accepted again (flushed entries make room)');
    ($st, $b) = wait_health(200, 5);
    is($st, 200, 'health back to 200 once the zone has room and Redis is up');

    # the access log can be reconciled with the outcomes
    post_view($port, q({"contentId":"log1","sessionId":"s"}));
    post_view($port, q({"contentId":"log1","sessionId":"s"}));
    post_view($port, q({"contentId":"log1"}));
    http_request($port, 'GET', '/engagement/view');
    # (a read that crosses a slow Redis under a sanitizer may 503: try again)
    wait_until { (http_request($port, 'GET', '/engagement/summary/log1'))[0] == 200 } 5;
    my $alog = servroot() . '/logs/eng.log';
    wait_until { slurp($alog) =~ m{^GET /engagement/summary/log1 200 }m } 5;
    my $log = slurp($alog);
    like($log, qr{^POST /engagement/view 202 counted - log1$}m, 'log: counted');
    like($log, qr{^POST /engagement/view 200 not_counted duplicate log1$}m, 'log: duplicate with reason');
    like($log, qr{^POST /engagement/view 400 invalid sessionId -$}m, 'log: invalid, naming the field');
    like($log, qr{^GET /engagement/view 405 refused method -$}m, 'log: refused method');
    like($log, qr{^GET /engagement/summary/log1 200 read - -$}m, 'log: read');
    like($log, qr{^POST /engagement/view 503 unavailable zone_full fill-\d+$}m, 'log: zone full');
    unlike(error_log_text(), qr/\[alert\]|exited on signal|AddressSanitizer/, 'no alert or crash');
--- no_shutdown_error_log eval
qr/\[alert\]|exited on signal|AddressSanitizer/
