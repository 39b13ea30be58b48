# Guards the rotation of the identity salt (engagement_salt_rotate): a
# repeat just after a rotation is still a repeat (the previous salt is kept
# for one dedupe window), also after idle periods; the salt really
# changes (a mark made two rotations ago no longer matches, the documented
# effect when the period is shorter than the window); a reload keeps it.
# Plain Perl: the data format cannot wait for a clock boundary.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Engagement::Test;
use Time::HiRes qw(sleep time);

my $port = free_port();
my $period = 2;

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

my $prefix = new_prefix('salt');
write_conf($prefix, port => $port,
    http => "engagement_salt_rotate ${period}s;",
    server => <<'EOC');
    location = /engagement/view { engagement view; }
    location = /client/view { engagement view; engagement_dedupe_key client; }
EOC
my $pid = start_nginx($prefix, $port);
ok($pid, 'nginx started') or diag(slurp("$prefix/logs/stderr.log"));

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
nginx_signal($pid, 'HUP');
sleep(0.5);
like(view('h', 'b', '/client/view'), qr/^200 .*"reason":"duplicate"/,
     'its repeat after the reload is a duplicate');

stop_nginx($pid);
my $log = slurp("$prefix/logs/error.log") . slurp("$prefix/logs/stderr.log");
unlike($log, qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/,
       'no alert, crash or sanitizer report');

done_testing();
