# Guards the rotation of the identity salt (engagement_salt_rotate): a
# repeat just after a rotation is still a repeat (the previous salt is kept
# for one dedupe window), also after idle periods; the salt really
# changes (a mark made two rotations ago no longer matches, the documented
# effect when the period is shorter than the window); a reload keeps it.
#
# The views must land at chosen points of the clock's salt periods, so
# they are sent from the block's "--- post_check" (after the block's own
# request), where the test can wait for a period boundary. Those waits are
# for the clock, not for nginx; the reload is waited for (its new worker
# serves, the old one is gone).
use strict;
use warnings;
use FindBin;
# our helpers first: their END (which stops our servers) then runs after
# the runner's END has stopped nginx
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes qw(sleep time);

our $port = nginx_port();
our $period = 2;

master_on();
workers(1);
log_level('info');
no_shuffle();
add_response_body_check(post_check_hook());

# sleeps until the clock is $phase seconds into a salt period (the next one
# when $next is set, or when that point has passed in this one)
sub sleep_to {
    my ($phase, $next) = @_;
    my $now = time;
    my $into = $now - int($now / $period) * $period;
    my $d = $phase - $into;
    $d += $period if $d <= 0 || $next;
    sleep($d);
}

sub view {
    my ($c, $s, $uri) = @_;
    my ($st, $body) = post_view($port, qq({"contentId":"$c","sessionId":"$s"}),
                                $uri);
    return "$st $body";
}

run_tests();

__DATA__

=== TEST 1: repeats across rotations, idle periods and a reload; the salt changes
--- http_config
    engagement_salt_rotate 2s;
--- config
    location = /engagement/view { engagement view; }
    location = /client/view { engagement view; engagement_dedupe_key client; }
--- request
GET /engagement/view
--- error_code: 405
--- post_check
    # a repeat across one rotation
    sleep_to(1.5);
    like(view('g', 's1'), qr/^202 .*"views":1,/, 'a view just before a rotation');
    sleep_to(0.5);
    like(view('g', 's1'), qr/^200 .*"reason":"duplicate"/,
         'its repeat just after the rotation is a duplicate');

    # a repeat after idle periods (no event at all meanwhile)
    sleep_to(0.5, 1);
    like(view('i', 's1'), qr/^202 /, 'a view');
    sleep(2 * $period + 0.2);
    like(view('i', 's1'), qr/^200 .*"reason":"duplicate"/,
         'its repeat two idle periods later is a duplicate');

    # the salt changes: a mark two rotations old is out of reach
    sleep_to(0.5, 1);
    like(view('r', 'old'), qr/^202 .*"views":1,/, 'a view in period q');
    sleep_to(0.5, 1);
    like(view('r', 'x1'), qr/^202 .*"views":2,/, 'another session in q+1');
    sleep_to(0.5, 1);
    like(view('r', 'x2'), qr/^202 .*"views":3,/, 'another session in q+2');
    like(view('r', 'old'), qr/^202 .*"views":4,/,
         'the first session again: two rotations later its mark no longer matches');

    # a reload keeps the salt: a client identity still dedupes
    sleep_to(0.3, 1);
    like(view('h', 'a', '/client/view'), qr/^202 /, 'a view before a reload');
    ok(reload_nginx(1), 'reloaded: a new worker serves, the old one is gone');
    like(view('h', 'b', '/client/view'), qr/^200 .*"reason":"duplicate"/,
         'its repeat after the reload is a duplicate');

    unlike(error_log_text(), qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/,
           'no alert, crash or sanitizer report');
--- no_shutdown_error_log eval
qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/
