# Guards rate limit zones over `nginx -s reload` (HUP): a zone of the same
# name and size keeps its buckets (a limited client stays limited), a
# resized one starts empty, and nothing alerts or crashes on the way.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Engagement::Test;
use Time::HiRes qw(sleep);

my $port = free_port();

my $loc = <<'EOC';
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m;
    }
EOC

sub http { my ($size) = @_; return "engagement_limit_zone per_ip:$size;" }

sub reload {
    my ($prefix, $pid, $size, $probe) = @_;
    write_conf($prefix, port => $port, http => http($size),
               server => $loc . "    location = /$probe { return 200; }\n");
    kill 'HUP', $pid;
    for (1 .. 250) {
        my ($st) = http_request($port, 'GET', "/$probe");
        return 1 if $st == 200;
        sleep 0.02;
    }
    return 0;
}

# an old worker may answer for a moment after a HUP: ask until new ones do
sub view_status {
    my ($session, $want) = @_;
    my $st;
    for (1 .. 40) {
        ($st) = post_view($port, qq({"contentId":"rl","sessionId":"$session"}));
        return $st if $st == $want;
        sleep 0.05;
    }
    return $st;
}

my $prefix = new_prefix('limit-reload');
write_conf($prefix, port => $port, http => http('1m'), server => $loc);
my $pid = start_nginx($prefix, $port);
ok($pid, 'nginx started') or BAIL_OUT(slurp("$prefix/logs/error.log"));

my ($st) = post_view($port, q({"contentId":"rl","sessionId":"s1"}));
is($st, 202, 'the first view passes');
($st) = post_view($port, q({"contentId":"rl","sessionId":"s2"}));
is($st, 429, 'the second is limited');

ok(reload($prefix, $pid, '1m', 'a'), 'a reload with the same zone serves');
($st) = post_view($port, q({"contentId":"rl","sessionId":"s3"}));
is($st, 429, 'the bucket survived the reload: still limited');

ok(reload($prefix, $pid, '2m', 'b'), 'a reload that resizes the zone serves');
is(view_status('s4', 202), 202, 'a resized zone starts empty: the view passes');
($st) = post_view($port, q({"contentId":"rl","sessionId":"s5"}));
is($st, 429, 'and the new zone limits again');

is(stop_nginx($pid), 0, 'nginx stops cleanly');
my $log = slurp("$prefix/logs/error.log") . slurp("$prefix/logs/stderr.log");
unlike($log, qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/,
       'no alert, crash or sanitizer report over the reloads');

done_testing();
