#!/usr/bin/perl
# The live stream's fan-out cost: opens N subscribers (10 contents) on a
# running nginx, then measures the workers' CPU time (utime + stime from
# /proc) over 10 s with nothing changing, and over 10 s in which every
# content gets a view each second (so every subscriber gets an event each
# second). Usage:
#   perl bench/live-fanout.pl N PORT WORKER_PID...
# with a configuration that has `engagement view` at /engagement/view and
# `engagement live` at /engagement/live (see conf-examples/live.conf), and
# `ulimit -n` and worker_connections above N.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

my ($n, $port, @pids) = @ARGV;
die "usage: $0 N PORT WORKER_PID...\n" unless $n && $port && @pids;

sub cpu {
    my $t = 0;
    for my $p (@pids) {
        open my $f, '<', "/proc/$p/stat" or next;
        my @s = split ' ', scalar <$f>;
        $t += $s[13] + $s[14];
    }
    return $t / 100;
}

sub post {
    my ($json) = @_;
    my $s = IO::Socket::INET->new("127.0.0.1:$port") or die "connect: $!";
    print $s "POST /engagement/view HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           . "Content-Type: application/json\r\nContent-Length: " . length($json)
           . "\r\n\r\n$json";
    local $/;
    <$s>;
}

my @socks;
for my $i (1 .. $n) {
    my $s = IO::Socket::INET->new("127.0.0.1:$port") or die "subscriber $i: $!";
    print $s "GET /engagement/live/c" . ($i % 10) . " HTTP/1.1\r\nHost: x\r\n\r\n";
    push @socks, $s;
}
my $sel = IO::Select->new(@socks);

# reads every stream for $secs; the number of events read
sub drain {
    my ($secs) = @_;
    my $end = time + $secs;
    my $events = 0;
    while (time < $end) {
        for my $s ($sel->can_read(0.05)) {
            sysread($s, my $b, 65536) or next;
            $events += () = $b =~ /data: /g;
        }
    }
    return $events;
}

drain(2);    # the first events
my $c0 = cpu();
my $e = drain(10);
printf "idle: %d subscribers, 10 s: %.2f s of the workers' CPU, %d events\n",
       $n, cpu() - $c0, $e;

$c0 = cpu();
$e = 0;
for my $k (1 .. 10) {
    post(qq({"contentId":"c$_","sessionId":"bench-$$-$k"})) for 0 .. 9;
    $e += drain(1);
}
my $c = cpu() - $c0;
printf "busy: every content changes each second, 10 s: %.2f s of the workers' "
       . "CPU, %d events (%.1f us per event, the 100 views included)\n",
       $c, $e, 1e6 * $c / ($e || 1);
