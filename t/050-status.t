# Guards the status endpoint: Prometheus text that passes
# `promtool check metrics` fresh and after traffic, one HELP/TYPE per
# family, JSON on request with the same numbers, and figures that move
# exactly with a scripted mix of requests. One block: the status reads
# before and after the mix are checked by add_response_body_check.
use Test::Nginx::Socket 'no_plan';
use File::Temp ();
use JSON::PP ();

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');

sub view { return "POST /engagement/view\n$_[0]" }

sub metric {
    my ($text, $name) = @_;
    return $text =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

sub promtool_ok {
    my ($text, $name) = @_;
    SKIP: {
        Test::More::skip('promtool not installed', 1) unless -x '/usr/bin/promtool';
        # outside the server root, which the real runner removes only when
        # it holds nothing it did not make
        my $tmp = File::Temp->new(TMPDIR => 1, SUFFIX => '.prom');
        print $tmp $text;
        close $tmp;
        my $out = `/usr/bin/promtool check metrics < $tmp 2>&1`;
        Test::More::is($?, 0, "promtool check metrics: $name") or Test::More::diag($out);
    }
}

our %Want = (
    'nginx_engagement_view_events_total{zone="engagement"}' => 11,
    'nginx_engagement_counted_total{zone="engagement",metric="view"}' => 3,
    'nginx_engagement_counted_total{zone="engagement",metric="engaged"}' => 1,
    'nginx_engagement_counted_total{zone="engagement",metric="replay"}' => 1,
    'nginx_engagement_not_counted_total{zone="engagement",reason="duplicate"}' => 1,
    'nginx_engagement_not_counted_total{zone="engagement",reason="duplicate_request"}' => 1,
    'nginx_engagement_not_counted_total{zone="engagement",reason="below_policy"}' => 1,
    'nginx_engagement_refused_total{zone="engagement",reason="invalid"}' => 1,
    'nginx_engagement_refused_total{zone="engagement",reason="too_large"}' => 1,
    'nginx_engagement_refused_total{zone="engagement",reason="method"}' => 1,
    'nginx_engagement_refused_total{zone="engagement",reason="content_type"}' => 1,
    'nginx_engagement_refused_total{zone="engagement",reason="zone_full"}' => 0,
    'nginx_engagement_read_requests_total{zone="engagement"}' => 2,
    'nginx_engagement_zone_entries{zone="engagement",kind="counters"}' => 1,
    'nginx_engagement_zone_size_bytes{zone="engagement",kind="counters"}' => 1048576,
    'nginx_engagement_zone_size_bytes{zone="engagement_dedupe",kind="dedupe"}' => 1048576,
    # marks: V s1, V+E s2, r q, V s4, P s1 (the refused request id q2 is none),
    # in 4 entries: one per (content, identity) holds its V, E and P marks
    'nginx_engagement_zone_entries{zone="engagement_dedupe",kind="dedupe"}' => 4,
    'nginx_engagement_dedupe_inserts_total{zone="engagement_dedupe"}' => 6,
    'nginx_engagement_dedupe_hits_total{zone="engagement_dedupe"}' => 2,
    'nginx_engagement_dedupe_evictions_total{zone="engagement_dedupe"}' => 0,
);

# requests of TEST 1: 0 the fresh text, 14 the text after the mix, 15 and 16
# the JSON form (by ?format=json, by Accept)
add_response_body_check(sub {
    my ($block, $text, $i) = @_;
    return unless $block->name =~ /\bTEST 1:/;    # the real runner prefixes $0
    if ($i == 0) {
        promtool_ok($text, 'fresh server');
        my %seen;
        $seen{$_}++ for $text =~ /^# (?:HELP|TYPE) (\S+)/mg;
        Test::More::is(scalar(grep { $_ != 2 } values %seen), 0,
                       'each family has exactly one HELP and one TYPE');
    } elsif ($i == 14) {
        promtool_ok($text, 'after traffic');
        for my $k (sort keys %Want) {
            Test::More::is(metric($text, $k), $Want{$k}, "$k = $Want{$k}");
        }
        my $free = metric($text, 'nginx_engagement_zone_free_bytes{zone="engagement",kind="counters"}') // -1;
        Test::More::ok($free > 0 && $free < 1048576,
                       "free bytes of the counters zone is plausible ($free)");
    } elsif ($i == 15) {
        my $doc = eval { JSON::PP::decode_json($text) };
        Test::More::ok($doc, 'JSON status parses') or Test::More::diag($text);
        my ($cz) = grep { $_->{zone} eq 'engagement' } @{ $doc->{zones} // [] };
        Test::More::is($cz->{counted_total_view}, 3, 'JSON: counted views');
        Test::More::is($cz->{not_counted_total_duplicate_request}, 1, 'JSON: duplicate requests');
        Test::More::is($cz->{refused_total_too_large}, 1, 'JSON: too large');
        Test::More::is($cz->{view_events_total}, 11, 'JSON: events received');
        my ($dz) = grep { $_->{zone} eq 'engagement_dedupe' } @{ $doc->{zones} // [] };
        Test::More::is($dz->{zone_entries}, 4, 'JSON: dedupe entries');
    } elsif ($i == 16) {
        Test::More::ok(eval { JSON::PP::decode_json($text) }, 'Accept: application/json selects JSON');
    }
});

run_tests();

__DATA__

=== TEST 1: status figures: fresh, after a scripted mix, as JSON
--- http_config
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
--- config
    location = /engagement/view { engagement view; engagement_view_after 1s; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
--- more_headers eval
[ "", ("Content-Type: application/json") x 9, "", "Content-Type: text/plain",
  "", "", "", "", "Accept: application/json", "Content-Length: 0" ]
--- request eval
[ "GET /status",
  main::view('{"contentId":"m","sessionId":"s1","durationMs":1000}'),     # counted view
  main::view('{"contentId":"m","sessionId":"s1","durationMs":1000}'),     # duplicate
  main::view('{"contentId":"m","sessionId":"s2","durationMs":40000}'),    # view + engaged
  main::view('{"contentId":"m","sessionId":"s3"}'),                       # below policy
  main::view('{"contentId":"m","sessionId":"s4","requestId":"q","durationMs":2000}'),  # counted
  main::view('{"contentId":"m","sessionId":"s5","requestId":"q","durationMs":2000}'),  # duplicate_request
  main::view('{"contentId":"m","sessionId":"s1","replay":true}'),         # replay
  main::view('{"contentId":"m"}'),                                        # invalid
  main::view('x' x 9000),                                                 # too large
  "GET /engagement/view",                                                 # method
  main::view('{}'),                                                       # content type
  "GET /engagement/summary/m",
  "GET /engagement/summary?ids=m,n",
  "GET /status",
  "GET /status?format=json",
  "GET /status",
  "POST /status" ]
--- error_code eval
[ 200, 202, 200, 202, 200, 202, 200, 202, 400, 413, 405, 415, 200, 200, 200, 200, 200, 405 ]
--- response_headers_like eval
[ "Content-Type: text/plain; version=0\\.0\\.4.*", ("") x 14,
  "Content-Type: application/json.*", "Content-Type: application/json.*", "" ]
--- no_error_log
[alert]
[emerg]
exited on signal
AddressSanitizer
runtime error
