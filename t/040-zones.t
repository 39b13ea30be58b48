# Guards the shared-memory zones: a full counters zone answers 503 with
# Retry-After and logs at a limited rate; a full dedupe zone evicts and
# counts it; dedupe windows expire; the client identity uses the user
# agent; counts and marks survive `nginx -s reload` (HUP); a reload that
# would resize the counters zone is refused; two workers count exactly.
# Bulk traffic (filling a zone, concurrent clients) runs in --- init, once
# nginx is up; reloads run between requests (add_response_body_check) and
# the next request waits until the new configuration answers and the old
# workers are gone.
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";    # after Test::Nginx::Socket: the real one wins
use Engagement::Block;
use POSIX ();

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
master_on();    # the real runner's default is master_process off: no reloads
workers(2);

sub view { return "POST $_[1]\n$_[0]" if $_[1]; return "POST /engagement/view\n$_[0]" }
sub post { return (http('POST', '/engagement/view', $_[0], 'Content-Type' => 'application/json'))[0] }

# --- init of TEST 1: new content until the zone is full
sub fill {
    my $n = 0;
    for my $i (1 .. 3000) {
        last if post(qq({"contentId":"content-$i","sessionId":"s"})) != 202;
        $n++;
    }
    Test::More::ok($n > 10 && $n < 3000, "a 32k zone holds some content ($n) and then fills");
}

# --- init of TEST 2: 1,499 sessions of one content
sub sessions {
    my $ok = grep { post(qq({"contentId":"v","sessionId":"s$_"})) == 202 } 1 .. 1499;
    Test::More::is($ok, 1499, "every new session counts while the dedupe zone evicts");
}

# --- init of TEST 5: 3 views, then a reload that resizes the counters zone
sub refused_reload {
    post(qq({"contentId":"r","sessionId":"s$_"})) for 1 .. 3;
    reload_reset();
    reload(edit => sub {
        my $c = shift;
        $c =~ s/engagement_zone engagement:1m;/engagement_zone engagement:2m;/ or die;
        $c =~ s{# probe}{location = /new2 { return 200; }} or die;
        return $c;
    });
    my $refused = wait_until(sub { error_log_text(0) =~
        /engagement_zone "engagement" cannot change size on reload \(1048576 to 2097152 bytes\)/ });
    Test::More::ok($refused, "the resize is refused with a clear message");
    Test::More::is((http('GET', '/new2'))[0], 404, "the old configuration keeps serving");
}

# --- init of TEST 6: 6 clients x 100 unique sessions, each event sent twice
sub concurrent {
    my @kids;
    for my $c (1 .. 6) {
        my $kid = fork() // die "fork: $!";
        if ($kid == 0) {
            my $bad = 0;
            for my $i (1 .. 100) {
                for my $try (1, 2) {    # every event is repeated once (a retry)
                    my $st = post(qq({"contentId":"hot","sessionId":"c$c-$i","durationMs":31000}));
                    $bad++ unless $st == ($try == 1 ? 202 : 200);
                }
            }
            POSIX::_exit($bad ? 1 : 0);
        }
        push @kids, $kid;
    }
    my $fails = 0;
    for (@kids) { waitpid($_, 0); $fails++ if $? != 0 }
    Test::More::is($fails, 0, "every first event was counted and every repeat was a duplicate");
}

# reloads of TEST 4 and the checks that follow requests
sub reload_to {
    my ($name, $what, %o) = @_;
    my ($served, $gone) = reload(block => $name, edit => sub {
        my $c = shift;
        $c =~ s/engagement_dedupe_zone engagement_dedupe:1m;/engagement_dedupe_zone engagement_dedupe:2m;/
            or die if $o{dedupe_2m};
        $c =~ s{# probe}{location = $o{probe} { return 200 "reloaded\\n"; }} or die;
        return $c;
    }, probe => $o{probe});
    Test::More::ok($served, "$name - $what");
    Test::More::ok($gone, "$name - the workers from before are gone");
}

add_response_body_check(sub {
    my ($block, $body, $i) = @_;
    my $name = $block->name;
    my $last = ref $block->request eq 'ARRAY' ? $#{ $block->request } : 0;
    if ($name =~ /\bTEST 1:/ && $i == $last) {
        my $full = () = error_log_text(0) =~ /engagement zone "engagement" is full/g;
        Test::More::ok($full >= 1 && $full <= 2,
            "the full zone is logged at a limited rate ($full lines for 21 refusals)");
    }
    if ($name =~ /\bTEST 3:/ && $i == 1) {
        # the dedupe window is what is tested: let its 300 ms pass
        Time::HiRes::sleep(0.45);
    }
    if ($name =~ /\bTEST 4:/) {
        reload_reset() if $i == 0;
        reload_to($name, 'reload 1: the new configuration serves', probe => '/new') if $i == 5;
        reload_to($name, 'reload 2: the new configuration serves', probe => '/new') if $i == 6;
        if ($i == 10) {
            reload_to($name, 'a reload that resizes the dedupe zone is accepted',
                      probe => '/new3', dedupe_2m => 1);
            Test::More::like(error_log_text(0),
                qr/\[warn\].*engagement_dedupe_zone "engagement_dedupe" changed size on reload \(1048576 to 2097152 bytes\) and starts empty/,
                "$name - with a warning that the marks start empty");
        }
    }
});

run_tests();

__DATA__

=== TEST 1: a full counters zone answers 503 with Retry-After, refuses new content, counts the old
--- http_config
    engagement_zone engagement:32k;
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
--- init
main::fill();
--- more_headers
Content-Type: application/json
--- request eval
[ (map { main::view(qq({"contentId":"new-$_","sessionId":"s"})) } 0 .. 19),
  "GET /engagement/summary/new-1",
  "GET /engagement/summary/content-1",
  main::view(q({"contentId":"content-1","sessionId":"s2"})),
  "GET /engagement/summary/content-1",
  "GET /status", "GET /status" ]
--- error_code eval
[ (503) x 20, 200, 200, 202, 200, 200, 200 ]
--- response_headers eval
[ ("Retry-After: 1") x 20, ("") x 6 ]
--- response_body_like eval
[ (qr/^\{"error":"zone_full",/) x 20,
  qr/"views":0,/, qr/"views":1,/, qr/"counted":true/, qr/"views":2,/,
  qr/nginx_engagement_refused_total\{zone="engagement",reason="zone_full"\} 21\n/,
  qr/nginx_engagement_zone_alloc_failures_total\{zone="engagement",kind="counters"\} [1-9]/ ]
--- no_error_log
[alert]
[emerg]
exited on signal
AddressSanitizer
runtime error



=== TEST 2: a full dedupe zone evicts the oldest marks, and says so
--- http_config
    engagement_dedupe_zone engagement_dedupe:32k;
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
--- init
main::sessions();
--- more_headers
Content-Type: application/json
--- request eval
[ main::view(q({"contentId":"v","sessionId":"s1500"})),
  "GET /engagement/summary/v",
  "GET /status", "GET /status",
  main::view(q({"contentId":"v","sessionId":"s1500"})),
  main::view(q({"contentId":"v","sessionId":"s1"})) ]
--- error_code eval
[ 202, 200, 200, 200, 200, 202 ]
--- response_body_like eval
[ qr/"counted":true/,
  qr/"views":1500,/,
  # evictions are counted
  qr/nginx_engagement_dedupe_evictions_total\{zone="engagement_dedupe"\} [1-9]\d*\n/,
  # the zone stays bounded: fewer than 1500 entries
  qr/nginx_engagement_zone_entries\{zone="engagement_dedupe",kind="dedupe"\} (?:\d{1,3}|1[0-4]\d\d)\n/,
  # recent marks survive eviction: a repeat of the last session is a duplicate
  qr/"reason":"duplicate"/,
  # the oldest was evicted: its repeat counts again (the documented cost)
  qr/"counted":true/ ]
--- no_error_log
[alert]
[emerg]
exited on signal
AddressSanitizer
runtime error



=== TEST 3: windows expire; the client identity includes the user agent
--- config
    location = /engagement/view {
        engagement view;
        engagement_dedupe_window 300ms;
    }
    location = /engagement/client {
        engagement view;
        engagement_dedupe_key client;
    }
    location /engagement/summary { engagement summary; }
--- more_headers eval
[ ("Content-Type: application/json") x 4,
  "Content-Type: application/json\nUser-Agent: player/1",
  "Content-Type: application/json\nUser-Agent: player/1",
  "Content-Type: application/json\nUser-Agent: player/2" ]
--- request eval
[ main::view(q({"contentId":"w","sessionId":"s","requestId":"r1"})),
  main::view(q({"contentId":"w","sessionId":"s"})),
  main::view(q({"contentId":"w","sessionId":"s"})),
  main::view(q({"contentId":"w","sessionId":"s9","requestId":"r1"})),
  main::view(q({"contentId":"c","sessionId":"a"}), "/engagement/client"),
  main::view(q({"contentId":"c","sessionId":"b"}), "/engagement/client"),
  main::view(q({"contentId":"c","sessionId":"a"}), "/engagement/client") ]
--- error_code eval
[ 202, 200, 202, 202, 202, 200, 202 ]
--- no_error_log
[alert]
[emerg]
exited on signal
AddressSanitizer
runtime error



=== TEST 4: reloads (HUP) keep counts and marks; resizing the dedupe zone empties it, with a warning
--- http_config
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
    # probe
--- more_headers
Content-Type: application/json
--- request eval
[ (map { main::view(qq({"contentId":"r","sessionId":"s$_"})) } 1 .. 5),
  "GET /engagement/summary/r",
  "GET /engagement/summary/r",
  "GET /engagement/summary/r",
  main::view(q({"contentId":"r","sessionId":"s1"})),
  main::view(q({"contentId":"r","sessionId":"s6"})),
  "GET /engagement/summary/r",
  "GET /engagement/summary/r",
  main::view(q({"contentId":"r","sessionId":"s1"})) ]
--- error_code eval
[ (202) x 5, 200, 200, 200, 200, 202, 200, 200, 202 ]
--- response_body_like eval
[ (qr/"counted":true/) x 5,
  qr/"views":5,/,                   # five views before the reloads
  qr/"views":5,/,                   # reload 1: counts survive
  qr/"views":5,/,                   # reload 2: counts survive
  qr/"reason":"duplicate"/,         # dedupe marks survive the reloads
  qr/"counted":true/,               # new views count after the reloads
  qr/"views":6,/,                   # and the count goes on from 5
  qr/"views":6,/,                   # counts are intact after the dedupe resize
  qr/"counted":true/ ]              # as warned, a repeat from before the resize counts again
--- no_error_log
[alert]
[emerg]
exited on signal
AddressSanitizer
runtime error



=== TEST 5: a reload that would resize the counters zone is refused; the old one keeps serving
--- http_config
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    # probe
--- init
main::refused_reload();
--- request
GET /engagement/summary/r
--- response_body
{"contentId":"r","views":3,"engagedViews":0,"replays":0}
--- error_log
[emerg]
engagement_zone "engagement" cannot change size on reload (1048576 to 2097152 bytes)
--- no_error_log
[alert]
exited on signal
AddressSanitizer
runtime error



=== TEST 6: two workers, many concurrent clients: exact counts
--- http_config
    engagement_zone engagement:1m;
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
--- init
main::concurrent();
--- request
GET /engagement/summary/hot
--- response_body
{"contentId":"hot","views":600,"engagedViews":600,"replays":0}
--- no_error_log
[alert]
[emerg]
exited on signal
AddressSanitizer
runtime error
