# Guards the status endpoint: Prometheus text that passes
# `promtool check metrics` fresh and after traffic, one HELP/TYPE per
# family, JSON on request with the same numbers, and figures that move
# exactly with a scripted mix of requests.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Engagement::Test;
use JSON::PP;

my $port = free_port();
my $prefix = new_prefix('status');
write_conf($prefix, port => $port,
    http => "engagement_zone engagement:1m;\n    engagement_dedupe_zone engagement_dedupe:1m;",
    server => <<'EOC');
    location = /engagement/view { engagement view; engagement_view_after 1s; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
EOC
my $pid = start_nginx($prefix, $port);
ok($pid, 'nginx started') or BAIL_OUT(slurp("$prefix/logs/stderr.log"));

sub promtool_ok {
    my ($text, $name) = @_;
    SKIP: {
        skip 'promtool not installed', 1 unless -x '/usr/bin/promtool';
        open my $fh, '|-', '/usr/bin/promtool check metrics > ' . "$prefix/logs/promtool.out 2>&1" or die;
        print $fh $text;
        close $fh;
        is($?, 0, "promtool check metrics: $name") or diag(slurp("$prefix/logs/promtool.out"));
    }
}

sub metric {
    my ($text, $re) = @_;
    return $text =~ /^\Q$re\E (\d+)$/m ? $1 : undef;
}

my ($st, $text, $h) = http_request($port, 'GET', '/status');
is($st, 200, 'status answers');
like($h->{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'Prometheus text content type');
promtool_ok($text, 'fresh server');

my %seen;
for ($text =~ /^# (?:HELP|TYPE) (\S+)/mg) { $seen{$_}++ }
is(scalar(grep { $_ != 2 } values %seen), 0, 'each family has exactly one HELP and one TYPE');

# a scripted mix
post_view($port, q({"contentId":"m","sessionId":"s1","durationMs":1000}));        # counted view
post_view($port, q({"contentId":"m","sessionId":"s1","durationMs":1000}));        # duplicate
post_view($port, q({"contentId":"m","sessionId":"s2","durationMs":40000}));       # view + engaged
post_view($port, q({"contentId":"m","sessionId":"s3"}));                          # below policy
post_view($port, q({"contentId":"m","sessionId":"s4","requestId":"q","durationMs":2000}));  # counted
post_view($port, q({"contentId":"m","sessionId":"s5","requestId":"q","durationMs":2000}));  # duplicate_request
post_view($port, q({"contentId":"m","sessionId":"s1","replay":true}));            # replay
post_view($port, q({"contentId":"m"}));                                            # invalid
post_view($port, 'x' x 9000);                                                      # too large
http_request($port, 'GET', '/engagement/view');                                    # method
http_request($port, 'POST', '/engagement/view', '{}', 'Content-Type' => 'text/plain');  # content type
http_request($port, 'GET', '/engagement/summary/m');
http_request($port, 'GET', '/engagement/summary?ids=m,n');

($st, $text) = http_request($port, 'GET', '/status');
promtool_ok($text, 'after traffic');

my %want = (
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
    # marks: V s1, V+E s2, r q, V s4, P s1 (the refused request id q2 is none)
    'nginx_engagement_zone_entries{zone="engagement_dedupe",kind="dedupe"}' => 6,
    'nginx_engagement_dedupe_inserts_total{zone="engagement_dedupe"}' => 6,
    'nginx_engagement_dedupe_hits_total{zone="engagement_dedupe"}' => 2,
    'nginx_engagement_dedupe_evictions_total{zone="engagement_dedupe"}' => 0,
);
for my $k (sort keys %want) {
    is(metric($text, $k), $want{$k}, "$k = $want{$k}");
}
my $free = metric($text, 'nginx_engagement_zone_free_bytes{zone="engagement",kind="counters"}');
ok($free > 0 && $free < 1048576, "free bytes of the counters zone is plausible ($free)");

# the JSON form carries the same numbers
my ($st2, $json, $h2) = http_request($port, 'GET', '/status?format=json');
is($st2, 200, 'JSON status answers');
like($h2->{'content-type'}, qr{^application/json}, 'JSON content type');
my $doc = eval { decode_json($json) };
ok($doc, 'JSON status parses') or diag($json);
my ($cz) = grep { $_->{zone} eq 'engagement' } @{ $doc->{zones} // [] };
is($cz->{counted_total_view}, 3, 'JSON: counted views');
is($cz->{not_counted_total_duplicate_request}, 1, 'JSON: duplicate requests');
is($cz->{refused_total_too_large}, 1, 'JSON: too large');
is($cz->{view_events_total}, 11, 'JSON: events received');
my ($dz) = grep { $_->{zone} eq 'engagement_dedupe' } @{ $doc->{zones} // [] };
is($dz->{zone_entries}, 6, 'JSON: dedupe entries');
my ($st3, $json2) = http_request($port, 'GET', '/status', undef, 'Accept' => 'application/json');
ok(eval { decode_json($json2) }, 'Accept: application/json selects JSON');

($st) = http_request($port, 'POST', '/status', '');
is($st, 405, 'status refuses POST');

stop_nginx($pid);
unlike(slurp("$prefix/logs/error.log"), qr/\[alert\]|exited on signal|AddressSanitizer/, 'no alert or crash');

done_testing();
