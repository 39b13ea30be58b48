# Runs every query of docs/analytics-sql.md against a real clickhouse-server
# (Debian's 18.16, on its own ports) loaded with conf-examples/clickhouse/
# schema.sql, after views and reactions sent through the module with its
# durable writer (and a real redis-server for the reactions), and checks
# each answer against what was sent: the documented SQL and the rollups it
# reads are right. Then conf-examples/clickhouse/retention.sh drops the
# partitions past their retention and keeps the others.
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
use Time::HiRes qw(sleep time);

if (ch_bin()) {
    Test::More::plan('no_plan');
} else {
    Test::More::plan(skip_all => 'clickhouse-server is not installed (./build.sh installs it)');
}

our $port = nginx_port();
our $chp = free_ports(150, 15, 3);
our $chdir = scratch_dir("clickhouse-sql-$chp");
our $rport = free_ports(100, 20, 1);
ch_setup(port => $chp, dir => $chdir);
$ENV{TEST_NGINX_CH_PORT} = $chp;
$ENV{TEST_NGINX_REDIS_PORT} = $rport;
$ENV{TEST_NGINX_SPOOL} = scratch_dir("spool-sql");

our $ch = ch_start(fresh => 1);
ch_schema();
start_redis($rport);

master_on();
workers(2);
log_level('info');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

# the documented queries, by their "-- q: name" line
our (%Q, %Ran);
{
    my $md = slurp(root_dir() . '/docs/analytics-sql.md');
    while ($md =~ /```sql\n-- q: (\w+)\n(.*?)```/sg) {
        $Q{$1} = $2;
    }
}

sub q_rows {
    my ($name) = @_;
    die "no query $name in docs/analytics-sql.md" unless $Q{$name};
    $Ran{$name} = 1;
    my $out = ch($Q{$name} . " FORMAT TabSeparated");
    return [ map { [ split /\t/, $_, -1 ] } grep { length } split /\n/, $out ];
}

sub q_text {
    my ($name) = @_;
    return join "\n", map { join "\t", @$_ } @{ q_rows($name) };
}

sub wait_drained {
    return wait_until {
        my (undef, $t) = http_request($port, 'GET', '/status');
        $t =~ /^nginx_engagement_writer_queued_events 0$/m
            && $t =~ /^nginx_engagement_writer_inflight_events 0$/m
            && $t =~ /^nginx_engagement_writer_spool_files 0$/m;
    } 20;
}

sub react {
    my ($method, $json) = @_;
    my ($st) = http_request($port, $method, '/engagement/like', $json,
                            'Content-Type' => 'application/json');
    return $st;
}

run_tests();

__DATA__

=== TEST 1: each documented query answers what was sent; retention.sh drops only what is past its retention
--- http_config
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:4m;
    engagement_edge_id sql-edge;
    engagement_interaction subscribe_button share_button;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms;
    engagement_writer http://127.0.0.1:$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=100 interval=100ms
        connect_timeout=300ms timeout=2s retry=200ms spool=$TEST_NGINX_SPOOL
        check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /engagement/view {
        engagement view;
        engagement_view_after 10s;
        engagement_engaged_after 30s;
    }
    location = /engagement/like { engagement like; }
    location = /engagement/event { engagement event; }
    location = /engagement/heartbeat {
        engagement heartbeat;
        engagement_heartbeat_record on;
    }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- post_check
    # v1 (channel ch1, music): 12 viewers; durations 5 s (below policy:
    # not a view), 20 s (a view) or 40 s (a view, engaged); devices and
    # sources cycle. v2 (ch1, gaming): 5 viewers at 40 s. v3 (no channel):
    # 3 viewers at 20 s.
    my (%views, %engaged, %dev_src, $v1_events, $v1_dur, %uniq) = ();
    my ($sent, $ok) = (0, 0);
    my @plan;
    for my $i (1 .. 12) {
        my $d = (5000, 20000, 40000)[$i % 3];
        push @plan, ['v1', 'ch1', 'music', $i, $d];
    }
    push @plan, ['v2', 'ch1', 'gaming', $_, 40000] for 1 .. 5;
    push @plan, ['v3', '', '', $_, 20000] for 1 .. 3;
    for my $p (@plan) {
        my ($c, $chn, $cat, $i, $d) = @$p;
        my $dev = (qw(mobile desktop))[$i % 2];
        my $src = (qw(feed search external))[$i % 3];
        my $json = qq({"contentId":"$c","sessionId":"s-$c-$i","viewerId":"viewer-$c-$i",)
                 . qq("device":"$dev","source":"$src","durationMs":$d)
                 . ($chn ? qq(,"channelId":"$chn","category":"$cat") : '') . '}';
        my ($st) = post_view($port, $json);
        $sent++;
        $ok++ if $st && ($st == 200 || $st == 202);
        my $v = $d >= 10000 ? 1 : 0;
        my $e = $d >= 30000 ? 1 : 0;
        $views{$c} += $v;
        $engaged{$c} += $e;
        if ($c eq 'v1') {
            $dev_src{"$dev\t$src"} += $v;
            $v1_events++;
            $v1_dur += $d;
            $uniq{"viewer-v1-$i"} = 1 if $v;
        }
    }
    is($ok, $sent, "$sent view events accepted");

    # reactions on v1: u1 like, u2 love, u3 like then unlike, u4 like
    # then wow (a change)
    my @r = (['POST', '{"contentId":"v1","userId":"u1"}'],
             ['POST', '{"contentId":"v1","userId":"u2","reaction":"love"}'],
             ['POST', '{"contentId":"v1","userId":"u3"}'],
             ['DELETE', '{"contentId":"v1","userId":"u3"}'],
             ['POST', '{"contentId":"v1","userId":"u4"}'],
             ['POST', '{"contentId":"v1","userId":"u4","reaction":"wow"}']);
    my $rok = 0;
    for (@r) { my $st = react(@$_); $rok++ if $st && $st >= 200 && $st < 300 }
    is($rok, scalar @r, "6 reaction requests answered 2xx");

    # interactions on v1: 3 subscribe_button, 1 share_button
    my $cok = 0;
    for my $n (qw(subscribe_button subscribe_button share_button subscribe_button)) {
        my ($st) = http_request($port, 'POST', '/engagement/event',
            qq({"contentId":"v1","type":"click","name":"$n","positionMs":1200}),
            'Content-Type' => 'application/json');
        $cok++ if $st && $st == 202;
    }
    is($cok, 4, "4 interaction events counted");
    push @r, (1) x 4;

    # heartbeats on v1: sessions h1 and h2 playing, h3 playing then ended,
    # all in one 10-second slot of one minute
    sleep(1) while (time % 60) % 10 > 7 || time % 60 > 57;
    my $hok = 0;
    for my $h (['h1', 'playing', 1000], ['h2', 'playing', 2000], ['h3', 'playing', 3000],
               ['h3', 'ended', 3500]) {
        my ($st) = http_request($port, 'POST', '/engagement/heartbeat',
            qq({"contentId":"v1","sessionId":"$h->[0]","state":"$h->[1]","positionMs":$h->[2],"durationMs":60000}),
            'Content-Type' => 'application/json');
        $hok++ if $st && $st == 200;
    }
    is($hok, 4, "4 heartbeats recorded");
    push @r, (1) x 4;

    ok(wait_drained(), "the writer's queue drains");
    is(ch("SELECT count() FROM eng.events FINAL"), $sent + @r,
       "every event is a row in eng.events");

    # content_minutes: one row per minute; their sums are v1's figures
    my $rows = q_rows('content_minutes');
    ok(@$rows >= 1 && @$rows <= 2, "content_minutes: the run's minutes ("
       . scalar(@$rows) . ")");
    my ($sv, $se, $sr) = (0, 0, 0);
    for (@$rows) { $sv += $_->[1]; $se += $_->[2]; $sr += $_->[3] }
    is("$sv $se $sr", "$views{v1} $engaged{v1} 0",
       "content_minutes: views, engaged, replays of v1");

    $rows = q_rows('content_days');
    is(join(',', map { $_->[1] } @$rows), $views{v1}, "content_days: v1's views today");

    # content_by_country: no country configured here, so one row of ''
    is(q_text('content_by_country'), "\t$views{v1}\t100",
       "content_by_country: all of v1's views under the empty country, 100%");

    my $want = join "\n", map { "$_\t$dev_src{$_}" } sort keys %dev_src;
    is(q_text('content_device_source'), $want,
       "content_device_source: v1's views per device and source");

    my $avg = sprintf('%.1f', $v1_dur / $v1_events / 1000);
    $avg =~ s/\.0$//;
    my $rate = sprintf('%.3f', $engaged{v1} / $views{v1});
    $rate =~ s/0+$//;
    is(q_text('content_engaged_rate'), "$views{v1}\t$engaged{v1}\t$rate\t$avg",
       "content_engaged_rate: views, engaged, rate, average watch");

    $rows = q_rows('channel_by_category');
    is(join(' ', map { "$_->[1]=$_->[2]" } @$rows),
       "gaming=$views{v2} music=$views{v1}",
       "channel_by_category: ch1's views per category (v3 has no channel)");

    is(q_text('channel_top_contents'), "v1\t$views{v1}\nv2\t$views{v2}",
       "channel_top_contents: ch1's contents by views");

    is(q_text('top_last_hour'),
       join("\n", map { "$_\t$views{$_}" }
                  sort { $views{$b} <=> $views{$a} || $a cmp $b } keys %views),
       "top_last_hour: every content by its views");

    $rows = q_rows('uniques_per_day');
    is(scalar(@$rows) && $rows->[0][1], scalar(keys %uniq),
       "uniques_per_day: v1's distinct viewers with a view");

    # u1 like, u2 love, u3 like (then removed), u4 like (then wow)
    is(q_text('reactions_per_day') =~ s/^\S+\t//mgr,
       "like\t3\t1\t0\nlove\t1\t0\t0\nwow\t0\t0\t1",
       "reactions_per_day: likes, unlikes and changes by type");
    is(q_text('net_likes'), 3, "net_likes: 4 given, 1 removed");

    my $ctr = sub { my $x = sprintf('%.3f', $_[0] / $views{v1}); $x =~ s/0+$//; $x =~ s/\.$//; $x };
    is(q_text('clicks_ctr'),
       "subscribe_button\t3\t" . $ctr->(3) . "\nshare_button\t1\t" . $ctr->(1),
       "clicks_ctr: clicks per name and their rate against v1's views");

    $rows = q_rows('live_per_minute');
    my ($hs, $hmax) = (0, 0);
    for (@$rows) { $hs += $_->[2]; $hmax = $_->[1] if $_->[1] > $hmax }
    ok(@$rows == 1 && $hs == 3 && $hmax == 3,
       "live_per_minute: 3 playing heartbeats of 3 sessions on v1 in one minute, its peak 3 ($hmax)");
    is(ch("SELECT name, position_ms, duration_ms, counted FROM eng.events WHERE type = 'heartbeat' AND session_id = 'h3' ORDER BY position_ms"),
       "playing\t3000\t60000\t1\nended\t3500\t60000\t1",
       "heartbeat rows carry the state, position and the media's duration");

    $rows = q_rows('reconcile_day');
    ok(@$rows == 1 && $rows->[0][1] == $views{v1} && $rows->[0][2] == $views{v1},
       "reconcile_day: events and rollup agree on v1's views");

    my $in_redis = wait_until {
        Engagement::Test::redis_cli($rport, undef, 'HGET', 'eng:{c:v1}', 'views')
            =~ /^\Q$views{v1}\E$/;
    } 10;
    ok($in_redis, "Redis's total for v1 equals the events' ($views{v1})");

    is(join(' ', sort keys %Ran), join(' ', sort keys %Q),
       scalar(keys %Q) . " documented queries, every one run and checked");

    # retention: rows 40 days old in the minute rollup, 200 in the hour
    # rollup, 1500 in the day rollup go; the run's rows stay
    ch("INSERT INTO eng.views_minute VALUES (now() - 86400*40, 'old', '', 'tv', 'feed', 1, 1, 1, 0, 0, 0)");
    ch("INSERT INTO eng.views_hour VALUES (now() - 86400*200, 'old', '', 'tv', 'feed', 1, 1, 1, 0, 0, 0)");
    ch("INSERT INTO eng.views_day VALUES (today() - 1500, 'old', '', 'tv', 'feed', 1, 1, 1, 0, 0, 0)");
    my $script = root_dir() . '/conf-examples/clickhouse/retention.sh';
    my $dry = `DRY_RUN=1 sh $script http://127.0.0.1:$chp/ 2>&1`;
    is(scalar(() = $dry =~ /DROP PARTITION/g), 3, "retention.sh DRY_RUN: 3 partitions to drop")
        or diag($dry);
    is(ch("SELECT count() FROM eng.views_minute WHERE content_id = 'old'"), 1,
       "DRY_RUN drops nothing");
    my $out = `sh $script http://127.0.0.1:$chp/ 2>&1`;
    is($?, 0, "retention.sh exits 0") or diag($out);
    is(ch("SELECT count() FROM eng.views_minute WHERE content_id = 'old'")
       + ch("SELECT count() FROM eng.views_hour WHERE content_id = 'old'")
       + ch("SELECT count() FROM eng.views_day WHERE content_id = 'old'"), 0,
       "the old rows are gone");
    is(ch("SELECT sum(views) FROM eng.views_minute WHERE content_id = 'v1'"), $views{v1},
       "this run's minute rows are kept");
    is(ch("SELECT count() FROM eng.events"), $sent + @r, "the events are kept");
    is(ch("SELECT count() FROM eng.events WHERE type = 'click' AND name = 'subscribe_button' AND position_ms = 1200"), 3,
       "click rows carry their name and position");
--- no_error_log
[alert]
[emerg]
