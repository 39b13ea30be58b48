# Review of issue 13 (the per-worker salt copy): salt.c ratchets the salt
# whenever the zone's period differs from the caller's ("sh->period !=
# period"), backwards too. A worker whose first salt fetch of a period P
# runs with its cached time still in P after another worker has rotated
# to P + 1 (its time cache lags: it was busy, or, here, held by gdb)
# rotates the zone again, and again at P + 1; the first worker's copy of
# P + 1 is never refreshed. For the whole period the two workers hash
# identities with different salts: one viewer's repeat counts once on
# each worker. Before the copy, every request re-read the zone, and the
# workers came back to one salt within a few requests.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

our $port = nginx_port();
our $rport = free_ports(300, 50, 1);
our $R = 4;    # the rotation, s

master_on();
workers(2);
log_level('warn');
no_shuffle();
timeout(60);
add_response_body_check(post_check_hook());

# (worker pid, 'counted' or the reason) of one event on the reuseport
# listener, undef when no answer within $wait s
sub rs_post {
    my ($json, $wait) = @_;
    my $resp = '';
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        Time::HiRes::alarm($wait // 3);
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$rport",
                                      Timeout => 2) or die "connect\n";
        print $s "POST /engagement/view HTTP/1.1\r\nHost: localhost\r\n"
                 . "Connection: close\r\nContent-Type: application/json\r\n"
                 . "Content-Length: " . length($json) . "\r\n\r\n$json";
        local $/;
        $resp = <$s> // '';
        Time::HiRes::alarm(0);
    };
    Time::HiRes::alarm(0);
    return undef unless $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($pid) = $resp =~ /^X-Pid: (\d+)/mi;
    return [ $pid, ($resp =~ /"counted":true/ ? 'counted'
                    : $resp =~ /"reason":"(\w+)"/ ? $1 : "status $1") ];
}

# sleeps until $at s into the current rotation period
sub sleep_into {
    my ($at) = @_;
    my $t = time;
    my $in = $t - $R * int($t / $R);
    sleep(($at - $in) + ($in > $at ? $R : 0));
}

run_tests();

__DATA__

=== TEST 1: two workers keep one salt across a rotation, whichever fetched it first
--- http_config eval
"engagement_salt_rotate ${main::R}s;
server {
    listen 127.0.0.1:$main::rport reuseport;
    location = /engagement/view {
        engagement view;
        add_header X-Pid \$pid always;
    }
    location /engagement/summary { engagement summary; }
}"
--- config
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    SKIP: {
        skip "no gdb", 4 unless have_gdb();
        my $dir = scratch_dir('gdb');
        my ($w1, $w2) = worker_pids();
        # w1 stops at its first salt fetch and is held there across the
        # period's end
        my $gdb = gdb_at($w1, "$dir/salt.out",
                         [ 'ngx_http_engagement_salt_get' ],
                         'shell sleep ' . ($R + 0.6), 'delete', 'detach');
        sleep_into(0.2);
        my $held = 0;
        for my $i (1 .. 40) {
            my $a = rs_post(qq({"contentId":"p","sessionId":"p$i","durationMs":40000}), 0.3);
            if (!defined $a) { $held = 1; last }
        }
        ok($held, 'a request of period P is held in w1 at its salt fetch');
        # the next period: w2 rotates
        sleep_into(0.3);
        my $w2seen = 0;
        for my $i (1 .. 40) {
            my $a = rs_post(qq({"contentId":"q","sessionId":"q$i","durationMs":40000}), 0.3);
            if (defined $a && $a->[0] == $w2) { $w2seen = 1; last }
        }
        ok($w2seen, 'w2 counted in period P + 1 while w1 was held');
        gdb_wait($gdb, 30);
        # both workers, still in P + 1: one viewer's view, again and again
        my (%by, $counted);
        for my $i (1 .. 30) {
            my $a = rs_post(qq({"contentId":"dz","sessionId":"same","durationMs":40000}));
            next unless defined $a;
            $by{$a->[0]}++;
            $counted++ if $a->[1] eq 'counted';
        }
        diag('answered by ' . join(', ', map { "$_: $by{$_}" } sort keys %by)
             . ' (w1 ' . $w1 . ', w2 ' . $w2 . ')');
        ok(keys(%by) == 2, 'both workers answered the repeats');
        is($counted, 1, 'one viewer\'s view counts once, whichever worker answers');
    }
