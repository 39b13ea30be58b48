# Guards the shared-memory zones: a full counters zone answers 503 with
# Retry-After and logs at a limited rate; a full dedupe zone evicts and
# counts it; dedupe windows expire; the client identity uses the user
# agent; counts and marks survive `nginx -s reload` (HUP); a reload that
# would resize the counters zone is refused; two workers count exactly.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Engagement::Test;
use Time::HiRes qw(sleep);

my $port = free_port();

sub start {
    my ($name, %o) = @_;
    my $prefix = new_prefix($name);
    write_conf($prefix, port => $port, %o);
    my $pid = start_nginx($prefix, $port);
    ok($pid, "$name: nginx started") or diag(slurp("$prefix/logs/stderr.log")
                                             . slurp("$prefix/logs/error.log"));
    return ($prefix, $pid);
}

sub views {
    my ($id) = @_;
    my ($st, $body) = http_request($port, 'GET', "/engagement/summary/$id");
    return $body =~ /"views":(\d+)/ ? $1 : -1;
}

sub no_alerts {
    my ($prefix, $name) = @_;
    my $log = slurp("$prefix/logs/error.log") . slurp("$prefix/logs/stderr.log");
    unlike($log, qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/,
           "$name: no alert, crash or sanitizer report");
}

my $loc = <<'EOC';
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
EOC

# --- a full counters zone --------------------------------------------------
{
    my ($prefix, $pid) = start('zones-counters-full',
        http => "engagement_zone engagement:32k;",
        server => $loc);

    my ($n, $st, $body, $h) = (0);
    for my $i (1 .. 3000) {
        ($st, $body, $h) = post_view($port,
            qq({"contentId":"content-$i","sessionId":"s"}));
        last if $st != 202;
        $n++;
    }
    ok($n > 10 && $n < 3000, "a 32k zone holds some content ($n) and then fills");
    is($st, 503, "a full counters zone answers 503");
    is($h->{'retry-after'}, '1', "with Retry-After");
    like($body, qr/^\{"error":"zone_full",/, "and a JSON error");

    # more refusals, then check nothing of them counted and the log is calm
    post_view($port, qq({"contentId":"new-$_","sessionId":"s"})) for 1 .. 20;
    is(views("new-1"), 0, "refused content has no count");
    is(views("content-1"), 1, "content stored before still reads 1");
    ($st) = post_view($port, q({"contentId":"content-1","sessionId":"s2"}));
    is($st, 202, "content already in the zone still counts");
    is(views("content-1"), 2, "and reads 2");

    my ($s2, $status) = http_request($port, 'GET', '/status');
    like($status, qr/nginx_engagement_refused_total\{zone="engagement",reason="zone_full"\} 21\n/,
         "status counts the 21 refusals");
    like($status, qr/nginx_engagement_zone_alloc_failures_total\{zone="engagement",kind="counters"\} [1-9]/,
         "status counts allocation failures");

    stop_nginx($pid);
    my $log = slurp("$prefix/logs/error.log");
    my $full = () = $log =~ /engagement zone "engagement" is full/g;
    ok($full >= 1 && $full <= 2, "the full zone is logged at a limited rate ($full lines for 22 refusals)");
    no_alerts($prefix, 'counters-full');
}

# --- a full dedupe zone evicts the oldest marks, and says so --------------
{
    my ($prefix, $pid) = start('zones-dedupe-full',
        http => "engagement_dedupe_zone engagement_dedupe:32k;",
        server => $loc);

    my $ok = 0;
    for my $i (1 .. 1500) {
        my ($st) = post_view($port, qq({"contentId":"v","sessionId":"s$i"}));
        $ok++ if $st == 202;
    }
    is($ok, 1500, "every new session counts while the dedupe zone evicts");
    is(views("v"), 1500, "views equal the sessions");

    my (undef, $status) = http_request($port, 'GET', '/status');
    my ($ev) = $status =~ /nginx_engagement_dedupe_evictions_total\{zone="engagement_dedupe"\} (\d+)/;
    ok(defined $ev && $ev > 0, "evictions are counted (" . ($ev // 'none') . ")");
    my ($entries) = $status =~ /nginx_engagement_zone_entries\{zone="engagement_dedupe",kind="dedupe"\} (\d+)/;
    ok($entries < 1500, "the zone stays bounded ($entries entries)");

    # the newest mark is still there: a repeat of the last session is a duplicate
    my ($st, $body) = post_view($port, q({"contentId":"v","sessionId":"s1500"}));
    like($body, qr/"reason":"duplicate"/, "recent marks survive eviction");
    # the oldest was evicted: its repeat counts again (the documented cost)
    ($st, $body) = post_view($port, q({"contentId":"v","sessionId":"s1"}));
    is($st, 202, "an evicted mark lets a repeat count again, as documented");

    stop_nginx($pid);
    no_alerts($prefix, 'dedupe-full');
}

# --- windows expire; the client identity includes the user agent ----------
{
    my ($prefix, $pid) = start('zones-window',
        server => <<'EOC');
    location = /engagement/view {
        engagement view;
        engagement_dedupe_window 300ms;
    }
    location = /engagement/client {
        engagement view;
        engagement_dedupe_key client;
    }
    location /engagement/summary { engagement summary; }
EOC
    my ($st, $body);
    ($st) = post_view($port, q({"contentId":"w","sessionId":"s","requestId":"r1"}));
    is($st, 202, "first view");
    ($st) = post_view($port, q({"contentId":"w","sessionId":"s"}));
    is($st, 200, "repeat inside the window");
    sleep 0.45;
    ($st) = post_view($port, q({"contentId":"w","sessionId":"s"}));
    is($st, 202, "the same session counts again after the window");
    ($st, $body) = post_view($port, q({"contentId":"w","sessionId":"s9","requestId":"r1"}));
    is($st, 202, "a request id is forgotten after the window too");

    my %ua1 = ('Content-Type' => 'application/json', 'User-Agent' => 'player/1');
    my %ua2 = ('Content-Type' => 'application/json', 'User-Agent' => 'player/2');
    ($st) = http_request($port, 'POST', '/engagement/client', q({"contentId":"c","sessionId":"a"}), %ua1);
    is($st, 202, "client identity: first");
    ($st) = http_request($port, 'POST', '/engagement/client', q({"contentId":"c","sessionId":"b"}), %ua1);
    is($st, 200, "client identity: same address and agent, other session: duplicate");
    ($st) = http_request($port, 'POST', '/engagement/client', q({"contentId":"c","sessionId":"a"}), %ua2);
    is($st, 202, "client identity: another user agent counts");
    stop_nginx($pid);
    no_alerts($prefix, 'window');
}

# --- reload (HUP) keeps counts and marks; a resize is refused --------------
{
    my $http = "engagement_zone engagement:1m;\n    engagement_dedupe_zone engagement_dedupe:1m;";
    my ($prefix, $pid) = start('zones-reload', http => $http, server => $loc);

    post_view($port, qq({"contentId":"r","sessionId":"s$_"})) for 1 .. 5;
    is(views("r"), 5, "five views before the reload");

    # change something harmless, reload, and make sure new workers serve
    write_conf($prefix, port => $port, http => $http,
               server => $loc . "    location = /new { return 200 \"reloaded\\n\"; }\n");
    for my $round (1 .. 2) {
        kill 'HUP', $pid;
        my $ok = 0;
        for (1 .. 250) {
            my ($st, $b) = http_request($port, 'GET', '/new');
            if ($st == 200) { $ok = 1; last }
            sleep 0.02;
        }
        ok($ok, "reload $round: the new configuration serves");
        is(views("r"), 5, "reload $round: counts survive");
    }
    my ($st, $body) = post_view($port, q({"contentId":"r","sessionId":"s1"}));
    like($body, qr/"reason":"duplicate"/, "dedupe marks survive the reloads");
    ($st) = post_view($port, q({"contentId":"r","sessionId":"s6"}));
    is($st, 202, "new views count after the reloads");
    is(views("r"), 6, "and the count goes on from 5");

    # a reload that resizes the counters zone is refused
    write_conf($prefix, port => $port,
               http => "engagement_zone engagement:2m;\n    engagement_dedupe_zone engagement_dedupe:1m;",
               server => $loc . "    location = /new2 { return 200; }\n");
    kill 'HUP', $pid;
    my $refused = 0;
    for (1 .. 250) {
        if (slurp("$prefix/logs/error.log") =~ /engagement_zone "engagement" cannot change size on reload \(1048576 to 2097152 bytes\)/) {
            $refused = 1; last;
        }
        sleep 0.02;
    }
    ok($refused, "the resize is refused with a clear message");
    ($st) = http_request($port, 'GET', '/new2');
    is($st, 404, "the old configuration keeps serving");
    is(views("r"), 6, "counts are intact after the refused reload");

    # resizing only the dedupe zone is allowed, with a warning: it starts empty
    write_conf($prefix, port => $port,
               http => "engagement_zone engagement:1m;\n    engagement_dedupe_zone engagement_dedupe:2m;",
               server => $loc . "    location = /new3 { return 200; }\n");
    kill 'HUP', $pid;
    my $ok = 0;
    for (1 .. 250) {
        ($st) = http_request($port, 'GET', '/new3');
        if ($st == 200) { $ok = 1; last }
        sleep 0.02;
    }
    ok($ok, "a reload that resizes the dedupe zone is accepted");
    like(slurp("$prefix/logs/error.log"),
         qr/\[warn\].*engagement_dedupe_zone "engagement_dedupe" changed size on reload \(1048576 to 2097152 bytes\) and starts empty/,
         "with a warning that the marks start empty");
    is(views("r"), 6, "counts are intact after the dedupe resize");
    # an old worker may still take a connection for a moment after the HUP
    for (1 .. 50) {
        ($st) = post_view($port, q({"contentId":"r","sessionId":"s1"}));
        last if $st == 202;
        sleep 0.05;
    }
    is($st, 202, "as warned, a repeat from before the resize counts again");

    stop_nginx($pid);
    my $log = slurp("$prefix/logs/error.log");
    unlike($log, qr/\[alert\]|exited on signal|AddressSanitizer/, "no alert or crash over the reloads");
}

# --- two workers, many concurrent clients: exact counts --------------------
{
    my ($prefix, $pid) = start('zones-concurrency', workers => 2,
        http => "engagement_zone engagement:1m;", server => $loc);

    my $clients = 6;
    my $per = 100;
    my @kids;
    for my $c (1 .. $clients) {
        my $kid = fork() // die;
        if ($kid == 0) {
            my $bad = 0;
            for my $i (1 .. $per) {
                # every client also repeats each event once (a retry)
                for my $try (1, 2) {
                    my ($st) = post_view($port,
                        qq({"contentId":"hot","sessionId":"c$c-$i","durationMs":31000}));
                    $bad++ unless $st == ($try == 1 ? 202 : 200);
                }
            }
            POSIX::_exit($bad ? 1 : 0);
        }
        push @kids, $kid;
    }
    my $fails = 0;
    for (@kids) { waitpid($_, 0); $fails++ if $? != 0 }
    is($fails, 0, "every first event was counted and every repeat was a duplicate");
    my (undef, $body) = http_request($port, 'GET', '/engagement/summary/hot');
    is($body, qq({"contentId":"hot","views":600,"engagedViews":600,"replays":0}\n),
       "2 workers x 6 clients x 100 unique sessions (+100% repeats) = exactly 600");
    stop_nginx($pid);
    no_alerts($prefix, 'concurrency');
}

done_testing();
