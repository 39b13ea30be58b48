# Guards the dimensions captured at the edge (issue 14): "source" and
# "device" in a view's body must be of their closed sets (400 naming the
# field, nothing counted); a missing device is classified from real
# User-Agent strings (phones, tablets, desktops, TVs, consoles, the rest);
# the country comes only from "engagement_dimension country" (a header
# here), two letters upper-cased, anything else empty; channel and
# category given by the configuration (a map on $engagement_content_id)
# win over the body; the category and the channel are bounded per edge
# (engagement_dimension_limit N channels=M: the first values, then
# "other", an idle place given to a new value); the
# durable writer's rows carry the resolved values, read back from a real
# clickhouse-server (Debian's 18.16, started here on its own ports).
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
    engagement_dimension_limit 3;
    engagement_writer http://127.0.0.1:$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=50 interval=100ms
        connect_timeout=300ms timeout=2s retry=200ms spool=$TEST_NGINX_SPOOL;
    map $engagement_content_id $meta_channel {
        c-forced   chan-config;
        c-badmap   "bad value!";
        default    "";
    }
    map $engagement_content_id $meta_category {
        c-forced   cat-config;
        default    "";
    }
EOC

our $Config = <<'EOC';
    location = /engagement/view {
        engagement view;
        engagement_dimension country $http_x_country;
        engagement_dimension channel $meta_channel;
        engagement_dimension category $meta_category;
    }
    location = /forced/view {
        engagement view;
        engagement_dimension device $http_x_device;
        engagement_dimension source embed;
    }
    location /engagement/summary { engagement summary; }
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

sub view { my ($body) = @_; return "POST /engagement/view\n$body" }

# a view with a request id (the row's event_id) and headers; its status
sub send_view {
    my ($id, $extra, %h) = @_;
    my ($st) = http_request($port, 'POST', $h{uri} // '/engagement/view',
                            qq({"contentId":"$id","sessionId":"s-$id","requestId":"$id"$extra}),
                            'Content-Type' => 'application/json',
                            map { $_ eq 'uri' ? () : ($_ => $h{$_}) } keys %h);
    return $st;
}

# waits until ClickHouse has the n rows whose event_id starts with prefix
sub rows_in {
    my ($prefix, $n) = @_;
    wait_until {
        ch("SELECT count() FROM eng.events WHERE startsWith(event_id, '$prefix')") >= $n
    } 15;
    return ch("SELECT count() FROM eng.events WHERE startsWith(event_id, '$prefix')");
}

sub row { ch("SELECT $_[1] FROM eng.events WHERE event_id = '$_[0]'") }

$ch = ch_start(fresh => 1);
ch_schema();

run_tests();

__DATA__

=== TEST 1: a source outside the closed set: 400 naming source, nothing counted
--- request eval
[ main::view('{"contentId":"bad-src","sessionId":"s","source":"homepage"}'),
  "GET /engagement/summary/bad-src" ]
--- error_code eval
[400, 200]
--- response_body eval
[ qq({"error":"invalid_field","field":"source","message":"must be one of feed, home, search, profile, notification, external, direct, embed, related or other"}\n),
  qq({"contentId":"bad-src","views":0,"engagedViews":0,"replays":0}\n) ]

=== TEST 2: a device outside the closed set: 400 naming device, nothing counted
--- request eval
[ main::view('{"contentId":"bad-dev","sessionId":"s","device":"smartwatch"}'),
  "GET /engagement/summary/bad-dev" ]
--- error_code eval
[400, 200]
--- response_body eval
[ qq({"error":"invalid_field","field":"device","message":"must be one of mobile, tablet, desktop, tv, console or other"}\n),
  qq({"contentId":"bad-dev","views":0,"engagedViews":0,"replays":0}\n) ]

=== TEST 3: closed-set values in any case are taken and counted
--- request eval
[ main::view('{"contentId":"ok-case","sessionId":"s","source":"Search","device":"TV"}'),
  "GET /engagement/summary/ok-case" ]
--- error_code eval
[202, 200]
--- response_body eval
[ qq({"counted":true,"contentId":"ok-case","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"contentId":"ok-case","views":1,"engagedViews":0,"replays":0}\n) ]

=== TEST 4: the device class of real User-Agents, and the body's device over the User-Agent's
--- request
GET /status
--- response_body_like: nginx_engagement_dimension_category_values 0
--- post_check
    my @ua = (
        [ 'ua-01', 'mobile',  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1' ],
        [ 'ua-02', 'mobile',  'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36' ],
        [ 'ua-03', 'tablet',  'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1' ],
        [ 'ua-04', 'tablet',  'Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36' ],
        [ 'ua-05', 'tablet',  'Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/120.2.1 like Chrome/120.0.6099.216 Safari/537.36' ],
        [ 'ua-06', 'desktop', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36' ],
        [ 'ua-07', 'desktop', 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15' ],
        [ 'ua-08', 'desktop', 'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0' ],
        [ 'ua-09', 'desktop', 'Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36' ],
        [ 'ua-10', 'tv',      'Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36' ],
        [ 'ua-11', 'tv',      'Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager' ],
        [ 'ua-12', 'tv',      'Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7233; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/70.0.3538.110 Mobile Safari/537.36' ],
        [ 'ua-13', 'tv',      'Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/74.0.3729.0 Safari/537.36 CrKey/1.42.172094' ],
        [ 'ua-14', 'tv',      'Roku/DVP-9.10 (519.10E04111A)' ],
        [ 'ua-15', 'tv',      'Mozilla/5.0 (Linux; Android 12; BRAVIA 4K VH2 Build/STT1.211025.001.Z4) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/114.0.5735.196 Safari/537.36' ],
        [ 'ua-16', 'console', 'Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15' ],
        [ 'ua-17', 'console', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edge/44.18363.8131' ],
        [ 'ua-18', 'console', 'Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet) AppleWebKit/606.4 (KHTML, like Gecko) NF/6.0.1.15.4 NintendoBrowser/5.1.0.20393' ],
        [ 'ua-19', 'other',   'SomePlayer/2.1 (embedded)' ],
        [ 'ua-20', 'other',   undef ],
        # needles match where a word begins: "drafts" is no Fire TV (AFTS)
        [ 'ua-20b', 'desktop', 'Drafts/2.0 (Macintosh; Intel Mac OS X 10_15_7)' ],
    );
    my $ok = 0;
    for my $u (@ua) {
        $ok++ if send_view($u->[0], '', defined $u->[2] ? ('User-Agent' => $u->[2]) : ()) == 202;
    }
    is($ok, scalar @ua, scalar(@ua) . " views with User-Agents counted");
    is(send_view('ua-21', ',"device":"tv"', 'User-Agent' => $ua[0][2]), 202,
       "a view saying device tv from an iPhone");
    is(rows_in('ua-', 22), 22, "22 rows in ClickHouse");
    my $got = ch("SELECT groupArray(d) FROM (SELECT event_id, device d FROM eng.events "
                 . "WHERE startsWith(event_id, 'ua-') ORDER BY event_id)");
    my $want = "['" . join("','", (map { $_->[1] } @ua), 'tv') . "']";
    is($got, $want, "each row's device: the User-Agent's class, the body's over it");
    like(status_text(), qr/^nginx_engagement_dimension_device_from_agent_total 21$/m,
         "21 devices read from the User-Agent");

=== TEST 5: the country from the configuration (a header): two letters, upper-cased, else empty
--- request
GET /status
--- response_body_like: nginx_engagement_dimension_country_missing_total 0
--- post_check
    is(send_view('cc-1', '', 'X-Country' => 'fr'), 202, "country fr");
    is(send_view('cc-2', '', 'X-Country' => 'DE'), 202, "country DE");
    is(send_view('cc-3', '', 'X-Country' => 'FRA'), 202, "country FRA");
    is(send_view('cc-4', '', 'X-Country' => 'T1'), 202, "country T1");
    is(send_view('cc-5', ''), 202, "no country header");
    is(send_view('cc-6', ',"country":"US"'), 202, "a country in the body is not taken");
    is(rows_in('cc-', 6), 6, "6 rows");
    is(ch("SELECT groupArray(country) FROM (SELECT country FROM eng.events "
          . "WHERE startsWith(event_id, 'cc-') ORDER BY event_id)"),
       "['FR','DE','','','','']", "the rows' countries");
    like(status_text(), qr/^nginx_engagement_dimension_country_missing_total 4$/m,
         "4 events without a country code");

=== TEST 6: channel and category from the configuration win over the body; an invalid configured value is ignored
--- request
GET /status
--- response_body_like: nginx_engagement_dimension_category_folded_total 0
--- post_check
    is(send_view('c-forced', ',"channelId":"liar","category":"lies","source":"feed"'), 202,
       "a view of a content the map knows");
    is(send_view('c-free', ',"channelId":"ch-body","category":"music"'), 202,
       "a view of a content the map does not know");
    is(send_view('c-badmap', ',"channelId":"ch-body2"'), 202,
       "a view whose map gives an invalid channel");
    is(rows_in('c-', 3), 3, "3 rows");
    is(row('c-forced', "concat(channel_id, '/', category, '/', source)"),
       "chan-config/cat-config/feed", "the configuration's channel and category");
    is(row('c-free', "concat(channel_id, '/', category)"), "ch-body/music",
       "the body's channel and category");
    is(row('c-badmap', "channel_id"), "ch-body2", "an invalid configured value is ignored");

=== TEST 7: device and source given by the configuration; an invalid configured device is ignored
--- request
GET /status
--- response_body_like: nginx_engagement_dimension_category_values 0
--- post_check
    is(send_view('fd-1', ',"device":"mobile","source":"feed"', uri => '/forced/view',
                 'X-Device' => 'console'), 202, "configured device console");
    is(send_view('fd-2', ',"device":"mobile"', uri => '/forced/view',
                 'X-Device' => 'fridge'), 202, "configured device fridge (invalid)");
    is(send_view('fd-3', '', uri => '/forced/view',
                 'User-Agent' => 'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X)'), 202,
       "no device anywhere but the User-Agent");
    is(rows_in('fd-', 3), 3, "3 rows");
    is(ch("SELECT groupArray(x) FROM (SELECT event_id, concat(device, '/', source) x "
          . "FROM eng.events WHERE startsWith(event_id, 'fd-') ORDER BY event_id)"),
       "['console/embed','mobile/embed','tablet/embed']", "devices and sources");

=== TEST 8: the category bound: the first 3 values, then "other"; a known value stays itself
--- request
GET /status
--- response_body_like: nginx_engagement_dimension_category_values 0
--- post_check
    my $i = 0;
    for my $c (qw(news music sport games music film news)) {
        $i++;
        is(send_view("cat-$i", qq(,"category":"$c")), 202, "a view of category $c");
    }
    is(rows_in('cat-', 7), 7, "7 rows");
    is(ch("SELECT groupArray(category) FROM (SELECT event_id, category FROM eng.events "
          . "WHERE startsWith(event_id, 'cat-') ORDER BY event_id)"),
       "['news','music','sport','other','music','other','news']",
       "news, music, sport take the 3 places; games and film are other");
    my $t = status_text();
    like($t, qr/^nginx_engagement_dimension_category_values 3$/m, "3 categories in the table");
    like($t, qr/^nginx_engagement_dimension_category_folded_total 2$/m, "2 folded into other");
    my (undef, $js) = http_request($port, 'GET', '/status?format=json');
    like($js, qr/"dimension":\{"categoryValues":3,"categoryFolded":2,"deviceFromAgent":7,"countryMissing":7,"channelValues":0,"channelFolded":0\}/,
         "the JSON status carries the dimension figures");

=== TEST 9: the category bound holds across workers: 2 workers, 40 new values, 3 places
--- request
GET /status
--- response_body_like: nginx_engagement_dimension_category_values 0
--- post_check
    my $ok = 0;
    for my $i (1 .. 40) {
        $ok++ if send_view("many-$i", qq(,"category":"k$i")) == 202;
    }
    is($ok, 40, "40 views counted");
    is(rows_in('many-', 40), 40, "40 rows");
    is(ch("SELECT uniqExact(category) FROM eng.events WHERE startsWith(event_id, 'many-')"), 4,
       "3 categories and other in the rows");
    is(ch("SELECT count() FROM eng.events WHERE startsWith(event_id, 'many-') AND category = 'other'"),
       37, "37 rows say other");

=== TEST 10: a reload (HUP) keeps the category table and the figures
--- request
GET /status
--- response_body_like: nginx_engagement_dimension_category_values 0
--- post_check
    my $i = 0;
    for my $c (qw(r1 r2 r3)) {
        $i++;
        is(send_view("rl-$i", qq(,"category":"$c")), 202, "a view of category $c");
    }
    ok(reload_nginx(2), "reloaded: new workers serve, the old ones are gone");
    is(send_view('rl-4', ',"category":"r4"'), 202, "a new category after the reload");
    is(send_view('rl-5', ',"category":"r2"'), 202, "a known category after the reload");
    is(rows_in('rl-', 5), 5, "5 rows");
    is(ch("SELECT groupArray(category) FROM (SELECT event_id, category FROM eng.events "
          . "WHERE startsWith(event_id, 'rl-') ORDER BY event_id)"),
       "['r1','r2','r3','other','r2']", "the table outlived the reload");
    my $t = status_text();
    like($t, qr/^nginx_engagement_dimension_category_values 3$/m, "3 categories in the table");
    like($t, qr/^nginx_engagement_dimension_category_folded_total 1$/m, "1 folded");



=== TEST 11: the channel bound: channels=4, 10 distinct channels: 4 kept, the rest "other", a configured channel too
--- http_config eval
(my $c = $::HttpConfig) =~ s/engagement_dimension_limit 3;/engagement_dimension_limit 3 channels=4;/;
$c =~ s/(c-forced +chan-config;)/$1\n        c-cfg-11 chan-config;/;
$c
--- request
GET /status
--- response_body_like: nginx_engagement_dimension_channel_values 0
--- post_check
    for my $i (1 .. 10) {
        is(send_view(sprintf("chb-%02d", $i), qq(,"channelId":"chn-$i")), 202, "a view of channel chn-$i");
    }
    is(send_view('chb-11', ',"channelId":"chn-2"'), 202, "a known channel again");
    is(send_view('c-cfg-11', ',"channelId":"liar"'), 202, "a channel from the configuration");
    is(rows_in('chb-', 11), 11, "11 rows");
    is(ch("SELECT groupArray(channel_id) FROM (SELECT event_id, channel_id FROM eng.events "
          . "WHERE startsWith(event_id, 'chb-') ORDER BY event_id)"),
       "['chn-1','chn-2','chn-3','chn-4','other','other','other','other','other','other','chn-2']",
       "chn-1 to chn-4 take the 4 places; chn-5 to chn-10 are other; chn-2 stays itself");
    is(rows_in('c-cfg-11', 1), 1, "the configured channel's row");
    is(row('c-cfg-11', 'channel_id'), 'other', "a configured channel (chan-config) finds no place either");
    my $t = status_text();
    like($t, qr/^nginx_engagement_dimension_channel_values 4$/m, "4 channels in the table");
    like($t, qr/^nginx_engagement_dimension_channel_folded_total 7$/m, "7 folded into other");
    my (undef, $js) = http_request($port, 'GET', '/status?format=json');
    like($js, qr/"channelValues":4,"channelFolded":7\}/, "the JSON status carries the channel figures");

=== TEST 12: a channel place unseen for idle= is given to a new channel
--- http_config eval
(my $c = $::HttpConfig) =~ s/engagement_dimension_limit 3;/engagement_dimension_limit 3 idle=3s channels=2;/;
$c
--- request
GET /status
--- response_body_like: nginx_engagement_dimension_channel_values 0
--- post_check
    is(send_view('idl-1', ',"channelId":"ia"'), 202, "channel ia");
    is(send_view('idl-2', ',"channelId":"ib"'), 202, "channel ib");
    is(send_view('idl-3', ',"channelId":"ic"'), 202, "channel ic: no place");
    sleep 4.5;
    is(send_view('idl-4', ',"channelId":"ic"'), 202, "channel ic after ia and ib went idle");
    is(send_view('idl-5', ',"channelId":"id"'), 202, "channel id takes the other idle place");
    is(send_view('idl-6', ',"channelId":"ia"'), 202, "channel ia lost its place");
    is(rows_in('idl-', 6), 6, "6 rows");
    is(ch("SELECT groupArray(channel_id) FROM (SELECT event_id, channel_id FROM eng.events "
          . "WHERE startsWith(event_id, 'idl-') ORDER BY event_id)"),
       "['ia','ib','other','ic','id','other']", "idle places go to new channels");
    my $t = status_text();
    like($t, qr/^nginx_engagement_dimension_channel_values 2$/m, "2 channels in the table");
    like($t, qr/^nginx_engagement_dimension_channel_folded_total 2$/m, "2 folded into other");

=== TEST 13: channels= out of its bounds is refused at nginx -t
--- http_config
    engagement_dimension_limit 10 channels=0;
--- config
    location = /v { engagement view; }
--- must_die
--- no_error_log
[alert]
--- error_log
invalid value "channels=0" of "engagement_dimension_limit": the number of channels must be between 1 and 65536

=== TEST 14: channels= beyond 65536 is refused at nginx -t
--- http_config
    engagement_dimension_limit 10 idle=1h channels=65537;
--- config
    location = /v { engagement view; }
--- must_die
--- no_error_log
[alert]
--- error_log
invalid value "channels=65537" of "engagement_dimension_limit": the number of channels must be between 1 and 65536

=== TEST 15: channels= not a number is refused at nginx -t
--- http_config
    engagement_dimension_limit 10 channels=many;
--- config
    location = /v { engagement view; }
--- must_die
--- no_error_log
[alert]
--- error_log
invalid value "channels=many" of "engagement_dimension_limit": the number of channels must be between 1 and 65536

=== TEST 16: an unknown or repeated parameter of engagement_dimension_limit is refused at nginx -t
--- http_config
    engagement_dimension_limit 10 channels=8 channels=16;
--- config
    location = /v { engagement view; }
--- must_die
--- no_error_log
[alert]
--- error_log
invalid parameter "channels=16" of "engagement_dimension_limit": expected idle=<time> or channels=<number>, each once

=== TEST 17: a reload (HUP) keeps the channel table and its figures
--- http_config eval
(my $c = $::HttpConfig) =~ s/engagement_dimension_limit 3;/engagement_dimension_limit 3 channels=2;/;
$c
--- request
GET /status
--- response_body_like: nginx_engagement_dimension_channel_values 0
--- post_check
    is(send_view('crl-1', ',"channelId":"q1"'), 202, "channel q1");
    is(send_view('crl-2', ',"channelId":"q2"'), 202, "channel q2");
    ok(reload_nginx(2), "reloaded: new workers serve, the old ones are gone");
    is(send_view('crl-3', ',"channelId":"q3"'), 202, "a new channel after the reload");
    is(send_view('crl-4', ',"channelId":"q2"'), 202, "a known channel after the reload");
    is(rows_in('crl-', 4), 4, "4 rows");
    is(ch("SELECT groupArray(channel_id) FROM (SELECT event_id, channel_id FROM eng.events "
          . "WHERE startsWith(event_id, 'crl-') ORDER BY event_id)"),
       "['q1','q2','other','q2']", "the channel table outlived the reload");
    my $t = status_text();
    like($t, qr/^nginx_engagement_dimension_channel_values 2$/m, "2 channels in the table");
    like($t, qr/^nginx_engagement_dimension_channel_folded_total 1$/m, "1 folded");

=== TEST 18: a reload with a new engagement_dimension_limit applies it (the zone keeps its page-rounded size: the table starts again with the new limit)
--- request
GET /status
--- response_body_like: nginx_engagement_dimension_category_values 0
--- post_check
    my $i = 0;
    for my $c (qw(n1 n2 n3 n4)) {
        $i++;
        is(send_view("nl-$i", qq(,"category":"$c")), 202, "a view of category $c");
    }
    like(status_text(), qr/^nginx_engagement_dimension_category_values 3$/m, "3 categories kept under limit 3");
    my $conf = servroot() . '/conf/nginx.conf';
    my $c = slurp($conf);
    $c =~ s/engagement_dimension_limit 3;/engagement_dimension_limit 5;/ or die 'no limit in the config';
    open my $fh, '>', $conf or die; print $fh $c; close $fh;
    ok(reload_nginx(2), "reloaded with limit 5: new workers serve");
    for my $c (qw(m1 m2 m3 m4 m5 m6)) {
        $i++;
        is(send_view("nl-$i", qq(,"category":"$c")), 202, "a view of category $c");
    }
    is(rows_in('nl-', 10), 10, "10 rows");
    is(ch("SELECT groupArray(category) FROM (SELECT event_id, category FROM eng.events "
          . "WHERE startsWith(event_id, 'nl-') ORDER BY toUInt32(substring(event_id, 4)))"),
       "['n1','n2','n3','other','m1','m2','m3','m4','m5','other']",
       "limit 3 before the reload, limit 5 after it");
    my $t = status_text();
    like($t, qr/^nginx_engagement_dimension_category_values 5$/m, "5 categories in the table");
    like($t, qr/^nginx_engagement_dimension_category_folded_total 1$/m, "1 folded since the reload");
