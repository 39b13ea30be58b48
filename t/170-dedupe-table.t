# Guards the dedupe zone's table (issue 13): one fixed entry per
# (content, identity) holds its view, engaged and replay marks, request
# ids have entries of their own, and the answers are those of the marks
# kept one per node before; each kind of mark keeps its own window; a key
# lives in one of its two buckets (the emptier), so the table fills
# evenly: the first eviction comes late, but before the table is full (a
# lookup reads two buckets, never more); a full table never refuses an
# event; eviction takes the oldest marks and keeps recent ones; a reload
# keeps the marks.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes ();

our $port = nginx_port();

master_on();
workers(1);
log_level('warn');
no_shuffle();
timeout(20);
add_response_body_check(post_check_hook());

# every block: a view location (view after 10 s, engaged after 30 s, plus
# its "--- view" directives), summary and status; the block's request
# reads the status, and its post_check does the rest
add_block_preprocessor(sub {
    my ($block) = @_;
    my $view = $block->{view} ? $block->{view}[0] : '';
    $block->set_value('config', <<"CONF") unless defined $block->config;
    location = /engagement/view {
        engagement view;
        engagement_view_after 10s;
        engagement_engaged_after 30s;
        $view
    }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
CONF
    $block->set_value('request', 'GET /status') unless defined $block->request;
    $block->set_value('response_body_like', '^# HELP nginx_engagement_')
        unless defined $block->response_body_like;
});

# (status, what it counted as "view,engaged" or its reason) of one event
sub dt_view {
    my ($c, $who, $more) = @_;
    my ($st, $body) = post_view($port,
        qq({"contentId":"$c","sessionId":"s$who"$more}));
    my $r = $body =~ /"counted":true.*?"metrics":\[([^\]]*)\]/
            ? join(',', $1 =~ /"(\w+)"/g)
          : $body =~ /"(?:reason|error)":"(\w+)"/ ? $1 : $body;
    return "$st $r";
}

# a figure of the dedupe zone
sub dt_metric {
    my ($name, $t) = @_;
    $t //= status_text();
    return $t =~ /^nginx_engagement_$name\{zone="engagement_dedupe"(?:,kind="dedupe")?\} (\d+)$/m
           ? $1 : -1;
}

run_tests();

__DATA__

=== TEST 1: view, engaged, replay and request id marks answer as before, with one entry per (content, identity)
--- post_check
    # content | session | more of the body | the answer
    my @steps = map { [ split / \| / ] } split /\n/, <<~'STEPS';
        c | 1 | ,"durationMs":5000 | 200 below_policy
        c | 1 | ,"durationMs":12000 | 202 view
        c | 1 | ,"durationMs":15000 | 200 duplicate
        c | 1 | ,"durationMs":40000 | 202 engaged
        c | 1 | ,"durationMs":40000 | 200 duplicate
        c | 1 | ,"replay":true | 202 replay
        c | 1 | ,"replay":true | 200 duplicate
        c | 2 | ,"durationMs":40000 | 202 view,engaged
        c | 3 | ,"durationMs":40000,"requestId":"r1" | 202 view,engaged
        c | 3 | ,"durationMs":40000,"requestId":"r1" | 200 duplicate_request
        c | 4 | ,"durationMs":40000,"requestId":"r1" | 200 duplicate_request
        c | 3 | ,"durationMs":40000,"requestId":"r2" | 200 duplicate
        d | 1 | ,"durationMs":12000 | 202 view
        STEPS
    my $n = 0;
    for my $s (@steps) {
        $n++;
        is(dt_view(@$s[0 .. 2]), $s->[3], "step $n: $s->[0] s$s->[1]$s->[2]");
    }
    my (undef, $sum) = http_request($port, 'GET', '/engagement/summary/c');
    like($sum, qr/"views":3,"engagedViews":3,"replays":1\b/, 'c: 3 views, 3 engaged, 1 replay');

    # marks: c/s1 V E P, c/s2 V E, c/s3 V E, r1, r2, d/s1 V: 10 in 6 entries;
    # hits: steps 3 (V), 4 (V), 5 (V E), 7 (P), 10 (r1), 11 (r1), 12 (V E)
    my $t = status_text();
    is(dt_metric('dedupe_inserts_total', $t), 10, 'marks set: 10');
    is(dt_metric('zone_entries', $t), 6, 'entries: 6');
    is(dt_metric('dedupe_hits_total', $t), 9, 'live marks found: 9');
    is(dt_metric('dedupe_evictions_total', $t), 0, 'no eviction');
    is(dt_metric('zone_full', $t), 0, 'not full');



=== TEST 2: each kind of mark keeps its own window within the entry
--- view
engagement_dedupe_window 1500ms;
--- post_check
    # each step at its time; a step the machine delayed past its slot is
    # skipped, not failed (the windows are short)
    my $t0 = Time::HiRes::time();
    my @steps = (
        [ 0,   0.5, ',"durationMs":12000', '202 view', 'the view at 0 s' ],
        [ 0.8, 1.3, ',"durationMs":40000', '202 engaged',
          'engaged at 0.8 s: the view is a repeat' ],
        [ 1.8, 2.1, ',"durationMs":40000', '202 view',
          'at 1.8 s the view mark has lapsed, the engaged mark (until 2.3 s) has not' ],
        [ 2.6, 3.1, ',"durationMs":40000', '202 engaged',
          'at 2.6 s the engaged mark has lapsed too, the view mark of 1.8 s has not' ],
    );
    my $late = 0;
    for my $s (@steps) {
        my ($at, $by, $more, $want, $name) = @$s;
        my $wait = $at - (Time::HiRes::time() - $t0);
        Time::HiRes::sleep($wait) if $wait > 0;
        my $got = dt_view('w', 1, $more);
        my $took = Time::HiRes::time() - $t0;
        $late ||= $took > $by;
        SKIP: {
            skip("the machine was too slow: a step ended at $took s", 1) if $late;
            is($got, $want, $name);
        }
    }
    is(dt_metric('zone_entries'), 1, 'all in one entry');



=== TEST 3: a table fills evenly, evicts the oldest marks of a key's two buckets, never refuses, and keeps recent marks
--- http_config
    engagement_dedupe_zone engagement_dedupe:32k;
--- post_check
    my $n = 2500;
    my ($counted, $at_first) = (0, 0);
    for my $i (1 .. $n) {
        $counted++ if dt_view('v', $i, ',"durationMs":12000') eq '202 view';
        next if $at_first || $i % 10;
        my $t = status_text();
        my $e = dt_metric('zone_entries', $t);
        $at_first = $e if dt_metric('dedupe_evictions_total', $t) > 0;
    }
    is($counted, $n, "every one of $n new sessions counts: a full table never refuses");

    my $t = status_text();
    my $entries = dt_metric('zone_entries', $t);
    # 32k: the table takes the zone's free pages, 32 bytes an entry
    ok($entries > 400 && $entries <= 1024, "the table is bounded ($entries entries)");
    ok($at_first > $entries / 2 && $at_first < $entries,
       "the first eviction came late, yet before the table was full ($at_first "
       . "of $entries entries): a key is looked for in its two buckets only");
    ok(dt_metric('dedupe_evictions_total', $t) >= $n - $entries,
       'every mark past the table\'s size evicted one: ' . dt_metric('dedupe_evictions_total', $t));
    is(dt_metric('zone_alloc_failures_total', $t), 0, 'no failure');
    is(dt_metric('zone_full', $t), 1, 'zone_full says the last new entry evicted a live one');

    my $recent = grep { dt_view('v', $_, ',"durationMs":12000') eq '200 duplicate' }
                 $n - 19 .. $n;
    is($recent, 20, 'the 20 most recent marks survive: their repeats are duplicates');
    my $old = grep { dt_view('v', $_, ',"durationMs":12000') eq '202 view' } 1 .. 20;
    ok($old >= 18, "the oldest marks were evicted: $old of the first 20 count again");
    my (undef, $sum) = http_request($port, 'GET', '/engagement/summary/v');
    my $want = $n + $old;
    like($sum, qr/"views":$want,/, "the summary agrees: $want views");



=== TEST 4: a reload keeps the table and its marks
--- post_check
    is(dt_view('k', 1, ',"durationMs":40000,"requestId":"q1"'), '202 view,engaged', 'counted');
    is(dt_view('k', 2, ',"durationMs":12000'), '202 view', 'counted');
    is(dt_view('k', 3, ',"replay":true'), '202 replay', 'counted');
    my $before = dt_metric('zone_entries');
    ok(reload_nginx(1), 'reloaded');
    is(dt_metric('zone_entries'), $before, "the entries are kept ($before)");
    is(dt_view('k', 1, ',"durationMs":40000,"requestId":"q1"'), '200 duplicate_request',
       'the request id is remembered');
    is(dt_view('k', 1, ',"durationMs":40000,"requestId":"q2"'), '200 duplicate',
       'the view and engaged marks are remembered');
    is(dt_view('k', 2, ',"durationMs":40000'), '202 engaged', 'the view mark alone');
    is(dt_view('k', 3, ',"replay":true'), '200 duplicate', 'the replay mark');
    is(dt_view('k', 4, ',"durationMs":12000'), '202 view', 'a new session counts');
--- no_error_log
[alert]
[emerg]
