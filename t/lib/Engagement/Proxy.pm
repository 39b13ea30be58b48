package Engagement::Proxy;

# A small TCP proxy of our own for fault tests: forwards between nginx and
# a real redis-server, and on request cuts a connection right after Redis
# has answered a flush command, so nginx never sees the reply; or delays
# every answer by a few milliseconds. Runs in a forked child; controlled
# through a file it re-reads for every command.

use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use POSIX qw(_exit);

# start(listen_port, redis_port, control_file[, delay_ms[, cut_re]]) -> pid
# cut_re: the commands that may be cut (default: a flush round's, eng:b:)
sub start {
    my ($lport, $rport, $ctl, $delay, $cut_re) = @_;
    my $srv = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$lport", Listen => 16,
                                    ReuseAddr => 1) or die "proxy listen: $!";
    my $pid = fork() // die;
    if ($pid) { close $srv; return $pid }

    # not the test's handlers (a test runner's would stop its nginx)
    $SIG{$_} = 'DEFAULT' for qw(TERM INT HUP PIPE QUIT);
    $SIG{CHLD} = 'IGNORE';
    while (my $c = $srv->accept) {
        my $kid = fork();
        if (!defined $kid || $kid) { close $c; next }
        close $srv;
        my $r = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$rport") or _exit(0);
        _serve($c, $r, $ctl, $delay, $cut_re);
        _exit(0);
    }
    _exit(0);
}

sub _cuts_left {
    my ($ctl) = @_;
    open my $fh, '<', $ctl or return 0;
    my $n = <$fh> // 0;
    close $fh;
    return $n + 0;
}

sub _take_cut {
    my ($ctl) = @_;
    my $n = _cuts_left($ctl);
    return 0 unless $n > 0;
    open my $fh, '>', $ctl or return 0;
    print $fh $n - 1;
    close $fh;
    return 1;
}

sub _serve {
    my ($c, $r, $ctl, $delay, $cut_re) = @_;
    $cut_re //= qr/\neng:b:[0-9a-f]+:\d+\r\n/;
    my $sel = IO::Select->new($c, $r);
    my $cut = 0;
    while (my @ready = $sel->can_read(30)) {
        for my $fh (@ready) {
            my $buf;
            my $n = sysread($fh, $buf, 65536);
            return unless $n;
            if ($fh == $c) {
                # a flush command (it names a round's batch key) may be cut
                $cut = 1 if $buf =~ $cut_re && _take_cut($ctl);
                syswrite($r, $buf);
            } else {
                if ($cut) {
                    # Redis has applied the flush; nginx will never know
                    close $c;
                    close $r;
                    return;
                }
                select(undef, undef, undef, $delay / 1000) if $delay;
                syswrite($c, $buf);
            }
        }
    }
}

1;
