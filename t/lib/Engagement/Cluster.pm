package Engagement::Cluster;
# A Redis Cluster of real redis-server processes for the tests: six nodes
# (3 masters, 3 replicas, cluster-node-timeout 1000 ms,
# cluster-require-full-coverage no) on free loopback ports whose cluster
# bus ports (port + 10000) are free too, made with redis-cli --cluster
# create. Each node is our child, its data in a private scratch
# directory, stopped by pid (cnode_kill, and cluster_stop at the end).
#
#   use Engagement::Cluster;
#   cluster_create('name', 300);       # ports from free_ports(300, 50, 6)
#   ... $ENV{TEST_NGINX_CLUSTER} holds two seeds "127.0.0.1:p1 127.0.0.1:p2"
#   END { cluster_stop() }
use strict;
use warnings;
use Exporter 'import';
use Time::HiRes qw(sleep time);
use Engagement::Test qw(free_ports scratch_dir redis_cli slurp);

our @EXPORT = qw(@cports %cpid %cdir cnode_start cnode_kill ccli alive masters
                 cluster_ok cluster_create cluster_stop);

our (@cports, %cpid, %cdir);
my $name = 'cluster';

sub cnode_start {
    my ($p) = @_;
    my $dir = $cdir{$p} //= scratch_dir("$name-$p");
    my $pid = fork() // die;
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        chdir $dir;
        exec 'redis-server', '--port', $p, '--bind', '127.0.0.1',
            '--dir', $dir, '--daemonize', 'no', '--save', '',
            '--appendonly', 'no', '--cluster-enabled', 'yes',
            '--cluster-config-file', "$dir/nodes.conf",
            '--cluster-node-timeout', '1000',
            '--cluster-require-full-coverage', 'no', '--logfile', "$dir/redis.log";
        exit 127;
    }
    $cpid{$p} = $pid;
    for (1 .. 250) {
        last if redis_cli($p, undef, 'PING') eq 'PONG';
        sleep 0.02;
    }
    return $pid;
}

# stop a node by its pid (SIGTERM unless told)
sub cnode_kill {
    my ($p, $sig) = @_;
    my $pid = delete $cpid{$p} or return;
    kill $sig // 'TERM', $pid;
    waitpid($pid, 0);
}

# a command to the cluster, following redirects
sub ccli {
    my ($p, @cmd) = @_;
    open(my $fh, '-|', 'redis-cli', '-c', '-p', $p, @cmd) or return '';
    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/\s+\z//;
    return $out;
}

# a live node to ask
sub alive { (grep { $cpid{$_} } @cports)[0] }

# (id => port) of the masters not failed, by CLUSTER NODES
sub masters {
    my %m;
    for (split /\n/, redis_cli(alive(), undef, 'CLUSTER', 'NODES')) {
        my ($id, $addr, $flags) = split / /;
        next unless $flags =~ /master/ && $flags !~ /fail/;
        my ($mp) = $addr =~ /:(\d+)/;
        $m{$id} = $mp;
    }
    return %m;
}

sub cluster_ok {
    my @alive = grep { $cpid{$_} } @cports;
    return !grep { redis_cli($_, undef, 'CLUSTER', 'INFO') !~ /cluster_state:ok/ } @alive;
}

# six nodes made into a cluster, every master's replica in sync;
# $ENV{TEST_NGINX_CLUSTER} gets two of them as seeds
sub cluster_create {
    my ($n, $offset) = @_;
    $name = $n;
    my $base;
    for (1 .. 50) {
        $base = free_ports($offset, 50, 6);
        last unless grep { !Engagement::Test::_bindable($base + 10000 + $_) } 0 .. 5;
    }
    @cports = map { $base + $_ } 0 .. 5;
    cnode_start($_) for @cports;
    my $out = `redis-cli --cluster create @{[ map { "127.0.0.1:$_" } @cports ]} --cluster-replicas 1 --cluster-yes 2>&1`;
    unless ($out =~ /All 16384 slots covered/) {
        my $logs = join "\n", map { "$_: " . slurp("$cdir{$_}/redis.log") } @cports;
        cluster_stop();
        die "cluster create failed: $out\n$logs";
    }
    my $t0 = time;
    sleep 0.1 until cluster_ok() || time - $t0 > 15;
    # and every master's replica in sync (WAIT counts only those)
    sleep 0.1 until time - $t0 > 20
        || 3 == grep { redis_cli($_, undef, 'INFO', 'replication') =~ /^slave0:.*state=online/m } @cports;
    $ENV{TEST_NGINX_CLUSTER} = join ' ', map { "127.0.0.1:$_" } @cports[0, 1];
    return @cports;
}

sub cluster_stop { cnode_kill($_) for keys %cpid }

1;
