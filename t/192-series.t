# Guards the series by dimension (issue 14, read side): counted views and
# likes go to the series zone, one row per (content, minute, channel,
# category, source, device, country, interaction name); one worker of the
# edge sends a round of rows at a time to a real redis-server, expanded
# into the minute, hour and day bucket fields of the content, channel,
# category and all scopes, exactly once. The fields in Redis are compared
# with a model computed here from the answers (what each event counted):
# every field of every scope, for minutes, hours and days, in the layout
# of README's "Series": totals, likes and unlikes in the bucket's hash
# (eng:{ch:x}:m:<minute>), each breakdown in its dimension and metric's
# hash (eng:{ch:x}:m:<minute>:country:views, field US), no other hash;
# the breakdowns add up to their totals; likes and unlikes; a Redis
# stopped and started again mid-traffic, a reload mid-traffic, every worker killed while a
# round waits for a blocked Redis: exact afterwards, nothing lost or
# doubled; a full zone drops (counted, logged), never refuses a view;
# engagement_series_zone off keeps nothing; bad sizes fail at nginx -t.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes qw(sleep time);
use POSIX ();
use File::Temp ();
use Engagement::Proxy;

our $port = nginx_port();
our $rport = free_ports(500, 50, 1);
start_redis($rport);
$ENV{TEST_NGINX_REDIS_PORT} = $rport;

# a proxy to that Redis that cuts the connection right after Redis applied
# a series round, when its control file says so (TEST 12)
our $ctl = scratch_dir('proxy') . '/ctl-series';
{ open my $fh, '>', $ctl or die $!; print $fh '0'; close $fh }
our $pport = free_ports(560, 50, 1);
our $ppid = Engagement::Proxy::start($pport, $rport, $ctl, 0,
                                     qr/\neng:sb:[0-9a-f]+:\d+\r\n/);
$ENV{TEST_NGINX_PROXY_PORT} = $pport;
END { local $?; if ($ppid) { kill 'TERM', $ppid; waitpid($ppid, 0) } }

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
master_on();
workers(2);
timeout(30);
add_response_body_check(post_check_hook());

our $HttpConfig = <<'_EOC_';
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms buckets=0;
_EOC_

our $Loc = <<'_EOC_';
    location = /engagement/view { engagement view; }
    location = /engagement/like { engagement like; }
    location = /status { engagement status; }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    return if defined $block->must_die;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    $block->set_value("config", $Loc) unless defined $block->config;
    $block->set_value("no_error_log", "[alert]\nexited on signal 11\nexited on signal 6\nAddressSanitizer\nLeakSanitizer\nruntime error")
        unless defined $block->no_error_log;
});

sub rcli { redis_cli($rport, undef, @_) }

our (%Exp, $Sent, $Counted);

sub reset_model { %Exp = (); $Sent = 0; $Counted = 0 }

# the model: what one counted event adds to each scope's fields;
# $Exp{<scope>} the bucket's hash, $Exp{"<scope>:<dim>:<metric>"} its
# dimension and metric's (fields the values)
sub model_add {
    my (%e) = @_;
    my @scopes = (["eng:{c:$e{c}}", 'content']);
    push @scopes, ["eng:{ch:$e{ch}}", 'channel'] if ($e{ch} // '') ne '';
    push @scopes, ["eng:{cat:$e{cat}}", 'category'] if ($e{cat} // '') ne '';
    push @scopes, ['eng:{all}', 'all'];
    for my $s (@scopes) {
        my ($k, $kind) = @$s;
        $Exp{$k} //= {};
        for my $m (qw(views engaged replays)) {
            my $n = $e{$m} or next;
            $Exp{$k}{$m} += $n unless $kind eq 'content';
            for my $d (qw(country device source)) {
                my $v = ($e{$d} // '') eq '' ? 'unknown' : $e{$d};
                $Exp{"$k:$d:$m"}{$v} += $n;
            }
            if ($kind eq 'channel' || $kind eq 'all') {
                my $v = ($e{cat} // '') eq '' ? 'unknown' : $e{cat};
                $Exp{"$k:category:$m"}{$v} += $n;
            }
        }
        for my $m (qw(likes unlikes)) {
            $Exp{$k}{$m} += $e{$m} if $e{$m};
        }
    }
}

# one view with dimensions; into the model as its answer says
sub view {
    my (%e) = @_;
    # a device always: without one the dimension step (when in the tree)
    # classifies the User-Agent instead of leaving it unknown
    $e{device} //= 'desktop';
    my $body = qq({"contentId":"$e{c}","sessionId":"$e{s}");
    $body .= qq(,"channelId":"$e{ch}") if defined $e{ch};
    $body .= qq(,"category":"$e{cat}") if defined $e{cat};
    $body .= qq(,"source":"$e{source}") if defined $e{source};
    $body .= qq(,"device":"$e{device}") if defined $e{device};
    $body .= qq(,"durationMs":$e{dur}) if defined $e{dur};
    $body .= qq(,"replay":true) if $e{replay};
    $body .= '}';
    my ($st, $b) = post_view($port, $body);
    $Sent++;
    if ($st == 202) {
        my ($m) = $b =~ /"metrics":\[([^\]]*)\]/;
        $m //= '';
        $Counted++;
        model_add(%e, views => ($m =~ /"view"/ ? 1 : 0),
                  engaged => ($m =~ /"engaged"/ ? 1 : 0),
                  replays => ($m =~ /"replay"/ ? 1 : 0));
    }
    return $st;
}

sub react {
    my ($method, $json) = @_;
    my ($st, $b) = http_request($port, $method, '/engagement/like', $json,
                                'Content-Type' => 'application/json');
    return ($st, $b);
}

# a breakdown hash's suffix after its bucket: <dim>:<metric>
our $Dims = qr/(?:country|device|source|category):(?:views|engaged|replays)/;

# the sums of every field of a scope's buckets of one kind (m h d):
# redis_fields('eng:{all}', 'h') the buckets' own hashes (eng:{all}:h:<t>),
# redis_fields('eng:{all}:country:views', 'h') their hashes of views by
# country (eng:{all}:h:<t>:country:views)
sub redis_fields {
    my ($stem, $kind) = @_;
    my ($scope, $dim) = $stem =~ /^(.*\}):($Dims)$/ ? ($1, $2) : ($stem, undef);
    my $re = defined $dim ? qr/^\Q$scope\E:$kind:\d+:$dim$/ : qr/^\Q$scope\E:$kind:\d+$/;
    my %f;
    for my $k (grep { $_ =~ $re } split /\n/, rcli('KEYS', "$scope:$kind:*")) {
        my @kv = split /\n/, rcli('HGETALL', $k);
        while (my ($f, $v) = splice @kv, 0, 2) { $f{$f} += $v }
    }
    if (!defined $dim && $scope =~ /^eng:\{c:/) {
        # the content's totals are the counters flush's, not the series'
        delete @f{qw(views engaged replays)};
    }
    return \%f;
}

sub series { status_metric("nginx_engagement_series_$_[0]") // -1 }

# nothing of the series waits: every row confirmed by Redis
sub drained {
    return wait_until(sub { series('rows_pending') == 0 && series('events_total') >= 0 }, $_[0] // 20);
}

# every hash of the model, for minutes, hours and days, equals Redis;
# no hash of a scope of the model that the model has not
sub check_model {
    my ($t) = @_;
    Test::More::ok(drained(), "$t - every row confirmed (rows_pending 0)");
    for my $stem (sort keys %Exp) {
        for my $kind (qw(m h d)) {
            Test::More::is_deeply(redis_fields($stem, $kind), $Exp{$stem},
                "$t - $stem :$kind: hashes hold exactly the model's fields")
                or Test::More::diag(Test::More::explain(redis_fields($stem, $kind)));
        }
    }
    my @other;
    for my $scope (grep { !/:(?:$Dims)$/ } keys %Exp) {
        for my $k (split /\n/, rcli('KEYS', "$scope:[mhd]:*")) {
            next if $k eq '' || $k =~ /^\Q$scope\E:[mhd]:\d+$/;
            my ($d) = $k =~ /^\Q$scope\E:[mhd]:\d+:($Dims)$/;
            push @other, $k unless defined $d && $Exp{"$scope:$d"};
        }
    }
    Test::More::is("@other", '', "$t - no other hash in the model's scopes");
}

run_tests();

__DATA__

=== TEST 1: views with dimensions: the exact fields of the content, channel, category and all scopes in minute, hour and day buckets; breakdowns add up to the totals; TTLs
--- request
GET /status
--- response_body_like: nginx_engagement_series_rows_max \d+
--- post_check
    main::rcli('FLUSHALL');
    main::reset_model();
    my $t0 = time;
    my $i = 0;
    # two channels, three categories, sources and devices, some unknown
    my @dims = (
        [ 'c1', 'ch1', 'news',   'feed',   'mobile' ],
        [ 'c1', 'ch1', 'news',   'search', 'desktop' ],
        [ 'c2', 'ch1', 'sports', 'feed',   'tv' ],
        [ 'c3', 'ch2', 'music',  undef,    'mobile' ],
        [ 'c4', undef, undef,    'external', undef ],
    );
    for my $round (1 .. 3) {
        for my $d (@dims) {
            my ($c, $ch, $cat, $src, $dev) = @$d;
            $i++;
            main::view(c => $c, s => "s$i", ch => $ch, cat => $cat,
                       source => $src, device => $dev,
                       dur => ($i % 2 ? 45000 : undef));
        }
    }
    # an engaged-only event and a replay of sessions already counted
    main::view(c => 'c1', s => 's2', ch => 'ch1', cat => 'news', source => 'search', device => 'desktop', dur => 40000);
    main::view(c => 'c2', s => 's3', ch => 'ch1', cat => 'sports', source => 'feed', device => 'tv', replay => 1);
    Test::More::is($main::Counted, $main::Sent, "TEST 1 - all $main::Sent views counted (202)");
    main::check_model('TEST 1');
    Test::More::is($main::Exp{'eng:{all}'}{views}, 15, 'TEST 1 - the model has 15 views in all');

    # each metric's breakdown adds up to its total, in every scope but the content's
    for my $scope ('eng:{all}', 'eng:{ch:ch1}', 'eng:{cat:news}') {
        my $f = main::redis_fields($scope, 'h');
        for my $m (qw(views engaged replays)) {
            for my $d ($scope =~ /cat:/ ? qw(country device source) : qw(country device source category)) {
                my $fd = main::redis_fields("$scope:$d:$m", 'h');
                my $sum = 0;
                $sum += $fd->{$_} for keys %$fd;
                Test::More::is($sum, $f->{$m} // 0, "TEST 1 - $scope: $m by $d adds up to $m");
            }
        }
    }
    # the content's own views (the counters flush) equal its breakdown's sum
    Test::More::ok(main::wait_until(sub {
        my $v = 0;
        $v += main::rcli('HGET', $_, 'views') || 0 for grep { /:m:\d+$/ } split /\n/, main::rcli('KEYS', 'eng:{c:c1}:m:*');
        my $f = main::redis_fields('eng:{c:c1}:device:views', 'm');
        my $sum = 0;
        $sum += $f->{$_} for keys %$f;
        $v == $sum && $v == 6 }, 10), 'TEST 1 - content c1: views (flush.c) = sum of its hashes of views by device (series) = 6');

    # the minute keys are this block's minutes; their TTLs as the content's
    my @mk = grep { !/:$main::Dims$/ } split /\n/, main::rcli('KEYS', 'eng:{all}:m:*');
    my @ok = grep { my ($m) = /:m:(\d{12})$/; my $lo = POSIX::strftime('%Y%m%d%H%M', gmtime($t0 - 1)); my $hi = POSIX::strftime('%Y%m%d%H%M', gmtime(time)); $m ge $lo && $m le $hi } @mk;
    Test::More::ok(@mk >= 1 && @ok == @mk, "TEST 1 - minute buckets of this block's minutes (@mk)");
    my $ttl = main::rcli('TTL', $mk[0]);
    Test::More::ok($ttl > 691000 && $ttl <= 691200, "TEST 1 - a minute bucket lives 8 days ($ttl s)");
    my ($mck) = split /\n/, main::rcli('KEYS', 'eng:{all}:m:*:country:views');
    Test::More::like($mck, qr/^eng:\{all\}:m:\d{12}:country:views$/, "TEST 1 - a minute's hash of views by country: $mck");
    Test::More::is(main::rcli('HKEYS', $mck), 'unknown', "TEST 1 - $mck: its fields are the values (unknown: no country in this block)");
    $ttl = main::rcli('TTL', $mck);
    Test::More::ok($ttl > 691000 && $ttl <= 691200, "TEST 1 - a minute's hash of views by country lives 8 days ($ttl s)");
    my ($hk) = grep { /:h:\d+$/ } split /\n/, main::rcli('KEYS', 'eng:{ch:ch1}:h:*');
    $ttl = main::rcli('TTL', $hk);
    Test::More::ok($ttl > 34559000 && $ttl <= 34560000, "TEST 1 - an hour bucket lives 400 days ($ttl s)");
    ($hk) = split /\n/, main::rcli('KEYS', 'eng:{ch:ch1}:h:*:category:engaged');
    $ttl = main::rcli('TTL', $hk);
    Test::More::ok($ttl > 34559000 && $ttl <= 34560000, "TEST 1 - an hour's hash of engaged by category lives 400 days ($ttl s)");
    my ($dk) = split /\n/, main::rcli('KEYS', 'eng:{cat:music}:d:*:source:views');
    $ttl = main::rcli('TTL', $dk);
    Test::More::ok($ttl > 95039000 && $ttl <= 95040000, "TEST 1 - a day's hash of views by source lives 1100 days ($ttl s)");
    Test::More::is(main::rcli('KEYS', 'eng:{cat:*:category:*'), '', 'TEST 1 - no category hash in the category scope');
    ($dk) = grep { /:d:\d+$/ } split /\n/, main::rcli('KEYS', 'eng:{cat:music}:d:*');
    $ttl = main::rcli('TTL', $dk);
    Test::More::ok($ttl > 95039000 && $ttl <= 95040000, "TEST 1 - a day bucket lives 1100 days ($ttl s)");
    Test::More::like($dk, qr/^eng:\{cat:music\}:d:\d{8}$/, "TEST 1 - day key $dk");
    Test::More::is(main::rcli('KEYS', 'eng:{ch:}*'), '', 'TEST 1 - no channel scope for events without a channel');

    # the figures
    Test::More::is(main::series('events_total'), 17, 'TEST 1 - series_events_total 17');
    Test::More::is(main::series('dropped_total'), 0, 'TEST 1 - nothing dropped');
    Test::More::ok(main::series('rounds_total') >= 1, 'TEST 1 - rounds confirmed: ' . main::series('rounds_total'));
    Test::More::ok(main::series('rows') >= 1, 'TEST 1 - rows in use: ' . main::series('rows'));
    Test::More::is(main::series('errors_total'), 0, 'TEST 1 - no errors');
    SKIP: {
        Test::More::skip('promtool not installed', 1) unless -x '/usr/bin/promtool';
        my $tmp = File::Temp->new(TMPDIR => 1, SUFFIX => '.prom');
        print $tmp Engagement::Test::status_text();
        close $tmp;
        my $out = `/usr/bin/promtool check metrics < $tmp 2>&1`;
        Test::More::is($?, 0, 'TEST 1 - promtool check metrics passes with the series figures') or Test::More::diag($out);
    }
    my (undef, $j) = http_request($main::port, 'GET', '/status', undef, 'Accept' => 'application/json');
    Test::More::like($j, qr/"series":\{"events":17,"dropped":0,"rows":\d+,"rowsMax":\d+,"pending":0,"rounds":\d+,"rowsFlushed":\d+,"fields":\d+,"resent":0,"repeats":0,"errors":0,"refused":0\}/,
        'TEST 1 - the JSON status has the series figures');



=== TEST 2: likes and unlikes: a like where there was none counts in likes, a removal in unlikes, a change of type and a repeat in neither
--- request
GET /status
--- response_body_like: nginx_engagement_series_rows_pending 0
--- post_check
    main::rcli('FLUSHALL');
    main::reset_model();
    my @steps = (
        ['POST', '{"contentId":"k1","userId":"u1"}', 1, 0],
        ['POST', '{"contentId":"k1","userId":"u1"}', 0, 0],
        ['POST', '{"contentId":"k1","userId":"u1","reaction":"love"}', 0, 0],
        ['POST', '{"contentId":"k1","userId":"u2","reaction":"wow"}', 1, 0],
        ['DELETE', '{"contentId":"k1","userId":"u1"}', 0, 1],
        ['DELETE', '{"contentId":"k1","userId":"u1"}', 0, 0],
        ['POST', '{"contentId":"k2","userId":"u1","reaction":"like","requestId":"r1"}', 1, 0],
        ['POST', '{"contentId":"k2","userId":"u1","reaction":"like","requestId":"r1"}', 0, 0],
    );
    my $all = 1;
    for my $s (@steps) {
        my ($m, $body, $likes, $unlikes) = @$s;
        my ($st, $b) = main::react($m, $body);
        $all &&= ($st == 200);
        my ($c) = $body =~ /"contentId":"(\w+)"/;
        main::model_add(c => $c, likes => $likes, unlikes => $unlikes);
    }
    Test::More::ok($all, 'TEST 2 - every reaction answered 200');
    main::check_model('TEST 2');
    Test::More::is($main::Exp{'eng:{all}'}{likes}, 3, 'TEST 2 - the model: 3 likes');
    Test::More::is($main::Exp{'eng:{all}'}{unlikes}, 1, 'TEST 2 - the model: 1 unlike');
    Test::More::is(main::series('events_total'), 4, 'TEST 2 - 4 events in the series (3 likes, 1 unlike)');



=== TEST 3: Redis stopped and started again mid-traffic: the rows wait, are sent after the restart, exact (nothing lost or doubled)
--- request
GET /status
--- response_body_like: nginx_engagement_series_rows_pending 0
--- post_check
    main::rcli('FLUSHALL');
    main::reset_model();
    my @src = qw(feed search profile);
    my @dev = qw(mobile desktop tv);
    my $i = 0;
    for (1 .. 60) {
        $i++;
        main::view(c => 'r' . ($i % 7), s => "s$i", ch => 'rc' . ($i % 3), cat => 'cat' . ($i % 2),
                   source => $src[$i % 3], device => $dev[$i % 3 ? 0 : 1], dur => ($i % 4 ? undef : 31000));
        sleep 0.01;
    }
    Engagement::Test::stop_redis(Engagement::Test::redis_pid($main::rport));
    for (1 .. 80) {
        $i++;
        main::view(c => 'r' . ($i % 7), s => "s$i", ch => 'rc' . ($i % 3), cat => 'cat' . ($i % 2),
                   source => $src[$i % 3], device => $dev[$i % 3 ? 0 : 1], dur => ($i % 4 ? undef : 31000));
        sleep 0.01;
    }
    sleep 1;
    Test::More::ok(main::series('rows_pending') > 0, 'TEST 3 - rows pending while Redis is down: ' . main::series('rows_pending'));
    Test::More::ok(main::series('errors_total') >= 0, 'TEST 3 - errors while down: ' . main::series('errors_total'));
    Engagement::Test::start_redis($main::rport, keep => 1);
    for (1 .. 60) {
        $i++;
        main::view(c => 'r' . ($i % 7), s => "s$i", ch => 'rc' . ($i % 3), cat => 'cat' . ($i % 2),
                   source => $src[$i % 3], device => $dev[$i % 3 ? 0 : 1], dur => ($i % 4 ? undef : 31000));
        sleep 0.01;
    }
    Test::More::is($main::Counted, $main::Sent, "TEST 3 - all $main::Sent views counted (202), Redis down or not");
    main::check_model('TEST 3');
    Test::More::is($main::Exp{'eng:{all}'}{views}, 200, 'TEST 3 - 200 views in the model');
    Test::More::is(main::series('dropped_total'), 0, 'TEST 3 - nothing dropped');



=== TEST 4: a reload mid-traffic: the new workers take the zone over, exact
--- request
GET /status
--- response_body_like: nginx_engagement_series_rows_pending 0
--- post_check
    main::rcli('FLUSHALL');
    main::reset_model();
    my $i = 0;
    my $reloaded;
    for (1 .. 150) {
        $i++;
        main::view(c => 'h' . ($i % 5), s => "s$i", ch => 'hc' . ($i % 2), cat => 'hk',
                   source => ($i % 2 ? 'feed' : 'search'), device => 'mobile');
        if ($i == 60) {
            my @old = Engagement::Test::worker_pids();
            kill 'HUP', Engagement::Test::master_pid();
            $reloaded = @old;
        }
        sleep 0.01;
    }
    Test::More::ok($reloaded && Engagement::Test::wait_workers(2), 'TEST 4 - reloaded: two new workers');
    Test::More::is($main::Counted, $main::Sent, "TEST 4 - all $main::Sent views counted (202) across the reload");
    main::check_model('TEST 4');
    Test::More::is($main::Exp{'eng:{all}'}{views}, 150, 'TEST 4 - 150 views in the model');



=== TEST 5: every worker killed while a round waits for a blocked Redis: the new workers take the round over and send it again under the same batch key, applied once
--- request
GET /status
--- response_body_like: nginx_engagement_series_rows_pending 0
--- post_check
    main::rcli('FLUSHALL');
    main::reset_model();
    # the counters flush would wait too: its figures are not this block's
    my $i = 0;
    for (1 .. 40) {
        $i++;
        main::view(c => 'w' . ($i % 4), s => "s$i", ch => 'wc', cat => 'wk', source => 'feed', device => 'tv');
    }
    Test::More::ok(main::drained(), 'TEST 5 - the first views are in Redis');
    my $resent0 = main::series('resent_total');
    # Redis paused for 3 s (CLIENT PAUSE); the views meanwhile make a round whose answer waits
    my $pid = fork() // die;
    if ($pid == 0) { exec 'redis-cli', '-p', $main::rport, 'CLIENT', 'PAUSE', '3000'; exit 127 }
    sleep 0.1;
    for (1 .. 40) {
        $i++;
        main::view(c => 'w' . ($i % 4), s => "s$i", ch => 'wc', cat => 'wk', source => 'search', device => 'tv');
    }
    sleep 1.3;
    my $pending = main::series('rows_pending');
    my @old = Engagement::Test::worker_pids();
    kill 'KILL', @old;
    Test::More::ok($pending > 0, "TEST 5 - rows in flight when the workers were killed: $pending");
    Test::More::ok(Engagement::Test::wait_workers(2, @old), 'TEST 5 - the master started two new workers');
    waitpid($pid, 0);
    Test::More::is($main::Counted, $main::Sent, "TEST 5 - all $main::Sent views counted (202)");
    main::check_model('TEST 5');
    Test::More::ok(main::series('resent_total') > $resent0, 'TEST 5 - the round was sent again: resent_total ' . main::series('resent_total'));
    Test::More::diag('repeats_total: ' . main::series('repeats_total') . ', resent_total: ' . main::series('resent_total') . ', errors_total: ' . main::series('errors_total'));
--- error_log
[alert]
exited on signal 9
--- no_error_log
exited on signal 11
AddressSanitizer



=== TEST 6: a full series zone: views still counted (202), the rows it had no room for dropped and counted, logged once, no crash; the rest exact
--- http_config
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms buckets=0;
    engagement_series_zone 128k;
--- request
GET /status
--- response_body_like: nginx_engagement_series_rows_max \d+
--- post_check
    main::rcli('FLUSHALL');
    main::reset_model();
    my $max = main::series('rows_max');
    Test::More::ok($max >= 16 && $max < 400, "TEST 6 - a 128k zone holds $max rows");
    my $ok = 1;
    for my $i (1 .. 3 * $max) {
        my ($st) = post_view($main::port, qq({"contentId":"f$i","sessionId":"s$i","channelId":"fc","device":"tv"}));
        $ok &&= ($st == 202);
    }
    Test::More::ok($ok, 'TEST 6 - every view counted (202) with the series zone full');
    my $dropped = main::series('dropped_total');
    my $events = main::series('events_total');
    Test::More::ok($dropped > 0, "TEST 6 - dropped counted: $dropped");
    Test::More::is($dropped + $events, 3 * $max, 'TEST 6 - dropped + taken = views counted');
    Test::More::ok(main::drained(), 'TEST 6 - the rows taken reach Redis');
    my $f = main::redis_fields('eng:{ch:fc}', 'h');
    Test::More::is($f->{views}, $events, "TEST 6 - the channel's views are the $events events taken");
    my $log = Engagement::Test::error_log_text();
    my $n = () = $log =~ /series zone "engagement_series" is full/g;
    Test::More::ok($n >= 1 && $n <= 2, "TEST 6 - the full zone logged at a limited rate ($n lines)");
--- no_error_log
[alert]
exited on signal



=== TEST 7: engagement_series_zone off: no series zone, no figures, nothing in Redis but the content's totals
--- http_config
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms buckets=0;
    engagement_series_zone off;
--- request
GET /status
--- response_body_unlike: series
--- post_check
    main::rcli('FLUSHALL');
    my ($st) = post_view($main::port, '{"contentId":"o1","sessionId":"s1","channelId":"oc"}');
    Test::More::is($st, 202, 'TEST 7 - a view counted');
    Test::More::ok(main::wait_until(sub { main::rcli('HGET', 'eng:{c:o1}', 'views') eq '1' }, 10), 'TEST 7 - its total reaches Redis');
    sleep 1.5;
    Test::More::is(main::rcli('KEYS', 'eng:{all}*') . main::rcli('KEYS', 'eng:{ch:*'), '', 'TEST 7 - no series keys');



=== TEST 8: without engagement_redis the size is ignored with a warning
--- http_config
    engagement_zone engagement:1m;
    engagement_series_zone 1m;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_unlike: series
--- error_log
engagement_series_zone is ignored



=== TEST 9: a size below 32 pages fails at nginx -t
--- http_config
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    engagement_series_zone 4k;
--- config
    location = /engagement/view { engagement view; }
--- must_die
--- error_log eval
qr/invalid size "4k" of "engagement_series_zone": at least \d+k/



=== TEST 10: engagement_series_zone twice fails at nginx -t
--- http_config
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    engagement_series_zone 1m;
    engagement_series_zone off;
--- config
    location = /engagement/view { engagement view; }
--- must_die
--- error_log
"engagement_series_zone" directive is duplicate



=== TEST 11: the zone name is the module's own: another zone may not take it
--- http_config
    engagement_zone engagement_series:1m;
--- config
    location = /engagement/view { engagement view; }
--- must_die
--- error_log
is reserved for the module's series zone



=== TEST 12: the answer to a round lost after Redis applied it (the connection cut): the round is sent again under the same batch key and Redis applies nothing twice
--- http_config
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_PROXY_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms buckets=0;
--- request
GET /status
--- response_body_like: nginx_engagement_series_rows_pending 0
--- post_check
    main::rcli('FLUSHALL');
    main::reset_model();
    my $i = 0;
    for (1 .. 20) {
        $i++;
        main::view(c => 'x' . ($i % 3), s => "s$i", ch => 'xc', cat => 'xk', source => 'feed', device => 'mobile');
    }
    Test::More::ok(main::drained(), 'TEST 12 - the first views are in Redis');
    my $rep0 = main::series('repeats_total');
    { open my $fh, '>', $main::ctl or die $!; print $fh '1'; close $fh }
    for (1 .. 20) {
        $i++;
        main::view(c => 'x' . ($i % 3), s => "s$i", ch => 'xc', cat => 'xk', source => 'search', device => 'tv');
    }
    Test::More::ok(scalar(main::wait_until(sub { Engagement::Test::slurp($main::ctl) eq '0' }, 10)), 'TEST 12 - the proxy cut the answer to a round');
    Test::More::is($main::Counted, $main::Sent, "TEST 12 - all $main::Sent views counted (202)");
    main::check_model('TEST 12');
    Test::More::ok(main::series('repeats_total') > $rep0, 'TEST 12 - Redis answered the resend as applied before: repeats_total ' . main::series('repeats_total'));
    Test::More::ok(main::series('errors_total') >= 1, 'TEST 12 - the lost answer counted as an error: ' . main::series('errors_total'));
--- no_error_log
[alert]
exited on signal



=== TEST 13: a reload that would resize the series zone is refused (its counts not yet sent would be lost); the old configuration keeps serving and sending
--- http_config
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms buckets=0;
    engagement_series_zone 1m;
--- request
GET /status
--- response_body_like: nginx_engagement_series_rows_max \d+
--- post_check
    main::rcli('FLUSHALL');
    main::reset_model();
    main::view(c => 'z1', s => "s$_", ch => 'zc', source => 'feed') for 1 .. 5;
    my $f = Engagement::Test::servroot() . '/conf/nginx.conf';
    my $c = Engagement::Test::slurp($f);
    $c =~ s/engagement_series_zone 1m;/engagement_series_zone 2m;/ or die 'no series zone in the conf';
    { open my $fh, '>', $f or die $!; print $fh $c; close $fh }
    my @old = Engagement::Test::worker_pids();
    kill 'HUP', Engagement::Test::master_pid();
    Test::More::ok(main::wait_until(sub { Engagement::Test::error_log_text() =~
        /engagement_series_zone "engagement_series" cannot change size on reload \(1048576 to 2097152 bytes\)/ }, 10),
        'TEST 13 - the resize is refused with a clear message');
    main::view(c => 'z1', s => "t$_", ch => 'zc', source => 'feed') for 1 .. 5;
    my @now = Engagement::Test::worker_pids();
    Test::More::is("@now", "@old", 'TEST 13 - the same workers serve');
    Test::More::is($main::Counted, 10, 'TEST 13 - 10 views counted');
    main::check_model('TEST 13');
--- error_log
[emerg]
engagement_series_zone "engagement_series" cannot change size on reload
--- no_error_log
[alert]
exited on signal



=== TEST 14: a row is sent when its minute is over or after buckets= (here 3 s), as the content's own buckets are: one write per tuple and minute, not one per second
--- http_config
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms buckets=3s;
--- request
GET /status
--- response_body_like: nginx_engagement_series_rows_pending 0
--- post_check
    main::rcli('FLUSHALL');
    main::reset_model();
    # not within 6 s of a minute's end (which would send the row sooner)
    sleep 0.2 while (time % 60) > 53;
    my $t0 = time;
    main::view(c => 'b1', s => "s$_", ch => 'bc', source => 'feed') for 1 .. 5;
    sleep 1.5;
    Test::More::is(main::rcli('KEYS', 'eng:{ch:bc}:*'), '', 'TEST 14 - 1.5 s later the row waits (buckets=3s)');
    Test::More::is(main::series('rows_pending'), 1, 'TEST 14 - one row pending for five views');
    Test::More::ok(main::wait_until(sub { main::rcli('KEYS', 'eng:{ch:bc}:m:*') ne '' }, 10), 'TEST 14 - then it is sent');
    my $dt = time - $t0;
    # since is kept in whole seconds: due 2 to 3 s after the views, then a turn
    Test::More::ok($dt >= 1.9 && $dt < 5.5, sprintf('TEST 14 - after %.1f s', $dt));
    main::check_model('TEST 14');
    Test::More::is(main::series('rows_flushed_total'), 1, 'TEST 14 - five views, one row sent');



=== TEST 15: a reload sends the current minute's rows at once (the exiting workers' final round), not at the minute's end; counts exact
--- http_config
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms;
--- request
GET /status
--- response_body_like: nginx_engagement_series_rows_pending 0
--- post_check
    main::rcli('FLUSHALL');
    main::reset_model();
    # a minute with 25 s left at least, so that no row is due meanwhile
    sleep 0.2 while (time % 60) > 35;
    my $minute = int(time / 60);
    main::view(c => 'q1', s => "s$_", ch => 'qc', cat => 'qk', source => 'feed', device => 'tv') for 1 .. 6;
    sleep 1.5;
    Test::More::is(main::rcli('KEYS', 'eng:{ch:qc}:*'), '', 'TEST 15 - the rows wait for their minute to end (buckets=60s)');
    Test::More::ok(Engagement::Test::reload_nginx(2), 'TEST 15 - reloaded');
    Test::More::ok(main::wait_until(sub { main::rcli('KEYS', 'eng:{ch:qc}:m:*') ne '' }, 5), 'TEST 15 - the old workers sent them as they left');
    Test::More::is(int(time / 60), $minute, 'TEST 15 - before the minute ended');
    main::check_model('TEST 15');



=== TEST 16: a graceful stop (a private nginx) sends the current minute's rows before the workers exit: exact in Redis after the stop
--- request
GET /status
--- response_body_like: nginx_engagement_series_rows_max \d+
--- post_check
    main::rcli('FLUSHALL');
    my $p2 = free_ports(600, 50, 1);
    my $prefix = Engagement::Test::new_prefix('series-stop');
    Engagement::Test::write_conf($prefix, port => $p2, workers => 2,
        http => "engagement_zone engagement:1m;\n    engagement_redis 127.0.0.1:$main::rport timeout=500ms connect_timeout=500ms;",
        server => 'location = /engagement/view { engagement view; } location = /status { engagement status; }');
    my $pid = Engagement::Test::start_nginx($prefix, $p2);
    Test::More::ok($pid, 'TEST 16 - a private nginx starts');
    Test::More::ok(main::wait_until(sub {
        my (undef, $t) = http_request($p2, 'GET', '/status');
        $t =~ /^nginx_engagement_redis_ready_workers\{[^}]*\} 2$/m }, 10), 'TEST 16 - both workers reach Redis');
    sleep 0.2 while (time % 60) > 35;
    my $minute = int(time / 60);
    my $ok = 0;
    for my $i (1 .. 8) {
        my ($st) = post_view($p2, qq({"contentId":"st1","sessionId":"s$i","channelId":"stc","source":"search","device":"mobile"}));
        $ok++ if $st == 202;
    }
    Test::More::is($ok, 8, 'TEST 16 - 8 views counted');
    sleep 1.2;
    Test::More::is(main::rcli('KEYS', 'eng:{ch:stc}:*'), '', 'TEST 16 - the row waits for its minute');
    my $t0 = time;
    Test::More::is(Engagement::Test::stop_nginx($pid), 0, 'TEST 16 - a graceful stop');
    Test::More::diag(sprintf('TEST 16 - the stop took %.2f s', time - $t0));
    Test::More::is(int(time / 60), $minute, 'TEST 16 - before the minute ended');
    my %f = map { my $d = $_; ($d => main::redis_fields("eng:{ch:stc}$d", 'm')) } '', qw(:country:views :device:views :source:views :category:views);
    Test::More::is_deeply(\%f, { '' => { views => 8 }, ':country:views' => { unknown => 8 }, ':device:views' => { mobile => 8 },
                                 ':source:views' => { search => 8 }, ':category:views' => { unknown => 8 } },
        'TEST 16 - the channel\'s minute bucket and its dimensions\' hashes hold the 8 views after the stop');
    my $log = Engagement::Test::slurp("$prefix/logs/error.log");
    Test::More::unlike($log, qr/\[alert\]|\[emerg\]|signal 11|Sanitizer|runtime error/, 'TEST 16 - the private nginx logged no alert or crash');



=== TEST 17: a bucket key of another type: its fields are refused (counted, logged), the round's other buckets applied, nothing resent
--- request
GET /status
--- response_body_like: nginx_engagement_series_rows_pending 0
--- post_check
    main::rcli('FLUSHALL');
    main::reset_model();
    # not within 10 s of an hour's end (the hour's key is made below)
    sleep 0.5 while (time % 3600) > 3590;
    my $hour = POSIX::strftime('%Y%m%d%H', gmtime);
    main::rcli('SET', "eng:{ch:badch}:h:$hour", 'a string');
    main::rcli('SET', "eng:{ch:badch}:h:$hour:device:views", 'a string too');
    my $refused0 = main::series('refused_total');
    main::view(c => 'y1', s => "s$_", ch => 'badch', source => 'feed', device => 'tv') for 1 .. 3;
    Test::More::ok(main::drained(), 'TEST 17 - the round is confirmed');
    Test::More::is(main::series('refused_total') - $refused0, 2,
        "TEST 17 - 2 fields refused: views of the channel's hour bucket, tv of its hour's hash of views by device");
    Test::More::is(main::rcli('GET', "eng:{ch:badch}:h:$hour"), 'a string', 'TEST 17 - the key of another type is left as it is');
    Test::More::is(main::rcli('GET', "eng:{ch:badch}:h:$hour:device:views"), 'a string too', 'TEST 17 - so is the device hash\'s');
    for my $stem (map { "eng:{ch:badch}$_" } '', qw(:country:views :device:views :source:views :category:views)) {
        Test::More::is_deeply(main::redis_fields($stem, 'm'), $main::Exp{$stem}, "TEST 17 - $stem: the minute hash is exact");
        Test::More::is_deeply(main::redis_fields($stem, 'd'), $main::Exp{$stem}, "TEST 17 - $stem: the day hash is exact");
    }
    Test::More::is_deeply(main::redis_fields('eng:{ch:badch}:source:views', 'h'), $main::Exp{'eng:{ch:badch}:source:views'}, 'TEST 17 - the hour\'s other dimension hashes are applied');
    Test::More::is_deeply(main::redis_fields('eng:{all}', 'h'), $main::Exp{'eng:{all}'}, 'TEST 17 - the other scopes\' hour buckets are exact');
    Test::More::is(main::series('errors_total'), 0, 'TEST 17 - no error: the round is not sent again');
--- error_log
2 series fields refused by Redis
--- no_error_log
[alert]
exited on signal
