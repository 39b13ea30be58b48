package Engagement::Test;

# Helpers for the suite's tests: talk HTTP/1.1 over raw sockets, run
# redis-server (and other servers) as our own children on free loopback
# ports with their data in private temporary directories (never in the
# runner's servroot), wait on conditions instead of sleeping, and find,
# signal and wait for the nginx that Test::Nginx::Socket started for a
# block (its pid file, its workers, its error log). The older helpers that
# start a private nginx (new_prefix, write_conf, start_nginx) stay for the
# files that still use them.
#
# A Test::Nginx::Socket file finds this with
#     BEGIN { push @INC, "$FindBin::Bin/lib" }
# (appended, so that the Test::Nginx::Socket found first stays the one in
# use: t/lib's bundled runner under `prove -I t/lib`, the real one under
# `prove -I <test-nginx>/lib`), and loads it before the runner, so that
# our END (which stops the servers we started) runs after the runner's
# END has stopped nginx.

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Path qw(make_path remove_tree);
use File::Temp ();
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use Exporter 'import';

our @EXPORT = qw(nginx_bin module_path root_dir new_prefix write_conf free_ports
                 start_nginx stop_nginx nginx_signal http_request post_view
                 wait_for_port free_port slurp reap_children
                 scratch_dir wait_until nginx_port servroot master_pid
                 worker_pids wait_workers reload_nginx error_log_text
                 status_text status_metric post_check_hook gdb_at gdb_wait port_listening log_is_clean
                 view_attempt
                 have_gdb);

# a child subreaper: nginx's orphans come back to us, not to a slow PID 1
syscall(157, 36, 1, 0, 0, 0) if $^O eq 'linux';

# every server this process started, stopped at exit even when a test dies,
# so that nothing outlives the test or holds prove's pipe open
my %Started;
END {
    my $st = $?;
    my @pids = grep { $Started{$_} == $$ && kill(0, $_) } keys %Started;
    kill 'TERM', @pids if @pids;
    my $deadline = time + 3;
    while (@pids && time < $deadline) {
        @pids = grep { waitpid($_, WNOHANG) != $_ } @pids;
        sleep 0.02 if @pids;
    }
    kill 'KILL', @pids if @pids;
    waitpid($_, 0) for @pids;
    $? = $st;
}
# a test stopped by a signal still stops its servers
$SIG{TERM} = $SIG{INT} = sub { exit 1 };
sub _started { $Started{$_[0]} = $$ }
sub _stopped { delete $Started{$_[0]} }

sub root_dir { $ENV{ENGAGEMENT_ROOT} // abs_path(__FILE__ . '/../../../..') }

sub nginx_bin { $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx' }

sub module_path {
    my ($m) = split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} // '');
    return $m // root_dir() . '/build/ngx_http_engagement_module.so';
}

# Is anybody listening on TCP $port (any address)? Reads /proc/net/tcp{,6},
# so probing makes no connection.
sub port_listening {
    my ($port) = @_;
    my $hex = sprintf '%04X', $port;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        while (my $line = <$fh>) {
            my @f = split ' ', $line;
            return 1 if @f > 3 && $f[3] eq '0A' && $f[1] =~ /:\Q$hex\E\z/;
        }
    }
    return 0;
}

sub _bindable {
    my ($p) = @_;
    return 0 if port_listening($p);
    my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$p",
                                  Listen => 1, ReuseAddr => 1) or return 0;
    close $s;
    return 1;
}

# $count consecutive ports, the first at TEST_NGINX_PORT + $offset +
# $count * k (k random below $slots), that nobody listens on and that can be
# bound now (CI once found a port of this suite taken by another process)
sub free_ports {
    my ($offset, $slots, $count) = @_;
    my $base = $ENV{TEST_NGINX_PORT} // 1984;
    for (1 .. 20 * $slots) {
        my $p = $base + $offset + $count * int(rand($slots));
        return $p unless grep { !_bindable($p + $_) } 0 .. $count - 1;
    }
    die "no free port from " . ($base + $offset) . "\n";
}

# one port for a test's nginx (TEST_NGINX_PORT + 10..59)
sub free_port { free_ports(10, 50, 1) }

# a private nginx prefix, outside servroot (see scratch_dir)
sub new_prefix {
    my ($name) = @_;
    my $dir = scratch_dir() . "/nginx-$name";
    remove_tree($dir);
    make_path("$dir/conf", "$dir/logs", "$dir/temp", "$dir/html", "$dir/modules");
    symlink(module_path(), "$dir/modules/ngx_http_engagement_module.so");
    return $dir;
}

# the usual frame around a test's http{} content
sub write_conf {
    my ($prefix, %o) = @_;
    my $port = $o{port} or die "port";
    my $user = $> == 0 ? "user root root;\n" : "";
    my $workers = $o{workers} // 1;
    my $conf = <<"EOC";
load_module modules/ngx_http_engagement_module.so;
$user
worker_processes $workers;
daemon off;
master_process on;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 1024; accept_mutex off; }
http {
    access_log off;
    client_body_temp_path temp/body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
    @{[ $o{http} // "" ]}
    server {
        listen 127.0.0.1:$port;
        @{[ $o{server} // "" ]}
    }
}
EOC
    open my $fh, '>', "$prefix/conf/nginx.conf" or die $!;
    print $fh $conf;
    close $fh;
    return "$prefix/conf/nginx.conf";
}

sub _env_for_child {
    if ($ENV{TEST_NGINX_PRELOAD}) {
        $ENV{LD_PRELOAD} = $ENV{TEST_NGINX_PRELOAD};
    }
}

# starts nginx in the foreground; returns its pid once the port answers
sub start_nginx {
    my ($prefix, $port) = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$prefix/logs/stderr.log";
        open STDERR, '>>', "$prefix/logs/stderr.log";
        _env_for_child();
        exec nginx_bin(), '-p', "$prefix/", '-c', "$prefix/conf/nginx.conf";
        exit 127;
    }
    _started($pid);
    # up means: this master wrote its pid file (nginx does that after it
    # opened its listening sockets) and the port answers; a port answered
    # by somebody else does not count
    my $deadline = time + ($ENV{TEST_NGINX_ASAN} ? 20 : 5);
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            return undef;
        }
        my $pf = _pid_in("$prefix/logs/nginx.pid");
        return $pid if $pf && $pf == $pid && wait_for_port($port, 0);
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    return undef;
}

sub _pid_in {
    my ($f) = @_;
    open my $fh, '<', $f or return 0;
    my $l = <$fh> // '';
    return $l =~ /^(\d+)/ ? $1 : 0;
}

sub wait_for_port {
    my ($port, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    do {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 1);
        if ($s) { close $s; return 1 }
        sleep 0.02 if $timeout;
    } while (time < $deadline);
    return 0;
}

sub nginx_signal {
    my ($pid, $sig) = @_;
    kill $sig, $pid;
}

# graceful stop; returns the exit status
sub stop_nginx {
    my ($pid) = @_;
    return unless $pid;
    _stopped($pid);
    kill 'QUIT', $pid;
    my $deadline = time + ($ENV{TEST_NGINX_ASAN} ? 20 : 10);
    while (time < $deadline) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) { my $st = $?; reap_children(); return $st }
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    reap_children();
    return -1;
}

sub reap_children { 1 while waitpid(-1, WNOHANG) > 0 }

# --- for Test::Nginx::Socket-format files ----------------------------------

# a private directory outside servroot (the real runner refuses to remove
# a servroot holding files it did not make), removed at exit
my $Scratch;
sub scratch_dir {
    my ($name) = @_;
    $Scratch //= File::Temp::tempdir('engagement-test-XXXXXX', TMPDIR => 1,
                                     CLEANUP => 1);
    return $Scratch unless defined $name;
    make_path("$Scratch/$name");
    return "$Scratch/$name";
}

# polls $cond until it returns true or $secs pass (longer under a
# sanitizer); returns the last value of $cond
sub wait_until(&;$) {
    my ($cond, $secs) = @_;
    $secs = ($secs // 10) * ($ENV{TEST_NGINX_ASAN} ? 3 : 1);
    my $deadline = time + $secs;
    while (1) {
        my $v = $cond->();
        return $v if $v || time >= $deadline;
        sleep 0.02;
    }
}

# the runner's port and server root (both runners: TEST_NGINX_PORT, and
# TEST_NGINX_SERVROOT or t/servroot under the current directory)
sub nginx_port {
    return $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
}

sub servroot {
    my $r = main->can('server_root');
    return $r ? $r->() : abs_path($ENV{TEST_NGINX_SERVROOT} // 't/servroot');
}

sub error_log_text { slurp(servroot() . '/logs/error.log') }

# the master of the block's nginx (its pid file) and its workers
sub master_pid { _pid_in(servroot() . '/logs/nginx.pid') }

sub worker_pids {
    my ($m) = @_;
    $m //= master_pid() or return ();
    return grep { /^\d+$/ } split /\s+/,
        slurp("/proc/$m/task/$m/children");
}

# waits until the master has $n workers, none of them in @old
sub wait_workers {
    my ($n, @old) = @_;
    my %old = map { $_ => 1 } @old;
    return wait_until {
        my @w = worker_pids();
        @w == $n && !grep { $old{$_} } @w;
    } 10;
}

# a reload (SIGHUP): done when $n new workers serve and the old ones are gone
sub reload_nginx {
    my ($n) = @_;
    my @old = worker_pids();
    kill 'HUP', master_pid();
    return wait_workers($n, @old);
}

sub status_text { (http_request(nginx_port(), 'GET', '/status'))[1] }

# one figure of the text status, undef when absent
sub status_metric {
    my ($name) = @_;
    my $t = status_text();
    return $t =~ /^\Q$name\E (\S+)$/m ? $1 : undef;
}

# A response check for add_response_body_check: a block's "--- post_check"
# section is Perl (Test::More checks, fault steps) run in package main
# after the block's last response. Both runners call the check with the
# block and the request index.
sub post_check_hook {
    return sub {
        my ($block, $body, $i) = @_;
        my $code = _section($block, 'post_check');
        return unless defined $code;
        my $n = _section($block, 'request');
        my $reqs = ref $n eq 'ARRAY' ? scalar @$n : 1;
        return unless ($i // 0) == $reqs - 1;
        local $main::Body = $body;
        my $ok = eval "package main; no strict; no warnings 'once'; $code; 1";
        Test::More::ok(0, $block->name . " - post_check ran")
            or Test::More::diag($@) unless $ok;
    };
}

sub _section {
    my ($block, $name) = @_;
    my $v = $block->{$name};
    return ref $v eq 'ARRAY' ? $v->[0] : $v;
}

# one request on its own connection: (status, body, headers hashref)
sub http_request {
    my ($port, $method, $uri, $body, %h) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 5)
        or return (0, "connect: $!", {});
    my $req = "$method $uri HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    $req .= "$_: $h{$_}\r\n" for sort keys %h;
    if (defined $body) {
        $req .= "Content-Length: " . length($body) . "\r\n";
    }
    $req .= "\r\n" . ($body // '');
    print $s $req;
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($head, $rb) = split /\r\n\r\n/, $resp, 2;
    return (0, $resp, {}) unless defined $head;
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    my %hdr;
    for (split /\r\n/, $head) { $hdr{lc $1} = $2 if /^([^:]+):\s*(.*)$/ }
    return ($status // 0, $rb // '', \%hdr);
}

sub post_view {
    my ($port, $json, $uri) = @_;
    return http_request($port, 'POST', $uri // '/engagement/view', $json,
                        'Content-Type' => 'application/json');
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    local $/;
    my $c = <$fh>;
    return $c;
}

1;

package Engagement::Test;

# the redis-server this process runs on $port
our %RedisPid;
sub redis_pid { $RedisPid{$_[0]} }

# a private redis-server on its own port and directory, in the foreground
sub start_redis {
    my ($port, %o) = @_;
    my $dir = $o{dir} // scratch_dir("redis-$port");
    File::Path::remove_tree($dir) unless $o{keep};
    File::Path::make_path($dir);
    # an append-only file, so that data survives a stop and start
    my @args = ('--port', $port, '--bind', '127.0.0.1', '--dir', $dir,
                '--daemonize', 'no', '--save', '', '--appendonly', 'yes',
                '--appendfsync', 'always', '--logfile', "$dir/redis.log");
    push @args, '--requirepass', $o{password} if $o{password};
    my $pid = fork() // die;
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        exec 'redis-server', @args;
        exit 127;
    }
    _started($pid);
    $RedisPid{$port} = $pid;
    for (1 .. 250) {
        return $pid if redis_cli($port, $o{password}, 'PING') =~ /PONG|NOAUTH/;
        Time::HiRes::sleep(0.02);
    }
    return $pid;
}

sub stop_redis {
    my ($pid) = @_;
    return unless $pid;
    # only a redis-server this test started: never a pid by mistake
    # (a port number, say)
    unless (grep { $_ == $pid } values %RedisPid) {
        warn "stop_redis: $pid is no redis-server of this test: not stopped\n";
        return;
    }
    _stopped($pid);
    delete $RedisPid{$_} for grep { $RedisPid{$_} == $pid } keys %RedisPid;
    kill 'TERM', $pid;
    # one a test stopped (SIGSTOP) and did not go on acts on TERM only now
    kill 'CONT', $pid;
    waitpid($pid, 0);
}

# one command through redis-cli; returns its raw output
sub redis_cli {
    my ($port, $password, @cmd) = @_;
    my @a = ('sh', '-c', 'exec redis-cli "$@" 2>/dev/null', 'redis-cli',
             '-p', $port, '--no-auth-warning');
    push @a, '-a', $password if $password;
    open(my $fh, '-|', @a, @cmd) or return '';   # stderr is the test's
    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/\s+\z//;
    return $out;
}

push @EXPORT, qw(start_redis stop_redis redis_cli redis_pid);

# --- dedupe and flood tests (t/150, t/151): dd_ helpers -------------------

# an http block's lines for a counters zone flushed to the Redis on $port
sub dd_redis_http {
    my ($port, $size, $edge) = @_;
    return join "\n", "engagement_zone engagement:$size;",
        'engagement_dedupe_zone engagement_dedupe:1m;',
        "engagement_redis 127.0.0.1:$port timeout=500ms connect_timeout=500ms"
        . ' backoff=50ms:400ms;',
        'engagement_flush_interval 100ms;', "engagement_edge_id $edge;", '';
}

# waits until the zone "engagement" has nothing pending or in flight
sub dd_flushed {
    my ($secs) = @_;
    return wait_until {
        my $t = status_text();
        $t =~ /^nginx_engagement_pending_contents\{zone="engagement"\} 0$/m
            && $t =~ /^nginx_engagement_inflight_contents\{zone="engagement"\} 0$/m;
    } $secs // 15;
}

push @EXPORT, qw(dd_redis_http dd_flushed);

# --- flush tests (t/142): flush_ helpers ---------------------------------

# a library for LD_PRELOAD that moves gettimeofday(), where nginx reads the
# wall clock for its cached time, $secs ahead; its monotonic clock (timers)
# is left alone
sub flush_wallclock_shim {
    my ($secs) = @_;
    my $dir = scratch_dir('wallclock');
    open my $fh, '>', "$dir/wallclock.c" or die $!;
    print $fh "#define _GNU_SOURCE\n#include <sys/syscall.h>\n"
        . "#include <sys/time.h>\n#include <unistd.h>\n"
        # a system call, not dlsym: a sanitizer's runtime may call it first
        . "int gettimeofday(struct timeval *tv, void *tz)\n"
        . "{ int r = syscall(SYS_gettimeofday, tv, tz);\n"
        . "  if (r == 0 && tv) tv->tv_sec += $secs; return r; }\n";
    close $fh;
    system('cc', '-shared', '-fPIC', '-O1', '-o', "$dir/wallclock.so",
           "$dir/wallclock.c") == 0 or die "cc failed";
    return "$dir/wallclock.so";
}

push @EXPORT, qw(flush_wallclock_shim);


# gdb attached to process $pid (batch mode, its output in $out): at the
# first call of one of @$syms it runs the gdb commands @then (e.g.
# 'kill'; or 'shell sleep 3', 'delete', 'detach' to hold the process
# stopped a while). Returns gdb's pid once the process is traced and
# running again; gdb's output comes at its exit.
sub gdb_at {
    my ($pid, $out, $syms, @then) = @_;
    my $gdb = fork();
    die "fork: $!" unless defined $gdb;
    if ($gdb == 0) {
        open STDOUT, '>', $out or POSIX::_exit(1);
        open STDERR, '>&', \*STDOUT;
        # gdb itself runs without the sanitizer the runner preloads
        delete $ENV{LD_PRELOAD};
        no warnings 'exec';
        exec 'gdb', '-q', '-nx', '-batch',
             '-iex', 'set debuginfod enabled off', '-p', $pid,
             '-ex', 'set breakpoint pending off',
             (map { ('-ex', "break $_") } @$syms),
             '-ex', 'continue', (map { ('-ex', $_) } @then);
        POSIX::_exit(1);
    }
    wait_until {
        my $st = slurp("/proc/$pid/status");
        $st =~ /^TracerPid:\s*[1-9]/m && $st !~ /^State:\s*t/m;
    } 30;
    return $gdb;
}

# waits up to $secs (10) for gdb to exit; one still waiting for its
# breakpoint is interrupted (it then runs its next commands, e.g. kill)
sub gdb_wait {
    my ($gdb, $secs) = @_;
    my $done = wait_until { waitpid($gdb, WNOHANG) == $gdb } $secs // 10;
    return 1 if $done;
    kill 'INT', $gdb;
    waitpid($gdb, 0);
    return 0;
}

# the block's error log holds no alert, crash or sanitizer report
sub log_is_clean {
    my ($name) = @_;
    Test::More::unlike(error_log_text(),
        qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/,
        "$name: no alert, crash or sanitizer report");
}

sub have_gdb { return grep { -x "$_/gdb" } split /:/, $ENV{PATH} }


# one POST of $json to /engagement/view on $port, given $secs (3) to
# answer: 'counted', the reason of a 200 not counted, or undef (no answer:
# the connection was cut, refused or timed out, or another status)
sub view_attempt {
    my ($port, $json, $secs) = @_;
    my $resp = '';
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm($secs // 3);
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                      Timeout => 2) or die "connect\n";
        print $s "POST /engagement/view HTTP/1.1\r\nHost: localhost\r\n"
                 . "Connection: close\r\nContent-Type: application/json\r\n"
                 . "Content-Length: " . length($json) . "\r\n\r\n$json";
        local $/;
        $resp = <$s> // '';
        alarm 0;
    };
    alarm 0;
    return undef unless $resp =~ m{^HTTP/1\.\d (\d+)};
    my $st = $1;
    return 'counted' if $st == 202 && $resp =~ /"counted":true/;
    return $1 if $st == 200 && $resp =~ /"reason":"(\w+)"/;
    return undef;
}

1;
