# Guards interaction events (issue 14): POST /engagement/event with a
# declared name (engagement_interaction) is counted (202); an unknown
# name, a wrong type, a bad position, a source or device outside the
# closed sets, a missing field, another method or Content-Type are
# refused with a 4xx naming the problem and count nothing; bots, opted-out
# viewers (engagement_opt_out drop), rate limits and the ts window apply
# as for views; the status figures (events, outcomes, clicks by name) move
# exactly; each accepted click is one "click" row in a real
# clickhouse-server (Debian's 18.16, started here) with its name,
# position and resolved dimensions.
#
# The rows need the columns "name" and "position_ms" in eng.events: this
# file adds them when conf-examples/clickhouse/schema.sql does not have
# them yet.
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
our $chdir = scratch_dir("clickhouse-$chp");
our $ch;
ch_setup(port => $chp, dir => $chdir);

$ENV{TEST_NGINX_CH_PORT} = $chp;

master_on();
workers(2);
log_level('info');
no_shuffle();
no_long_string();
timeout(10);
add_response_body_check(post_check_hook());

our $HttpConfig = <<'EOC';
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
    engagement_edge_id test-edge;
    engagement_limit_zone per_ip:1m;
    engagement_interaction subscribe_button share_button;
    engagement_interaction skip_intro;
    engagement_writer http://127.0.0.1:$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=50 interval=100ms
        connect_timeout=300ms timeout=2s retry=200ms spool=$TEST_NGINX_SPOOL;
EOC

our $Config = <<'EOC';
    location = /engagement/event {
        engagement event;
        engagement_dimension country $http_x_country;
        engagement_ts_window 1h 1m;
    }
    location = /drop/event { engagement event; engagement_opt_out drop; }
    location = /minimal/event { engagement event; engagement_answer minimal; }
    location = /none/event { engagement event; engagement_answer none; }
    location = /limited/event {
        engagement event;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m burst=1;
    }
    location = /status { engagement status; }
EOC

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value('http_config', $HttpConfig) unless defined $block->http_config;
    $block->set_value('config', $Config) unless defined $block->config;
    $block->set_value('more_headers', "Content-Type: application/json")
        unless defined $block->more_headers;
    $block->set_value('no_error_log', "[error]\n[alert]\n[emerg]")
        unless defined $block->no_error_log;
    $ENV{TEST_NGINX_SPOOL} = scratch_dir('spool-' . $block->seq_num);
});

sub ev { my ($body, $uri) = @_; return "POST " . ($uri // '/engagement/event') . "\n$body" }

sub send_event {
    my ($json, %h) = @_;
    my $uri = delete $h{uri} // '/engagement/event';
    return http_request($port, 'POST', $uri, $json,
                        'Content-Type' => 'application/json', %h);
}

sub metric_of {
    my ($t, $name) = @_;
    return $t =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

sub rows_in {
    my ($prefix, $n) = @_;
    wait_until {
        ch("SELECT count() FROM eng.events WHERE startsWith(event_id, '$prefix')") >= $n
    } 15;
    return ch("SELECT count() FROM eng.events WHERE startsWith(event_id, '$prefix')");
}

our $BadName = qq({"error":"invalid_field","field":"name","message":"is not a declared interaction (engagement_interaction)"}\n);

# the series store (src/store/ngx_http_engagement_series.h, branch
# "series") counts clicks in Redis; TEST 11 runs once it is in the tree
our $Series = -e root_dir() . '/src/store/ngx_http_engagement_series.h';
our $rport = free_ports(500, 50, 1);
$ENV{TEST_NGINX_REDIS_PORT} = $rport;
start_redis($rport) if $Series;

$ch = ch_start(fresh => 1);
ch_schema();
for my $col ([ 'name', 'String' ], [ 'position_ms', 'Int64' ]) {
    ch("ALTER TABLE eng.events ADD COLUMN $col->[0] $col->[1]")
        unless ch("SELECT count() FROM system.columns WHERE database = 'eng' "
                  . "AND table = 'events' AND name = '$col->[0]'");
}

run_tests();

__DATA__

=== TEST 1: a declared click is counted: 202 with the content, type and name
--- request eval
main::ev('{"contentId":"vid-1","type":"click","name":"subscribe_button","positionMs":61000}')
--- error_code: 202
--- response_body
{"counted":true,"contentId":"vid-1","type":"click","name":"subscribe_button"}
--- response_headers
Content-Type: application/json
Cache-Control: no-store

=== TEST 2: "type" may be left out (click); a name from a second engagement_interaction line
--- request eval
main::ev('{"contentId":"vid-1","name":"skip_intro"}')
--- error_code: 202
--- response_body
{"counted":true,"contentId":"vid-1","type":"click","name":"skip_intro"}

=== TEST 3: an unknown name, a missing name, a missing contentId: 400 naming the field
--- request eval
[ main::ev('{"contentId":"vid-1","type":"click","name":"like_button"}'),
  main::ev('{"contentId":"vid-1","type":"click"}'),
  main::ev('{"type":"click","name":"share_button"}'),
  main::ev('{"contentId":"vid-1","name":"Subscribe_Button"}') ]
--- error_code eval
[400, 400, 400, 400]
--- response_body eval
[ $main::BadName,
  qq({"error":"invalid_field","field":"name","message":"is required"}\n),
  qq({"error":"invalid_field","field":"contentId","message":"is required"}\n),
  $main::BadName ]

=== TEST 4: a type other than click, a bad position, a bad name: 400 naming the field
--- request eval
[ main::ev('{"contentId":"vid-1","type":"hover","name":"share_button"}'),
  main::ev('{"contentId":"vid-1","name":"share_button","positionMs":-5}'),
  main::ev('{"contentId":"vid-1","name":"share_button","positionMs":"12"}'),
  main::ev('{"contentId":"vid-1","name":"share button"}'),
  main::ev('{"contentId":"vid-1","name":"share_button","source":"tiktok"}'),
  main::ev('{"contentId":"vid-1","name":"share_button","device":"fridge"}'),
  main::ev('{"contentId":"vid-1","name":"share_button","ts":"now"}'),
  main::ev('{"contentId":"vid-1","name":') ]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400]
--- response_body_like eval
[ qr/^\{"error":"invalid_field","field":"type","message":"must be click"\}\n\z/,
  qr/^\{"error":"invalid_field","field":"positionMs",/,
  qr/^\{"error":"invalid_field","field":"positionMs",/,
  qr/^\{"error":"invalid_field","field":"name",/,
  qr/^\{"error":"invalid_field","field":"source","message":"must be one of feed, home, search,/,
  qr/^\{"error":"invalid_field","field":"device","message":"must be one of mobile, tablet,/,
  qr/^\{"error":"invalid_field","field":"ts",/,
  qr/^\{"error":"invalid_body",/ ]

=== TEST 5: another method, another Content-Type, a body too large
--- request eval
[ "GET /engagement/event",
  main::ev('{"contentId":"vid-1","name":"share_button"}'),
  main::ev('{"contentId":"vid-1","name":"share_button","token":"' . ('x' x 9000) . '"}') ]
--- more_headers eval
[ "", "Content-Type: text/plain", "Content-Type: application/json" ]
--- error_code eval
[405, 415, 413]
--- response_headers eval
[ "Allow: POST", "", "" ]

=== TEST 6: a bot, an opted-out viewer where opt-out drops, a late event: 200, not counted
--- request eval
[ main::ev('{"contentId":"vid-2","name":"share_button"}'),
  main::ev('{"contentId":"vid-2","name":"share_button","optOut":true}', '/drop/event'),
  main::ev('{"contentId":"vid-2","name":"share_button","ts":1000000000000}'),
  main::ev('{"contentId":"vid-2","name":"share_button","ts":' . int((time() + 3600) * 1000) . '}') ]
--- more_headers eval
[ "Content-Type: application/json\nUser-Agent: Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  "Content-Type: application/json", "Content-Type: application/json",
  "Content-Type: application/json" ]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[ qq({"counted":false,"reason":"bot","contentId":"vid-2"}\n),
  qq({"counted":false,"reason":"opted_out","contentId":"vid-2"}\n),
  qq({"counted":false,"reason":"too_old","contentId":"vid-2","type":"click","name":"share_button"}\n),
  qq({"counted":false,"reason":"in_future","contentId":"vid-2","type":"click","name":"share_button"}\n) ]

=== TEST 7: rate limits: burst 1 lets 2 through, then 429
--- request eval
[ map { main::ev('{"contentId":"vid-3","name":"share_button"}', '/limited/event') } 1 .. 3 ]
--- error_code eval
[202, 202, 429]

=== TEST 8: engagement_answer minimal and none
--- request eval
[ main::ev('{"contentId":"vid-4","name":"share_button"}', '/minimal/event'),
  main::ev('{"contentId":"vid-4","name":"share_button"}', '/none/event'),
  main::ev('{"contentId":"vid-4","name":"nope"}', '/none/event') ]
--- error_code eval
[202, 204, 400]
--- response_body eval
[ qq({"counted":true}\n), "", $main::BadName ]

=== TEST 9: the status figures move exactly (Prometheus and JSON), one HELP per family
--- request
GET /status
--- response_body_like: nginx_engagement_interaction_events_total 0
--- post_check
    my @sent = (
        [ 202, '{"contentId":"m1","name":"subscribe_button"}' ],
        [ 202, '{"contentId":"m1","name":"subscribe_button"}' ],
        [ 202, '{"contentId":"m2","name":"share_button","positionMs":5}' ],
        [ 400, '{"contentId":"m2","name":"unknown"}' ],
        [ 400, '{"contentId":"m2"}' ],
        [ 200, '{"contentId":"m2","name":"share_button","ts":1000000000000}' ],
        [ 429, '{"contentId":"m3","name":"share_button"}', uri => '/limited/event' ],
        [ 429, '{"contentId":"m3","name":"share_button"}', uri => '/limited/event' ],
        [ 429, '{"contentId":"m3","name":"share_button"}', uri => '/limited/event' ],
    );
    my $n = 0;
    for my $s (@sent) {
        my ($want, $json, %h) = @$s;
        my ($st) = send_event($json, %h);
        $n++ if $st == $want;
    }
    # the first two of /limited/event pass (burst 1): 202 202 429 above
    is($n, 7, "7 answers as expected (the limit lets the first 2 through)");
    my $t = status_text();
    is(metric_of($t, 'nginx_engagement_interaction_events_total'), 9, "9 events received");
    is(metric_of($t, 'nginx_engagement_interaction_outcomes_total{outcome="counted"}'), 5,
       "5 counted (3 + the 2 the limit let through)");
    is(metric_of($t, 'nginx_engagement_interaction_outcomes_total{outcome="invalid"}'), 2, "2 invalid");
    is(metric_of($t, 'nginx_engagement_interaction_outcomes_total{outcome="limited"}'), 1, "1 limited");
    is(metric_of($t, 'nginx_engagement_interaction_outcomes_total{outcome="not_counted"}'), 1, "1 not counted");
    is(metric_of($t, 'nginx_engagement_interaction_clicks_total{name="subscribe_button"}'), 2,
       "2 subscribe_button clicks");
    is(metric_of($t, 'nginx_engagement_interaction_clicks_total{name="share_button"}'), 3,
       "3 share_button clicks");
    is(metric_of($t, 'nginx_engagement_interaction_clicks_total{name="skip_intro"}'), 0,
       "0 skip_intro clicks");
    my %help;
    $help{$1}++ while $t =~ /^# HELP (nginx_engagement_(?:interaction|dimension)_\S+)/mg;
    ok(!grep({ $_ > 1 } values %help) && keys(%help) == 9, "one HELP per family (9)")
        or diag(join ' ', sort keys %help);
    my (undef, $js) = http_request($port, 'GET', '/status?format=json');
    like($js, qr/"interaction":\{"events":9,"counted":5,"invalid":2,"limited":1,"notCounted":1,"unavailable":0,"clicks":\{"subscribe_button":2,"share_button":3,"skip_intro":0\}\}/,
         "the JSON status carries the interaction figures");
    SKIP: {
        skip 'promtool not installed', 1 unless -x '/usr/bin/promtool';
        my $f = scratch_dir() . '/status.prom';
        open my $fh, '>', $f or die $!;
        print $fh $t;
        close $fh;
        my $out = `promtool check metrics < $f 2>&1`;
        is($?, 0, "promtool accepts the status text") or diag($out);
    }

=== TEST 10: each accepted click is one "click" row: name, position, dimensions, counted, no view metrics
--- request
GET /status
--- response_body_like: nginx_engagement_interaction_events_total 0
--- post_check
    my $iphone = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1';
    my ($st) = send_event('{"contentId":"w1","name":"subscribe_button","positionMs":61000,'
                          . '"requestId":"click-1","sessionId":"s-1","viewerId":"u-1",'
                          . '"channelId":"ch-1","category":"music","source":"feed"}',
                          'User-Agent' => $iphone, 'X-Country' => 'se');
    is($st, 202, "a click with every field");
    ($st) = send_event('{"contentId":"w1","name":"share_button","requestId":"click-2"}');
    is($st, 202, "a click with the least");
    ($st) = send_event('{"contentId":"w1","name":"share_button","requestId":"click-3",'
                       . '"ts":1000000000000}');
    is($st, 200, "a late click: accepted, not counted");
    ($st) = send_event('{"contentId":"w1","name":"nope","requestId":"click-4"}');
    is($st, 400, "an unknown name");
    is(rows_in('click-', 3), 3, "3 rows in ClickHouse");
    is(ch("SELECT concat(type, '|', content_id, '|', name, '|', toString(position_ms), '|', "
          . "toString(counted), '|', toString(views + engaged + replays), '|', country, '|', "
          . "device, '|', source, '|', channel_id, '|', category, '|', session_id, '|', "
          . "toString(length(viewer_id)), '|', edge) FROM eng.events WHERE event_id = 'click-1'"),
       "click|w1|subscribe_button|61000|1|0|SE|mobile|feed|ch-1|music|s-1|16|test-edge",
       "the full click's row");
    is(ch("SELECT concat(type, '|', name, '|', toString(position_ms), '|', toString(counted), '|', "
          . "country, '|', device, '|', reason) FROM eng.events WHERE event_id = 'click-2'"),
       "click|share_button|-1|1||other|", "the least click's row (no position: -1)");
    is(ch("SELECT concat(toString(counted), '|', reason) FROM eng.events WHERE event_id = 'click-3'"),
       "0|too_old", "the late click's row");
    is(ch("SELECT count() FROM eng.events WHERE event_id = 'click-4'"), 0,
       "no row for the refused one");
    is(ch("SELECT count() FROM eng.events WHERE type = 'view'"), 0, "no view rows");

=== TEST 11: with the series store and Redis: each counted click is one in click:<name> of every scope's buckets
--- skip_eval: 1: !$main::Series
--- http_config
    engagement_zone engagement:1m;
    engagement_edge_id test-edge;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms buckets=1s;
    engagement_interaction subscribe_button share_button;
--- config
    location = /engagement/event { engagement event; engagement_ts_window 1h 1m; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: nginx_engagement_interaction_events_total 0
--- post_check
    my %sent = (subscribe_button => 0, share_button => 0);
    for my $i (1 .. 12) {
        my $name = $i % 3 ? 'subscribe_button' : 'share_button';
        my $cat = $i % 2 ? 'music' : 'news';
        my ($st) = send_event(qq({"contentId":"r1","name":"$name","channelId":"chx",)
                              . qq("category":"$cat","source":"feed","device":"tv"}));
        $sent{$name}++ if $st == 202;
    }
    my ($st) = send_event('{"contentId":"r1","name":"share_button","ts":1000000000000}');
    is($st, 200, "a late click is not counted");
    is($sent{subscribe_button} + $sent{share_button}, 12, "12 clicks counted");
    # the sum of a field over the scope's buckets of one period
    my $sum = sub {
        my ($scope, $period, $field) = @_;
        my $n = 0;
        for my $k (split /\n/, redis_cli($rport, undef, 'KEYS', "eng:{$scope}:$period:*")) {
            $n += redis_cli($rport, undef, 'HGET', $k, $field) || 0;
        }
        return $n;
    };
    my $in = wait_until { $sum->('c:r1', 'm', 'click:subscribe_button') >= 8
                          && $sum->('c:r1', 'm', 'click:share_button') >= 4 } 15;
    ok($in, "the clicks reach Redis");
    sleep 1.5;   # one more flush round: nothing is sent twice
    for my $p (qw(m h d)) {
        is($sum->('c:r1', $p, 'click:subscribe_button'), 8, "content $p: 8 subscribe_button");
        is($sum->('c:r1', $p, 'click:share_button'), 4, "content $p: 4 share_button");
        is($sum->('ch:chx', $p, 'click:subscribe_button'), 8, "channel $p: 8 subscribe_button");
        is($sum->('all', $p, 'click:share_button'), 4, "all $p: 4 share_button");
    }
    is($sum->('cat:music', 'm', 'click:subscribe_button') + $sum->('cat:news', 'm', 'click:subscribe_button'),
       8, "categories: 8 subscribe_button");
    is($sum->('c:r1', 'm', 'views'), 0, "clicks count no views");
