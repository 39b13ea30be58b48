# Guards the writer against a sink slower than the writer's timeout: a
# real clickhouse-server (Debian's 18.16, ours) whose inserts into
# eng.events take about two seconds (a materialized view of our own that
# sleeps per block, named to run before eng.batches_mv), a writer with timeout=1s. The first send of a batch
# times out while ClickHouse still runs it; the check asked before the
# batch is sent again cannot see it yet. With id_param=query_id the batch
# id is ClickHouse's query_id, so the send that follows is refused while
# the first runs, and the batch is checked again until ClickHouse holds
# it: every rollup counts each view once. Without id_param the same batch
# is stored again (twice or three times) and the rollups count it again
# (the block that shows what id_param is for).
#
# ClickHouse runs on free loopback ports, its data and the spools in
# private temporary directories (never in servroot).
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

our $chp = free_ports(170, 15, 3);               # http; +1 tcp; +2 fault
our $chdir = scratch_dir("clickhouse-slow-$chp");
ch_setup(port => $chp, dir => $chdir, fault_port => $chp + 2,
         ctl => scratch_dir() . "/fault-slow", keep_alive => 1, persist => 1);
$ENV{TEST_NGINX_CH_PORT} = $chp;
$ENV{TEST_NGINX_FAULT_PORT} = $chp + 2;

our $ch = ch_start(fresh => 1);
ch_schema();
# every insert into eng.events waits ~2 s in this view (sleep() is per
# block and at most 3 s)
ch("CREATE MATERIALIZED VIEW IF NOT EXISTS eng.a_slow_sink ENGINE = Null AS "
   . "SELECT sleep(2) AS slept FROM eng.events");

master_on();
workers(1);
log_level('info');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

add_block_preprocessor(sub {
    my ($block) = @_;
    $ENV{TEST_NGINX_SPOOL} = scratch_dir('spool-slow-' . $block->seq_num);
});

sub drained {
    my $t = status_text();
    return $t =~ /^nginx_engagement_writer_queued_events 0$/m
        && $t =~ /^nginx_engagement_writer_inflight_events 0$/m
        && $t =~ /^nginx_engagement_writer_spool_files 0$/m;
}

# $n views of content $c, sessions "$c-<i>", in one batch
sub views {
    my ($c, $n) = @_;
    my $ok = 0;
    for my $i (1 .. $n) {
        my ($st) = http_request(nginx_port(), 'POST', '/engagement/view',
            qq({"contentId":"$c","sessionId":"$c-$i"}), 'Content-Type' => 'application/json');
        $ok++ if ($st // 0) == 202;
    }
    return $ok;
}

our $Writer = 'engagement_writer http://127.0.0.1:$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=100 interval=300ms '
    . 'connect_timeout=300ms timeout=1s retry=200ms spool=$TEST_NGINX_SPOOL '
    . 'check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D';

our $fp;

run_tests();

fault_stop($fp);
ch_stop($ch);

__DATA__

=== TEST 1: id_param=query_id: a batch whose first send timed out while ClickHouse ran it is stored once; the rollups count each view once
--- http_config eval
"    engagement_zone engagement:1m;
    engagement_edge_id slow-a;
    $::Writer id_param=query_id;"
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- timeout: 40
--- error_log
the upstream timed out
answered 500 to batch slow-a.
is in the sink already (20 rows): not sent again
--- post_check
    is(views('q1', 20), 20, "20 views answered 202");
    ok(wait_until(sub { drained() }, 30), "the writer has delivered everything");
    sleep 2.5;   # a send refused while the first ran would have landed by now
    my $t = status_text();
    like($t, qr/^nginx_engagement_writer_batches_total\{result="failed"\} [1-9]/m,
         "a send timed out (the sink is slower than timeout=1s)");
    is(ch("SELECT count() FROM eng.events WHERE content_id = 'q1'"), 20,
       "20 rows in eng.events (none stored twice, even before a merge)");
    is(ch("SELECT sum(views) FROM eng.views_minute WHERE content_id = 'q1'"), 20,
       "the minute rollup counts 20 views");
    is(ch("SELECT sum(rows) FROM eng.batches WHERE batch_id LIKE 'slow-a.%'"), 20,
       "eng.batches holds the batch once");

=== TEST 2: without id_param the same timing stores the batch again (the rollups count it again): what id_param is for
--- http_config eval
"    engagement_zone engagement:1m;
    engagement_edge_id slow-b;
    $::Writer;"
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_up 1\n
--- timeout: 40
--- error_log
the upstream timed out
--- post_check
    is(views('q2', 20), 20, "20 views answered 202");
    ok(wait_until(sub { drained() }, 30), "the writer has delivered everything");
    sleep 2.5;
    my $n = ch("SELECT sum(views) FROM eng.views_minute WHERE content_id = 'q2'");
    ok($n >= 40, "the minute rollup counts the 20 views more than once ($n)");
    is(ch("SELECT count() FROM eng.events FINAL WHERE content_id = 'q2'"), 20,
       "eng.events FINAL still has 20 rows (ReplacingMergeTree)");

=== TEST 3: a bad id_param fails nginx -t
--- http_config eval
"    engagement_zone engagement:1m;
    $::Writer id_param=query+id;"
--- config
    location = /engagement/view { engagement view; }
--- must_die
--- error_log
invalid parameter "id_param=query+id" of engagement_writer

=== TEST 4: a writer URL too long for a request head fails nginx -t
--- http_config eval
"    engagement_zone engagement:1m;
    engagement_writer http://127.0.0.1:\$TEST_NGINX_CH_PORT/" . ('x' x 3900) . " id_param=query_id;"
--- config
    location = /engagement/view { engagement view; }
--- must_die
--- error_log
the URL is too long (a request head must fit in 4096 bytes)

=== TEST 5: an https:// writer URL fails nginx -t, saying why
--- http_config
    engagement_zone engagement:1m;
    engagement_writer https://127.0.0.1:8443/?query=INSERT;
--- config
    location = /engagement/view { engagement view; }
--- must_die
--- error_log
engagement_writer "https://127.0.0.1:8443/?query=INSERT": https is not supported (the client has no TLS)

=== TEST 6: an answer later than timeout= on a kept-alive connection: the batch is checked before it is sent again, not sent again at once (it was stored twice)
--- http_config
    engagement_zone engagement:1m;
    engagement_edge_id slow-ka;
    engagement_writer http://127.0.0.1:$TEST_NGINX_FAULT_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=100 interval=200ms connect_timeout=300ms timeout=1s retry=200ms spool=$TEST_NGINX_SPOOL check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_queued_events 0\n
--- timeout: 40
--- error_log
the upstream timed out
is in the sink already (1 rows): not sent again
--- post_check
    ch("DROP TABLE IF EXISTS eng.a_slow_sink");
    fault_mode('pass');
    $main::fp = fault_start();
    is(views('ka', 1), 1, "a view");
    ok(wait_until(sub { drained() }, 10), "delivered; the connection is parked");
    fault_mode('slow 2');
    is(views('kb', 1), 1, "another view, sent on the parked connection");
    ok(wait_until(sub { error_log_text() =~ /the upstream timed out/ }, 10),
       "its answer comes later than timeout=1s");
    fault_mode('pass');   # the check that follows is answered at once
    ok(wait_until(sub { drained() }, 20), "the writer has delivered everything");
    sleep 1;
    is(ch("SELECT count() FROM eng.batches WHERE batch_id LIKE 'slow-ka.%'"), 2, "two batches");
    is(ch("SELECT max(rows) FROM eng.batches WHERE batch_id LIKE 'slow-ka.%'"), 1, "each stored once");
    is(ch("SELECT sum(views) FROM eng.views_minute WHERE content_id IN ('ka', 'kb')"), 2,
       "the minute rollup counts 2 views");
