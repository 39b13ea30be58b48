package Engagement::ClickHouse;

# ClickHouse for the writer tests (t/110-writer.t, t/160-writer-faults.t):
# Debian's clickhouse-server 18.16, ours on free loopback ports with its
# own config and data directory, started and stopped by PID; the schema
# loaded as the README says (conf-examples/clickhouse/load-schema.sh); and
# our fault server in front of it, whose mode is re-read per request from
# a control file:
#   pass      ClickHouse's answer as it is
#   500       a 500 answer, ClickHouse not asked
#   hang      no answer for 3 s, then the connection closed
#   cut       ClickHouse takes the batch; the answer is cut after 60 bytes
#   slow S    ClickHouse takes the batch at once; its answer comes S s later
# Call ch_setup(port => P, dir => D, fault_port => F, ctl => FILE) first;
# keep_alive => 1 drops ClickHouse's Connection header from the answers
# the fault server passes on, so nginx may keep its connection.

use strict;
use warnings;
use Exporter 'import';
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use POSIX qw(_exit);
use Test::More ();
use Time::HiRes qw(sleep time);
use Engagement::Test qw(http_request slurp root_dir);

our @EXPORT = qw(ch_bin ch_setup ch_start ch_stop ch ch_schema ch_truncate
                 fault_start fault_mode fault_stop);

my %C;

sub ch_bin {
    for my $b ('/usr/bin/clickhouse-server', '/usr/sbin/clickhouse-server') {
        return $b if -x $b;
    }
    return undef;
}

sub ch_setup { %C = @_ }

sub ch_start {
    my (%o) = @_;
    my ($chp, $chdir) = @C{qw(port dir)};
    remove_tree($chdir) if $o{fresh};
    make_path("$chdir/data", "$chdir/tmp");
    open my $fh, '>', "$chdir/config.xml" or die $!;
    print $fh <<"EOX";
<yandex>
  <logger><level>warning</level><log>$chdir/ch.log</log>
    <errorlog>$chdir/ch.err</errorlog><console>0</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$chp</http_port>
  <tcp_port>@{[ $chp + 1 ]}</tcp_port>
  <path>$chdir/data/</path>
  <tmp_path>$chdir/tmp/</tmp_path>
  <mark_cache_size>5368709</mark_cache_size>
  <uncompressed_cache_size>5368709</uncompressed_cache_size>
  <max_concurrent_queries>20</max_concurrent_queries>
  <timezone>UTC</timezone>
  <users><default><password></password>
    <networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <profiles><default></default></profiles>
  <quotas><default></default></quotas>
</yandex>
EOX
    close $fh;
    my $pid = fork() // die;
    if ($pid == 0) {
        open STDOUT, '>>', "$chdir/stdout.log";
        open STDERR, '>>', "$chdir/stdout.log";
        exec ch_bin(), "--config-file=$chdir/config.xml";
        exit 127;
    }
    Engagement::Test::_started($pid);
    for (1 .. 500) {
        my ($st, $b) = http_request($chp, 'GET', '/?query=SELECT%201');
        return $pid if $st && $st == 200;
        sleep 0.02;
    }
    Test::More::diag(slurp("$chdir/stdout.log") . slurp("$chdir/ch.err"));
    return $pid;
}

sub ch_stop {
    my ($pid) = @_;
    return unless $pid;
    Engagement::Test::_stopped($pid);
    kill 'TERM', $pid;
    my $deadline = time + 10;
    while (time < $deadline) {
        return if waitpid($pid, POSIX::WNOHANG()) == $pid;
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

# a query over HTTP/1.0: ClickHouse answers without chunks
sub ch {
    my ($sql) = @_;
    my $chp = $C{port};
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$chp", Timeout => 10)
        or die "clickhouse: $!";
    print $s "POST / HTTP/1.0\r\nContent-Length: " . length($sql)
             . "\r\n\r\n$sql";
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($head, $b) = split /\r\n\r\n/, $resp, 2;
    die "clickhouse: $resp ($sql)" unless $head =~ m{^HTTP/1\.\d 200};
    $b =~ s/\s+\z//;
    return $b;
}

# the schema goes in as the README says: conf-examples/clickhouse/load-schema.sh
sub ch_schema {
    my $out = `sh ${\ root_dir()}/conf-examples/clickhouse/load-schema.sh http://127.0.0.1:$C{port}/ 2>&1`;
    die "load-schema.sh failed: $out" if $?;
    $out =~ /(\d+) statements applied/ or die "load-schema.sh: $out";
    return $1;
}

sub ch_truncate {
    for my $t (qw(events views_minute views_hour views_day batches)) {
        ch("TRUNCATE TABLE eng.$t");
    }
}

# -- our fault server in front of ClickHouse ---------------------------------

sub fault_start {
    my $srv = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$C{fault_port}",
                                    Listen => 16, ReuseAddr => 1)
        or die "fault server: $!";
    my $pid = fork() // die;
    if ($pid) { close $srv; Engagement::Test::_started($pid); return $pid }
    $SIG{$_} = 'DEFAULT' for qw(INT HUP PIPE QUIT);
    $SIG{CHLD} = 'IGNORE';
    $SIG{TERM} = sub { _exit(0) };
    while (1) {
        my $c = $srv->accept or next;
        my $kid = fork();
        if (!defined $kid || $kid) { close $c; next }
        close $srv;
        _fault_serve($c);
        _exit(0);
    }
}

sub fault_stop {
    my ($pid) = @_;
    return unless $pid;
    kill 'TERM', $pid;
    waitpid($pid, 0);
    Engagement::Test::_stopped($pid);
}

sub _read_request {
    my ($c) = @_;
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) {
        my $n = sysread($c, $buf, 65536, length $buf);
        return undef unless $n;
    }
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
    $len //= 0;
    while (length($body) < $len) {
        my $n = sysread($c, $body, 65536, length $body);
        return undef unless $n;
    }
    return ($head, $body);
}

sub _fault_serve {
    my ($c) = @_;
    while (1) {
        my ($head, $body) = _read_request($c);
        return unless defined $head;
        my $mode = slurp($C{ctl}) || 'pass';
        my ($delay) = $mode =~ /^\s*slow\s+([\d.]+)/;
        $mode =~ s/\s+//g;
        if ($mode eq '500') {
            syswrite($c, "HTTP/1.1 500 Internal Server Error\r\n"
                         . "Content-Length: 6\r\n\r\nbroken");
            next;
        }
        if ($mode eq 'hang') {
            sleep 3;
            return;
        }
        # pass, cut and slow: ClickHouse takes the batch
        $head =~ s/^Connection:[^\r\n]*/Connection: close/mi;
        my $u = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$C{port}")
            or return;
        syswrite($u, "$head\r\n\r\n$body");
        my $resp = '';
        1 while sysread($u, $resp, 65536, length $resp);
        close $u;
        if ($mode eq 'cut') {
            # ClickHouse inserted; nginx never sees the end of the answer
            syswrite($c, substr($resp, 0, 60));
            return;
        }
        # (the length of the fault, not a wait)
        sleep $delay if $delay;
        $resp =~ s/^Connection:[^\r\n]*\r\n//mi if $C{keep_alive};
        syswrite($c, $resp);
        # persist: the connection stays open for the next request, as a
        # keep-alive upstream's does (else it is closed after one answer)
        return unless $C{persist};
    }
}

sub fault_mode {
    open my $fh, '>', $C{ctl} or die $!;
    print $fh $_[0];
    close $fh;
}

1;
