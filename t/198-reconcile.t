# tools/reconcile, the operator's tool that compares Redis's totals and day
# buckets with ClickHouse's eng.events FINAL per content and UTC day: after
# views sent through the module (real redis-server, real clickhouse-server,
# the durable writer with check=) it finds no drift; after Redis is
# corrupted by hand (a total raised with HINCRBY, a day bucket deleted) it
# names exactly those two fields, in text and JSON; --repair sets them from
# ClickHouse (the deleted bucket made again with a day bucket's expiry),
# says what it changed, and a second --repair changes nothing; the module's
# next flushes add onto the repaired figures; a bad option exits 2 with a
# JSON error.
#
# The servers are ours, on free loopback ports, their data in private
# temporary directories (never in servroot).
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Engagement::ClickHouse;
use Test::Nginx::Socket;
use JSON::PP;
use Time::HiRes qw(sleep time);
use POSIX qw(strftime);

if (ch_bin()) {
    Test::More::plan('no_plan');
} else {
    Test::More::plan(skip_all => 'clickhouse-server is not installed (./build.sh installs it)');
}

our $port = nginx_port();
our $chp = free_ports(150, 15, 3);
our $chdir = scratch_dir("clickhouse-reconcile-$chp");
our $rport = free_ports(100, 20, 1);
ch_setup(port => $chp, dir => $chdir);
$ENV{TEST_NGINX_CH_PORT} = $chp;
$ENV{TEST_NGINX_REDIS_PORT} = $rport;
$ENV{TEST_NGINX_SPOOL} = scratch_dir("spool-reconcile");

our $ch = ch_start(fresh => 1);
ch_schema();
start_redis($rport);

master_on();
workers(2);
log_level('info');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

our $tool = root_dir() . '/tools/reconcile';

# runs the tool with the servers' addresses: (exit status, stdout)
sub reconcile {
    my @args = @_;
    open(my $fh, '-|', $^X, $tool, '--redis', "127.0.0.1:$rport",
         '--clickhouse', "http://127.0.0.1:$chp/", @args) or die "$tool: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

sub reconcile_json {
    my ($rc, $out) = reconcile('--json', @_);
    my $j = eval { decode_json($out) };
    Test::More::diag("not JSON: $out") unless $j;
    return ($rc, $j // {});
}

sub drift_names {
    my ($j) = @_;
    return join ', ', sort map {
        "$_->{content} $_->{scope} $_->{field} " . ($_->{redis} // "") . "/$_->{clickhouse}"
    } @{ $j->{drift} // [] };
}

sub wait_settled {
    return wait_until {
        my (undef, $t) = http_request($port, 'GET', '/status');
        $t =~ /^nginx_engagement_writer_queued_events 0$/m
            && $t =~ /^nginx_engagement_writer_inflight_events 0$/m
            && $t =~ /^nginx_engagement_writer_spool_files 0$/m
            && $t =~ /^nginx_engagement_pending_contents\{zone="engagement"\} 0$/m
            && $t =~ /^nginx_engagement_inflight_contents\{zone="engagement"\} 0$/m;
    } 20;
}

sub view {
    my ($c, $s, $d) = @_;
    return view_attempt($port,
        qq({"contentId":"$c","sessionId":"$s","viewerId":"w-$s","durationMs":$d}));
}

run_tests();

__DATA__

=== TEST 1: no drift after views; the corrupted fields exactly; --repair sets them from ClickHouse, idempotently
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id rec-edge;
    engagement_flush_interval 100ms;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms buckets=0 uniques=0;
    engagement_writer http://127.0.0.1:$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=100 interval=100ms
        connect_timeout=300ms timeout=2s retry=200ms spool=$TEST_NGINX_SPOOL
        check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D;
--- config
    location = /engagement/view {
        engagement view;
        engagement_view_after 10s;
        engagement_engaged_after 30s;
    }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- post_check
    # not across a UTC midnight: the day buckets are today's
    sleep(1) while time % 86400 > 86400 - 40;
    my $today = strftime('%Y-%m-%d', gmtime);
    my $dkey = strftime('%Y%m%d', gmtime);

    # v1: 4 viewers at 40 s (views and engaged); v2: 3 at 20 s (views);
    # v3: 2 at 20 s, one at 5 s (below policy), one repeat (duplicate)
    my ($counted, $other) = (0, 0);
    for my $i (1 .. 4) { $counted++ if (view('v1', "a$i", 40000) // '') eq 'counted' }
    for my $i (1 .. 3) { $counted++ if (view('v2', "b$i", 20000) // '') eq 'counted' }
    for my $i (1 .. 2) { $counted++ if (view('v3', "c$i", 20000) // '') eq 'counted' }
    $other++ if (view('v3', 'c9', 5000) // '') eq 'below_policy';
    $other++ if (view('v3', 'c1', 20000) // '') eq 'duplicate';
    is("$counted $other", "9 2", "9 views counted, 2 answered not counted");
    ok(wait_settled(), "Redis and ClickHouse caught up");
    is(ch("SELECT count() FROM eng.events FINAL"), 11, "11 rows in eng.events");
    is(redis_cli($rport, undef, 'HGET', 'eng:{c:v1}', 'engaged'), 4, "v1 engaged 4 in Redis");
    is(redis_cli($rport, undef, 'HGET', "eng:{c:v2}:d:$dkey", 'views'), 3,
       "v2's day bucket holds 3 views");

    # no drift
    my ($rc, $j) = reconcile_json();
    is($rc, 0, "no drift: exit 0");
    is(scalar @{ $j->{drift} // [1] }, 0, "no drift: the drift list is empty");
    is($j->{contents}, 3, "3 contents checked");
    is($j->{checked_keys}, 3 * 8, "each content's total and 7 days of buckets");
    is("$j->{from} $j->{to}", strftime('%Y-%m-%d', gmtime(time - 6 * 86400)) . " $today",
       "the last 7 UTC days by default");
    my $out;
    ($rc, $out) = reconcile();
    like($out, qr/^drift: none$/m, "text: drift: none");

    # corrupt Redis: raise v1's total, delete v2's day bucket
    redis_cli($rport, undef, 'HINCRBY', 'eng:{c:v1}', 'views', 5);
    redis_cli($rport, undef, 'DEL', "eng:{c:v2}:d:$dkey");
    ($rc, $j) = reconcile_json();
    is($rc, 1, "drift: exit 1");
    is(drift_names($j), "v1 total views 9/4, v2 $today views /3",
       "the report names exactly the two corrupted fields");
    my %d = map { ("$_->{content} $_->{field}" => $_) } @{ $j->{drift} };
    is($d{'v1 views'}{diff}, 5, "v1's total: +5");
    is($d{'v2 views'}{diff}, -3, "v2's day: -3");
    is($d{'v2 views'}{key}, "eng:{c:v2}:d:$dkey", "v2's drift names its key");
    is_deeply($j->{drift_contents}, ['v1', 'v2'], "drifting contents: v1, v2");
    ($rc, $out) = reconcile();
    like($out, qr/^drift: 2 field\(s\) in 2 content\(s\)$/m, "text: 2 fields in 2 contents");
    like($out, qr/^\s+v1\s+total\s+views\s+9\s+4\s+\+5$/m, "text: v1's line");
    like($out, qr/^\s+v2\s+\Q$today\E\s+views\s+-\s+3\s+-3$/m, "text: v2's line");

    # the totals alone, the days alone
    ($rc, $j) = reconcile_json('--no-days');
    is(drift_names($j), "v1 total views 9/4", "--no-days: v1's total alone");
    ($rc, $j) = reconcile_json('--no-totals');
    is(drift_names($j), "v2 $today views /3", "--no-totals: v2's day alone");
    ($rc, $j) = reconcile_json('--from', $today, '--to', $today);
    is("$j->{days} $j->{checked_keys}", "1 6", "--from/--to today: one day per content");

    # only the given content
    ($rc, $j) = reconcile_json('--content', 'v3');
    is("$rc $j->{contents} " . scalar @{ $j->{drift} }, "0 1 0", "--content v3: v3 alone, no drift");

    # a dry run changes nothing
    ($rc, $j) = reconcile_json('--repair', '--dry-run');
    is($rc, 1, "--dry-run: exit 1");
    is(scalar @{ $j->{repaired} }, 2, "--dry-run: 2 fields it would set");
    is(redis_cli($rport, undef, 'HGET', 'eng:{c:v1}', 'views'), 9, "--dry-run left v1 alone");

    # repair
    ($rc, $out) = reconcile('--repair');
    is($rc, 0, "--repair: exit 0");
    like($out, qr/^repair: 2 field\(s\) set, 0 skipped$/m, "--repair says 2 fields set");
    like($out, qr/^  set eng:\{c:v1\} views: 9 -> 4$/m, "--repair: v1's total 9 -> 4");
    like($out, qr/^  set eng:\{c:v2\}:d:$dkey views: \(absent\) -> 3$/m,
         "--repair: v2's day bucket made again with 3");
    is(redis_cli($rport, undef, 'HGET', 'eng:{c:v1}', 'views'), 4, "v1's total is 4 again");
    is(redis_cli($rport, undef, 'HGET', "eng:{c:v2}:d:$dkey", 'views'), 3, "v2's day bucket is 3 again");
    my $ttl = redis_cli($rport, undef, 'TTL', "eng:{c:v2}:d:$dkey");
    ok($ttl > 1099 * 86400 && $ttl <= 1101 * 86400, "the bucket made again expires like a day bucket ($ttl s)");
    is(redis_cli($rport, undef, 'TTL', 'eng:{c:v1}'), -1, "the totals keep no expiry");
    ($rc, $j) = reconcile_json();
    is("$rc " . scalar @{ $j->{drift} }, "0 0", "after the repair: no drift");
    ($rc, $j) = reconcile_json('--repair');
    is("$rc " . scalar @{ $j->{repaired} }, "0 0", "a second --repair changes nothing");

    # the module goes on from the repaired figures
    is(view('v2', 'b4', 20000), 'counted', "one more view of v2");
    is(view('v1', 'a5', 40000), 'counted', "one more view of v1");
    ok(wait_settled(), "caught up again");
    is(redis_cli($rport, undef, 'HGET', 'eng:{c:v1}', 'views'), 5, "v1's total: 5");
    is(redis_cli($rport, undef, 'HGET', "eng:{c:v2}:d:$dkey", 'views'), 4, "v2's day: 4");
    ($rc, $j) = reconcile_json();
    is("$rc " . scalar @{ $j->{drift} }, "0 0", "no drift after more views");

    # errors: exit 2, a JSON error naming the problem
    ($rc, $j) = reconcile_json('--from', 'yesterday');
    is($rc, 2, "a bad --from: exit 2");
    like($j->{error} // '', qr/--from: not a date: yesterday/, "the error names --from");
    open(my $fh, '-|', $^X, $tool, '--json', '--redis', '127.0.0.1:1',
         '--clickhouse', "http://127.0.0.1:$chp/") or die;
    local $/;
    my $o = <$fh>;
    close $fh;
    is($? >> 8, 2, "Redis unreachable: exit 2");
    like($o, qr/"error":"redis 127\.0\.0\.1:1: /, "the error names Redis");
--- no_error_log
[alert]
[emerg]
