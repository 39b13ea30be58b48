package Test::Nginx::Socket;

# A small, self-contained, self-written test runner for nginx modules that
# understands the Test::Nginx::Socket data format (openresty/test-nginx).
# The same .t files run unchanged under the real Test::Nginx::Socket.
# See the POD at the end of this file for what is supported and how this
# runner differs from the real one.

use strict;
use warnings;

use Test::Base ();     # loaded, but its import() runs from the .t file
our @ISA = ('Test::Base');
our $VERSION = '0.01';

use Config ();
use Cwd ();
use File::Path ();
use File::Spec ();
use IO::Handle ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util ();
use POSIX ();
use Time::HiRes ();

our @EXPORT = qw(
    run_tests run_test repeat_each no_shuffle log_level no_long_string
    workers master_on master_off master_process_enabled worker_connections
    env_to_nginx no_root_location server_port port server_port_for_client
    server_addr server_name server_root html_dir timeout
    add_block_preprocessor add_response_body_check add_cleanup_handler
    is_str bail_out no_nginx_manager check_accum_error_log no_check_leak
    use_hup
);

# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------

my $RepeatEach        = 1;
my $NoShuffle         = 0;
my $LogLevel          = 'debug';
my $NoLongString      = 0;
my $Workers           = $ENV{TEST_NGINX_WORKERS} || 1;
my $MasterProcess     = 1;
my $WorkerConnections = 1024;
my $NoRootLocation    = 0;
my $NoNginxManager    = 0;
my $Timeout           = $ENV{TEST_NGINX_TIMEOUT} || 3;
my $Sleep             = $ENV{TEST_NGINX_SLEEP} || 0;
my @EnvToNginx;
my @BlockPreprocessors;
my @ResponseBodyChecks;
my @CleanupHandlers;

my $ServerPort = $ENV{TEST_NGINX_PORT} || $ENV{TEST_NGINX_SERVER_PORT} || 1984;
$ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;

my $ServRoot = File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT} || 't/servroot');
$ServRoot =~ s{/+\z}{};
die "Test::Nginx::Socket: refusing to use '$ServRoot' as server root\n"
    if $ServRoot eq '' || $ServRoot eq '/';
my $HtmlDir  = "$ServRoot/html";
my $LogDir   = "$ServRoot/logs";
my $ConfDir  = "$ServRoot/conf";
my $ErrorLog = "$LogDir/error.log";
my $StderrLog = "$LogDir/stderr.log";
# as the real runner: configs may say $TEST_NGINX_SERVER_ROOT (there is no
# TEST_NGINX_HTML_DIR there; `root html;` is the html dir in both)
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

my @ServRootSubdirs = qw(conf logs html client_body_temp proxy_temp
                         fastcgi_temp uwsgi_temp scgi_temp);

my $UseValgrind = $ENV{TEST_NGINX_USE_VALGRIND};
$UseValgrind = undef if defined $UseValgrind && $UseValgrind eq '';

my $NginxBinary;      # resolved lazily
my $NginxVersion;     # e.g. "1.22.1", resolved lazily
my $Current;          # the nginx process of the running block, if any

# ---------------------------------------------------------------------------
# Become a child subreaper, so that orphaned nginx processes (e.g. workers
# whose master died) are re-parented to us and can be reaped by us.
# ---------------------------------------------------------------------------

sub _prctl {
    my ($option, $arg) = @_;
    return -1 unless $^O eq 'linux';
    my %nr = (x86_64 => 157, aarch64 => 167);
    my ($arch) = ($Config::Config{archname} || '') =~ /^(x86_64|aarch64)/;
    return -1 unless $arch && ($Config::Config{ptrsize} || 0) == 8;
    local $!;
    return syscall($nr{$arch}, $option, $arg, 0, 0, 0);
}
_prctl(36, 1);    # PR_SET_CHILD_SUBREAPER

# ---------------------------------------------------------------------------
# Exported setters / getters
# ---------------------------------------------------------------------------

sub repeat_each {
    $RepeatEach = shift if @_;
    return $RepeatEach;
}
sub no_shuffle         { $NoShuffle = 1 }
sub no_long_string     { $NoLongString = 1 }
sub log_level          { $LogLevel = shift if @_; return $LogLevel }
sub workers            { $Workers = shift if @_; return $Workers }
sub master_on          { $MasterProcess = 1 }
sub master_off         { $MasterProcess = 0 }
sub master_process_enabled {
    $MasterProcess = $_[0] ? 1 : 0 if @_;
    return $MasterProcess;
}
sub worker_connections { $WorkerConnections = shift if @_; return $WorkerConnections }
sub env_to_nginx       { push @EnvToNginx, @_ }
sub no_root_location   { $NoRootLocation = 1 }
sub server_port        { $ServerPort = shift if @_; $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort; return $ServerPort }
sub port               { return server_port(@_) }
sub server_port_for_client { return $ServerPort }
sub server_addr        { return '127.0.0.1' }
sub server_name        { return 'localhost' }
sub server_root        { return $ServRoot }
sub html_dir           { return $HtmlDir }
sub timeout            { $Timeout = shift if @_; return $Timeout }
sub no_nginx_manager   { $NoNginxManager = 1 }
sub add_block_preprocessor  { push @BlockPreprocessors, @_ }
sub add_response_body_check { push @ResponseBodyChecks, @_ }
sub add_cleanup_handler     { push @CleanupHandlers, @_ }
sub check_accum_error_log   { }   # accepted, no effect (slices are per request)
sub no_check_leak           { }   # accepted, no effect
sub use_hup                 { }   # accepted, no effect (always a fresh nginx)
sub bail_out                { Test::More::BAIL_OUT(@_) }

sub is_str {
    my ($got, $expected, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 2;
    return _check_string($got, $expected, $name);
}

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

sub _now { Time::HiRes::time() }

sub _sec {
    my ($block, $name) = @_;
    return undef unless exists $block->{$name};
    my $v = $block->{$name};
    return ref $v eq 'ARRAY' ? $v->[0] : $v;
}

sub _has { my ($block, $name) = @_; return defined _sec($block, $name) }

sub _trimmed {
    my $v = shift;
    return undef unless defined $v;
    return $v if ref $v;
    $v =~ s/\A\s+//;
    $v =~ s/\s+\z//;
    return $v;
}

# Expand $TEST_NGINX_FOO from the environment; unknown ones stay as they are.
sub _expand_env {
    my $v = shift;
    return $v unless defined $v;
    return [ map { _expand_env($_) } @$v ] if ref $v eq 'ARRAY';
    return $v if ref $v;
    $v =~ s/\$(TEST_NGINX_[A-Z0-9_]+)/defined $ENV{$1} ? $ENV{$1} : "\$$1"/ge;
    return $v;
}

# Expected bodies also get $ServerPort / $ServerPortForClient like the real one.
sub _expand_expected {
    my $v = _expand_env(shift);
    return $v unless defined $v;
    return [ map { _expand_expected($_) } @$v ] if ref $v eq 'ARRAY';
    return $v if ref $v;
    $v =~ s/\$ServerPort(?:ForClient)?\b/$ServerPort/g;
    return $v;
}

sub _pick {
    my ($v, $i) = @_;
    return ref $v eq 'ARRAY' ? $v->[$i] : $v;
}

sub _slurp {
    my ($file, $offset) = @_;
    open my $fh, '<:raw', $file or return '';
    seek $fh, $offset, 0 if $offset;
    local $/;
    my $s = <$fh>;
    return defined $s ? $s : '';
}

sub _spew {
    my ($file, $content) = @_;
    open my $fh, '>:raw', $file or die "cannot write $file: $!\n";
    print {$fh} $content;
    close $fh or die "cannot write $file: $!\n";
}

sub _esc {
    my $s = shift;
    return 'undef' unless defined $s;
    $s =~ s/([^\x20-\x7e])/
        $1 eq "\n" ? '\\n' : $1 eq "\r" ? '\\r' : $1 eq "\t" ? '\\t'
                   : sprintf('\\x{%02x}', ord $1)/ge;
    return "\"$s\"";
}

sub _flush_all {
    STDOUT->flush;
    STDERR->flush;
    my $tb = Test::More->builder;
    for my $m (qw(output failure_output todo_output)) {
        eval { my $h = $tb->$m; $h->flush if $h; 1 };
    }
}

# Run a command, return its combined stdout+stderr.
sub _capture {
    my @cmd = @_;
    _flush_all();
    my $pid = open(my $fh, '-|');
    return '' unless defined $pid;
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        { no warnings; exec { $cmd[0] } @cmd; }
        POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh>;
    close $fh;
    return defined $out ? $out : '';
}

sub _nginx_binary {
    return $NginxBinary if defined $NginxBinary;
    if (defined $ENV{TEST_NGINX_BINARY} && $ENV{TEST_NGINX_BINARY} ne '') {
        return $NginxBinary = $ENV{TEST_NGINX_BINARY};
    }
    for my $dir (split /:/, $ENV{PATH} || '') {
        next if $dir eq '';
        my $f = "$dir/nginx";
        return $NginxBinary = $f if -f $f && -x _;
    }
    return $NginxBinary = '/usr/sbin/nginx';
}

sub _nginx_version {
    return $NginxVersion if defined $NginxVersion;
    my $out = _capture(_nginx_binary(), '-v');
    ($NginxVersion) = $out =~ m{nginx/(\d+(?:\.\d+)*)};
    $NginxVersion = '0' unless defined $NginxVersion;
    return $NginxVersion;
}

sub _ver_num {
    my @p = split /\./, shift;
    return sprintf '%03d%03d%03d%03d', map { $_ || 0 } @p[0 .. 3];
}

# ---------------------------------------------------------------------------
# Process management
# ---------------------------------------------------------------------------

# Is somebody listening on TCP $port? Uses /proc/net/tcp{,6} so that probing
# does not create connections (which nginx would log); falls back to connect.
sub _port_listening {
    my $port = shift;
    my $hex = sprintf '%04X', $port;
    my $seen_proc = 0;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        $seen_proc = 1;
        while (my $line = <$fh>) {
            my @f = split ' ', $line;
            next unless @f > 3 && $f[3] eq '0A';            # LISTEN
            return 1 if $f[1] =~ /:\Q$hex\E\z/;
        }
    }
    return 0 if $seen_proc;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return $s ? 1 : 0;
}

sub _spawn {
    my @cmd = @_;
    _flush_all();
    my $parent = $$;
    my $pid = fork;
    die "fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
        # If this test process dies (even by SIGKILL), nginx gets SIGTERM
        # and shuts down, instead of being left listening.
        _prctl(1, 15);    # PR_SET_PDEATHSIG, SIGTERM
        POSIX::_exit(1) if getppid() != $parent;
        POSIX::setpgid(0, 0);
        open STDIN,  '<',  '/dev/null';
        open STDOUT, '>>', $StderrLog;
        open STDERR, '>&', \*STDOUT;
        $SIG{$_} = 'DEFAULT' for qw(PIPE INT TERM QUIT HUP CHLD ALRM);
        if (defined $ENV{TEST_NGINX_PRELOAD} && $ENV{TEST_NGINX_PRELOAD} ne '') {
            $ENV{LD_PRELOAD} = $ENV{TEST_NGINX_PRELOAD};
            # nginx is usually built without frame pointers; ask ASan for
            # full allocation stacks unless the user decided otherwise
            my $ao = defined $ENV{ASAN_OPTIONS} ? $ENV{ASAN_OPTIONS} : '';
            if ($ENV{LD_PRELOAD} =~ /asan/ && $ao !~ /fast_unwind_on_malloc/) {
                $ENV{ASAN_OPTIONS} = join ':', grep { $_ ne '' } $ao, 'fast_unwind_on_malloc=0';
            }
        }
        { no warnings; exec { $cmd[0] } @cmd; }
        print STDERR "Test::Nginx::Socket: cannot exec $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    POSIX::setpgid($pid, $pid);   # also done by the child; avoids a race
    return { pid => $pid, pgid => $pid, exited => 0, status => undef };
}

sub _poll_exit {
    my $proc = shift;
    return 1 if $proc->{exited};
    my $r = waitpid($proc->{pid}, POSIX::WNOHANG());
    if ($r == $proc->{pid} || $r == -1) {
        $proc->{exited} = 1;
        $proc->{status} = $r == -1 ? -1 : $?;
        return 1;
    }
    return 0;
}

sub _wait_exit {
    my ($proc, $secs) = @_;
    my $deadline = _now() + $secs;
    while (1) {
        return 1 if _poll_exit($proc);
        return 0 if _now() >= $deadline;
        Time::HiRes::sleep(0.005);
    }
}

sub _describe_status {
    my $st = shift;
    return 'unknown status' if !defined $st || $st == -1;
    return 'killed by signal ' . ($st & 127) . (($st & 128) ? ' (core dumped)' : '')
        if $st & 127;
    return 'exit code ' . ($st >> 8);
}

# Processes (other than zombies) in process group $pgid, found via /proc.
sub _group_members {
    my $pgid = shift;
    my @pids;
    opendir my $dh, '/proc' or return ();
    for my $pid (grep { /^\d+\z/ } readdir $dh) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh>;
        next unless defined $stat;
        $stat =~ s/\A.*\)\s+//s;              # drop "pid (comm) "
        my ($state, undef, $pgrp) = split ' ', $stat;
        next unless defined $pgrp && $pgrp == $pgid;
        next if $state eq 'Z' || $state eq 'X';
        push @pids, $pid;
    }
    return @pids;
}

sub _pid_in {
    my ($file) = @_;
    my ($pid) = _slurp($file) =~ /^(\d+)/;
    return $pid || 0;
}

sub _reap_zombies {
    1 while waitpid(-1, POSIX::WNOHANG()) > 0;
}

# Stop an nginx we started: SIGQUIT, wait, then SIGKILL; afterwards make sure
# no member of its process group (workers, helpers) survives.
sub _stop {
    my ($proc, $grace) = @_;
    $grace ||= 5;
    return unless $proc;
    if (!_poll_exit($proc)) {
        kill 'QUIT', $proc->{pid};
        if (!_wait_exit($proc, $grace)) {
            # graceful shutdown still waits for some connection: fast shutdown
            $proc->{terminated} = 1;
            kill 'TERM', $proc->{pid};
        }
        if (!$proc->{exited} && !_wait_exit($proc, 3)) {
            $proc->{killed} = 1;
            kill 'KILL', -$proc->{pgid};    # leader not reaped yet: pgid is ours
            kill 'KILL', $proc->{pid};
            _wait_exit($proc, 5);
        }
    }
    # Leftovers of the group (e.g. workers orphaned by a crashed master).
    my $deadline = _now() + 3;
    while (my @left = _group_members($proc->{pgid})) {
        $proc->{leftovers} ||= scalar @left;
        kill 'KILL', @left;
        _reap_zombies();
        last if _now() > $deadline;
        Time::HiRes::sleep(0.01);
    }
    _reap_zombies();
}

sub _stop_current {
    my $grace = shift;
    my $proc = $Current;
    $Current = undef;
    _stop($proc, $grace) if $proc;
}

END {
    local $?;
    _stop_current();
    for my $h (@CleanupHandlers) { eval { $h->(); 1 } }
}

# ---------------------------------------------------------------------------
# nginx.conf
# ---------------------------------------------------------------------------

sub _prepare_servroot {
    for my $d (@ServRootSubdirs) {
        File::Path::remove_tree("$ServRoot/$d") if -e "$ServRoot/$d";
    }
    File::Path::make_path(map { "$ServRoot/$_" } @ServRootSubdirs);
}

sub _write_user_files {
    my $files = shift;
    return unless defined $files;
    my @list;
    if (ref $files eq 'ARRAY') {
        @list = map { [ $_->[0], $_->[1] ] } @$files;
    } else {
        my $cur;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)/) {
                $cur = [ $1, '' ];
                push @list, $cur;
            } elsif ($cur) {
                $cur->[1] .= $line;
            }
        }
    }
    for my $f (@list) {
        my ($name, $content) = @$f;
        my $path = "$HtmlDir/$name";
        (my $dir = $path) =~ s{/[^/]*\z}{};
        File::Path::make_path($dir);
        _spew($path, defined $content ? $content : '');
    }
}

sub _nginx_conf {
    my ($block) = @_;
    my $level = $ENV{TEST_NGINX_LOG_LEVEL} || _trimmed(_sec($block, 'log_level')) || $LogLevel;
    my $main  = _expand_env(_sec($block, 'main_config'));
    my $http  = _expand_env(_sec($block, 'http_config'));
    my $srv   = _expand_env(_sec($block, 'config'));
    $_ = defined $_ ? $_ : '' for $main, $http, $srv;

    my $conf = '';
    for my $m (split ' ', $ENV{TEST_NGINX_LOAD_MODULES} || '') {
        $conf .= 'load_module ' . File::Spec->rel2abs($m) . ";\n";
    }
    $conf .= "user root root;\n" if $> == 0 && $MasterProcess;
    $conf .= "daemon off;\n";
    $conf .= 'master_process ' . ($MasterProcess ? 'on' : 'off') . ";\n";
    $conf .= "worker_processes $Workers;\n";
    $conf .= "error_log $ErrorLog $level;\n";
    $conf .= "pid $LogDir/nginx.pid;\n";
    $conf .= "env $_;\n" for @EnvToNginx;
    $conf .= "\n$main\n";
    $conf .= "events {\n    worker_connections $WorkerConnections;\n"
           . "    accept_mutex off;\n}\n\n";
    $conf .= <<"HTTP";
http {
    access_log $LogDir/access.log;
    client_body_temp_path $ServRoot/client_body_temp;
    proxy_temp_path $ServRoot/proxy_temp;
    fastcgi_temp_path $ServRoot/fastcgi_temp;
    uwsgi_temp_path $ServRoot/uwsgi_temp;
    scgi_temp_path $ServRoot/scgi_temp;
    default_type text/plain;
    keepalive_timeout 68;

$http

    server {
        listen 127.0.0.1:$ServerPort;
        server_name localhost;
        client_max_body_size 30M;

$srv

HTTP
    if (!$NoRootLocation) {
        $conf .= "        location / {\n            root $HtmlDir;\n"
               . "            index index.html index.htm;\n        }\n";
    }
    $conf .= "    }\n}\n";
    return $conf;
}

# Exit-time "leaks" of nginx core itself (worker environment and the event
# module's connection arrays are never freed). Only frames from nginx itself
# are matched, so module code still gets reported.
my $ValgrindSuppressions = <<'SUPP';
{
   nginx-core-worker-environment
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:ngx_alloc
   fun:ngx_set_environment
}
{
   nginx-core-event-process-init-named
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:ngx_alloc
   fun:ngx_event_process_init
}
{
   nginx-core-event-process-init-stripped
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:ngx_alloc
   obj:*/nginx
   obj:*/nginx
   obj:*/nginx
   fun:ngx_spawn_process
}
SUPP

sub _nginx_cmd {
    my @cmd = (_nginx_binary(), '-p', "$ServRoot/", '-c', "$ConfDir/nginx.conf");
    # -e (nginx >= 1.19.5) keeps early messages away from compiled-in paths.
    push @cmd, '-e', $ErrorLog if _ver_num(_nginx_version()) ge _ver_num('1.19.5');
    if ($UseValgrind) {
        my @vg = ('valgrind', '--error-exitcode=66', '--leak-check=full',
                  '--errors-for-leak-kinds=definite', '--num-callers=40',
                  "--log-file=$LogDir/valgrind.%p.log");
        _spew("$ServRoot/valgrind.suppress", $ValgrindSuppressions);
        push @vg, "--suppressions=$ServRoot/valgrind.suppress";
        for my $supp ('valgrind.suppress', 't/valgrind.suppress') {
            push @vg, '--suppressions=' . File::Spec->rel2abs($supp) if -f $supp;
        }
        unshift @cmd, @vg;
    }
    return @cmd;
}

# ---------------------------------------------------------------------------
# HTTP client
# ---------------------------------------------------------------------------

sub _split_lines_headers {
    my $text = shift;
    my @h;
    return @h unless defined $text;
    for my $line (split /\n/, $text) {
        $line =~ s/\r\z//;
        next if $line =~ /^\s*(?:#|\z)/;
        my ($k, $v) = split /\s*:\s*/, $line, 2;
        $k =~ s/\A\s+//;
        push @h, [ $k, defined $v ? $v : '' ];
    }
    return @h;
}

# Build the request (as a list of packets) from one "request" entry.
sub _build_request {
    my ($req, $more) = @_;
    my @pieces = ref $req eq 'ARRAY'
        ? map { ref $_ eq 'HASH' ? $_->{value} : $_ } @$req
        : ($req);
    my $joined = join '', @pieces;
    my ($ws) = $joined =~ /\A(\s*)/;
    my ($line, $nl) = substr($joined, length $ws) =~ /\A([^\n]*?)(\r?\n|\z)/;
    my $body_start = length($ws) + length($line) + length($nl);
    my $body = substr($joined, $body_start);

    my ($meth, $uri, $ver) = split ' ', $line;
    die "empty request line\n" unless defined $meth;
    $uri = '/'        unless defined $uri;
    $ver = 'HTTP/1.1' unless defined $ver;

    my @more = _split_lines_headers($more);
    my $has = sub { my $re = shift; return grep { $_->[0] =~ $re } @more };
    my $head = "$meth $uri $ver\r\n";
    $head .= "Host: localhost\r\n"    unless $has->(qr/^host\z/i);
    $head .= "Connection: close\r\n"  unless $has->(qr/^connection\z/i);
    $head .= "$_->[0]: $_->[1]\r\n" for @more;
    my $user_framing = $has->(qr/^(?:content-length|transfer-encoding)\z/i);

    if (@pieces == 1) {
        if ($body ne '' && !$user_framing) {
            $body =~ s/\A\s+//;
            $body =~ s/\s+\z//;
            $head .= 'Content-Length: ' . length($body) . "\r\n";
        }
        return { method => $meth, pieces => [ "$head\r\n$body" ] };
    }

    # Several packets: keep the packet boundaries inside the body.
    $head .= 'Content-Length: ' . length($body) . "\r\n"
        if $body ne '' && !$user_framing;
    my @out = ("$head\r\n");
    my $pos = 0;    # offset in $joined
    for my $p (@pieces) {
        my ($from, $to) = ($pos, $pos + length $p);
        $pos = $to;
        $from = $body_start if $from < $body_start;
        next if $to <= $from;
        my $seg = substr($joined, $from, $to - $from);
        if ($to - length($p) < $body_start) {
            $out[0] .= $seg;     # this packet also carried the request line
        } else {
            push @out, $seg;
        }
    }
    return { method => $meth, pieces => \@out };
}

sub _requests_for_block {
    my ($block) = @_;
    my $raw = _sec($block, 'raw_request');
    if (defined $raw) {
        $raw = _expand_env($raw);
        my @pieces = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        my ($m) = (join '', @pieces) =~ /\A\s*(\S+)/;
        return ({ method => defined $m ? $m : 'GET', pieces => \@pieces });
    }
    my $req = _sec($block, 'request');
    return () unless defined $req;
    $req = _expand_env($req);
    my $more = _expand_env(_sec($block, 'more_headers'));
    my @reqs = ref $req eq 'ARRAY' ? @$req : ($req);
    my @out;
    for my $i (0 .. $#reqs) {
        push @out, _build_request($reqs[$i], _pick($more, $i));
    }
    return @out;
}

# Parse a raw response. Returns a hash with code, headers, raw_headers,
# body, complete (framing satisfied) and error.
sub _parse_response {
    my ($raw, $method) = @_;
    my $res = { code => undef, headers => [], raw_headers => '', body => '',
                complete => 0, error => undef };
    my $buf = $raw;
    while (1) {
        my $end = index($buf, "\r\n\r\n");
        my $sep = 4;
        if ($end < 0) {
            my $e2 = index($buf, "\n\n");
            ($end, $sep) = ($e2, 2) if $e2 >= 0;
        }
        if ($end < 0) {
            $res->{error} = 'incomplete response header';
            $res->{raw_headers} = $buf;
            return $res;
        }
        my $head = substr($buf, 0, $end);
        my $rest = substr($buf, $end + $sep);
        my ($status, @lines) = split /\r?\n/, $head;
        if (!defined $status || $status !~ m{^HTTP/\d+(?:\.\d+)?\s+(\d{3})}) {
            $res->{error} = 'bad status line: ' . _esc($status);
            $res->{body} = $raw;
            return $res;
        }
        my $code = $1;
        if ($code =~ /^1/ && $code ne '101') {    # interim response
            $buf = $rest;
            next;
        }
        $res->{code} = $code;
        $res->{raw_headers} = "$head\r\n\r\n";
        for my $l (@lines) {
            if ($l =~ /^[ \t]/ && @{ $res->{headers} }) {    # continuation
                (my $c = $l) =~ s/^\s+//;
                $res->{headers}[-1][1] .= " $c";
                next;
            }
            my ($k, $v) = split /:[ \t]*/, $l, 2;
            $v = '' unless defined $v;
            $v =~ s/\s+\z//;
            push @{ $res->{headers} }, [ $k, $v ];
        }
        my $te = _header($res, 'Transfer-Encoding');
        my $cl = _header($res, 'Content-Length');
        if ((defined $method && $method eq 'HEAD') || $code eq '204' || $code eq '304') {
            $res->{complete} = 1;
            $res->{body} = '';
            $res->{extra} = $rest;
        } elsif (defined $te && $te =~ /chunked/i) {
            my ($body, $complete, $err) = _dechunk($rest);
            $res->{body} = $body;
            $res->{complete} = $complete;
            $res->{error} = $err if $err;
        } elsif (defined $cl && $cl =~ /^\s*(\d+)/) {
            my $len = $1;
            $res->{body} = substr($rest, 0, $len);
            $res->{complete} = length($rest) >= $len;
        } else {
            $res->{body} = $rest;
        }
        return $res;
    }
}

sub _dechunk {
    my $s = shift;
    my ($body, $pos) = ('', 0);
    while (1) {
        my $eol = index($s, "\r\n", $pos);
        return ($body, 0) if $eol < 0;
        my $line = substr($s, $pos, $eol - $pos);
        return ($body, 0, 'bad chunk size line: ' . _esc($line))
            unless $line =~ /^([0-9a-fA-F]+)/;
        my $size = hex $1;
        $pos = $eol + 2;
        if ($size == 0) {
            # trailers, terminated by an empty line
            while (1) {
                my $e = index($s, "\r\n", $pos);
                return ($body, 0) if $e < 0;
                my $empty = $e == $pos;
                $pos = $e + 2;
                return ($body, 1) if $empty;
            }
        }
        return ($body . substr($s, $pos), 0) if length($s) < $pos + $size + 2;
        $body .= substr($s, $pos, $size);
        $pos += $size + 2;
    }
}

sub _header {
    my ($res, $name) = @_;
    my @v = map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $res->{headers} };
    return @v ? join(', ', @v) : undef;
}

sub _write_all {
    my ($sock, $data, $deadline) = @_;
    my $off = 0;
    my $sel = IO::Select->new($sock);
    while ($off < length $data) {
        my $left = $deadline - _now();
        return 'timeout' if $left <= 0;
        next unless $sel->can_write($left);
        my $n = syswrite($sock, $data, length($data) - $off, $off);
        if (!defined $n) {
            next if $!{EINTR} || $!{EAGAIN};
            return "write failed: $!";
        }
        $off += $n;
    }
    return undef;
}

# Send one request (list of packets) on a fresh connection, read the answer.
sub _do_request {
    my ($req, $timeout, $delay) = @_;
    my $deadline = _now() + $timeout;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ServerPort,
                                     Proto => 'tcp', Timeout => $timeout);
    return { raw => '', error => "cannot connect to 127.0.0.1:$ServerPort: $@" }
        unless $sock;
    binmode $sock;
    local $SIG{PIPE} = 'IGNORE';
    my $werr;
    my @pieces = @{ $req->{pieces} };
    for my $i (0 .. $#pieces) {
        Time::HiRes::sleep($delay) if $i > 0 && $delay > 0;
        $werr = _write_all($sock, $pieces[$i], $deadline);
        last if $werr;
    }
    my ($buf, $eof, $timed_out, $rerr, $complete_at) = ('', 0, 0, undef, undef);
    my $sel = IO::Select->new($sock);
    while (1) {
        my $now  = _now();
        my $left = $deadline - $now;
        if (defined $complete_at) {
            # framing says we are done; give pipelined/extra data 100 ms
            my $grace = $complete_at + 0.1 - $now;
            $left = $grace if $grace < $left;
            last if $left <= 0;
        }
        if ($left <= 0) { $timed_out = 1; last }
        next unless $sel->can_read($left);
        my $n = sysread($sock, $buf, 65536, length $buf);
        if (!defined $n) {
            next if $!{EINTR} || $!{EAGAIN};
            $rerr = "read failed: $!" unless $!{ECONNRESET} && length $buf;
            last;
        }
        if ($n == 0) { $eof = 1; last }
        $complete_at = _now() if _parse_response($buf, $req->{method})->{complete};
    }
    close $sock;
    my $res = _parse_response($buf, $req->{method});
    $res->{raw} = $buf;
    $res->{timed_out} = $timed_out;
    $res->{write_error} = $werr;
    $res->{read_error} = $rerr;
    return $res;
}

# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

sub _check_string {
    my ($got, $exp, $name) = @_;
    if (defined $got && defined $exp && $got eq $exp) {
        return Test::More::ok(1, $name);
    }
    Test::More::ok(0, $name);
    if (!defined $got || !defined $exp) {
        Test::More::diag("     got: " . _esc($got) . "\nexpected: " . _esc($exp));
        return 0;
    }
    if ($NoLongString || (length($got) < 80 && length($exp) < 80)) {
        Test::More::diag("     got: " . _esc($got) . "\nexpected: " . _esc($exp));
    } else {
        my $i = 0;
        $i++ while $i < length($got) && $i < length($exp)
                   && substr($got, $i, 1) eq substr($exp, $i, 1);
        my $from = $i > 20 ? $i - 20 : 0;
        Test::More::diag(sprintf("strings differ at offset %d (got length %d, expected length %d)\n"
                                 . "     got: ...%s\nexpected: ...%s",
                                 $i, length $got, length $exp,
                                 _esc(substr($got, $from, 60)), _esc(substr($exp, $from, 60))));
    }
    if ($exp =~ /\n./s || $got =~ /\n./s) {
        if (eval { require Text::Diff; 1 }) {
            Test::More::diag("diff (- expected, + got):\n"
                             . Text::Diff::diff(\$exp, \$got, { STYLE => 'Unified' }));
        }
    }
    return 0;
}

sub _log_patterns {
    my $spec = shift;
    return () unless defined $spec;
    return @$spec if ref $spec eq 'ARRAY';
    return ($spec) if ref $spec;
    return grep { /\S/ } split /\n/, $spec;
}

sub _pattern_text {
    my $p = shift;
    return ref $p eq 'Regexp' ? "$p" : $p;
}

sub _log_match {
    my ($pat, $text, $lines) = @_;
    if (ref $pat eq 'Regexp') {
        for my $l (@$lines) { return $l if $l =~ $pat }
        return undef;
    }
    my $i = index($text, $pat);
    return undef if $i < 0;
    my $s = rindex($text, "\n", $i) + 1;
    my $e = index($text, "\n", $i);
    return substr($text, $s, ($e < 0 ? length $text : $e) - $s);
}

sub _check_log {
    my ($name, $sfx, $text, $spec, $negate, $where) = @_;
    my @lines = split /\n/, $text;
    for my $pat (_log_patterns($spec)) {
        my $shown = _pattern_text($pat);
        my $line = _log_match($pat, $text, \@lines);
        if ($negate) {
            Test::More::ok(!defined $line,
                "$name - pattern \"$shown\" should not match any line in $where$sfx")
                or Test::More::diag("matched line: $line");
        } else {
            Test::More::ok(defined $line,
                "$name - pattern \"$shown\" matches a line in $where$sfx")
                or Test::More::diag("no line in $where (" . scalar(@lines)
                                    . " lines) matched; last lines:\n"
                                    . join("\n", @lines[($#lines > 9 ? $#lines - 9 : 0) .. $#lines]));
        }
    }
}

sub _expects_level {
    my ($block, $level) = @_;
    for my $sec (qw(error_log shutdown_error_log)) {
        for my $p (_log_patterns(_sec($block, $sec))) {
            return 1 if index(_pattern_text($p), $level) >= 0;
        }
    }
    return 0;
}

# With a stock (not instrumented) nginx and a preloaded libasan, LeakSanitizer
# reports memory that nginx core itself never frees at worker exit (the event
# module's connection arrays). Remove reports in which every leak's stack
# consists only of frames of the nginx binary and of libc/sanitizer runtime;
# any frame from elsewhere (a module .so, a source file) keeps the report.
sub _frame_is_core {
    my $f = shift;
    if ($f =~ /\((\S+?)\+0x[0-9a-fA-F]+\)\s*\z/) {
        my $path = $1;
        my $bin = _nginx_binary();
        my $real = Cwd::abs_path($bin);
        return 1 if $path eq $bin || (defined $real && $path eq $real);
        return 1 if $path =~ m{(?:^|/)(?:libc|libasan|liblsan|libubsan|libtsan|ld-linux[^/]*|libpthread|libstdc\+\+|libgcc_s|libdl)[.-][^/]*\z};
        return 0;
    }
    if ($f =~ /\s(\S+):\d+(?::\d+)?\s*\z/) {
        return $1 =~ m{libsanitizer|compiler-rt|sysdeps|/csu/|nptl|libc-start} ? 1 : 0;
    }
    return 1;
}

sub _strip_core_lsan_reports {
    my $text = shift;
    return ($text, 0) if $ENV{TEST_NGINX_STRICT_LSAN};
    my $n = 0;
    $text =~ s{
        ^==\d+==ERROR:\ LeakSanitizer:\ detected\ memory\ leaks[^\n]*\n
        (.*?)
        ^SUMMARY:\ \w+Sanitizer:[^\n]*leaked[^\n]*(?:\n|\z)
    }{
        my $body = $1;
        my @entries = split /^(?=(?:Direct|Indirect) leak of )/m, $body;
        @entries = grep { /^(?:Direct|Indirect) leak of / } @entries;
        my $core = @entries > 0;
        for my $e (@entries) {
            for my $fr (grep { /^\s+#\d+ / } split /\n/, $e) {
                $core = 0 unless _frame_is_core($fr);
            }
        }
        $n++ if $core;
        $core ? '' : $&;
    }gmsex;
    return ($text, $n);
}

# Automatic checks; they only produce a (failing) test when there is a problem.
sub _auto_checks {
    my ($block, $name, $sfx, $errlog, $stderr, $must_die) = @_;
    my @found;
    my @checks = (
        [ 'error.log', $errlog, '[alert]', 0 ],
        [ 'error.log', $errlog, '[emerg]', 1 ],
    );
    for my $c (@checks) {
        my ($where, $text, $word, $is_emerg) = @$c;
        next if $must_die;
        next if _expects_level($block, $word);
        for my $l (split /\n/, $text) {
            push @found, "$where: $l" if index($l, $word) >= 0;
        }
    }
    my $crash = qr/signal 11|(?:Address|Leak|Thread|Memory|UndefinedBehavior)Sanitizer|runtime error:/;
    my @ignored;
    for my $c ([ 'error.log', $errlog ], [ 'stderr', $stderr ]) {
        my ($where, $text) = @$c;
        ($text, my $n) = _strip_core_lsan_reports($text);
        push @ignored, "$where: $n" if $n;
        my @lines = split /\n/, $text;
        for my $i (0 .. $#lines) {
            next unless $lines[$i] =~ $crash;
            # show the report itself (stack traces follow the first line)
            my $to = $i + 40 > $#lines ? $#lines : $i + 40;
            push @found, "$where: $lines[$i]";
            push @found, map { "$where: $_" } grep { /^\s+#\d+ / } @lines[$i + 1 .. $to];
        }
    }
    if (@ignored && !@found) {
        Test::More::note("$name - ignored LeakSanitizer report(s) that only concern nginx core "
                         . "allocations (set TEST_NGINX_STRICT_LSAN=1 to fail on them): "
                         . join(', ', @ignored));
    }
    if (@found) {
        my %seen;
        @found = grep { !$seen{$_}++ } @found;
        my $more = @found > 60 ? "\n... (" . (@found - 60) . " more)" : '';
        Test::More::ok(0, "$name - no alert/emerg/crash/sanitizer reports$sfx");
        Test::More::diag(join("\n", @found[0 .. ($#found > 59 ? 59 : $#found)]) . $more);
    }
    if ($UseValgrind) {
        for my $f (glob "$LogDir/valgrind.*.log") {
            my $v = _slurp($f);
            if ($v =~ /ERROR SUMMARY: [1-9]/ || $v =~ /definitely lost: [1-9]/) {
                Test::More::ok(0, "$name - valgrind reports no errors$sfx");
                my @l = split /\n/, $v;
                Test::More::diag("$f:\n" . join("\n", @l[0 .. ($#l > 79 ? 79 : $#l)]));
            }
        }
    }
}

sub _check_response {
    my ($block, $res, $i, $name, $sfx) = @_;

    my $code = defined $res->{code} ? $res->{code} : '';
    my $code_like = _sec($block, 'error_code_like');
    if (defined $code_like) {
        my $pat = _trimmed(_pick($code_like, $i));
        Test::More::like($code, qr/$pat/, "$name - status code ok$sfx");
    } else {
        my $exp = _trimmed(_pick(_sec($block, 'error_code'), $i));
        $exp = 200 unless defined $exp && $exp ne '';
        Test::More::is($code, $exp, "$name - status code ok$sfx");
    }
    Test::More::diag("response problem: $res->{error}") if $res->{error} && $code ne '';

    if (defined(my $pat = _expand_env(_pick(_sec($block, 'raw_response_headers_like'), $i)))) {
        Test::More::like($res->{raw_headers}, qr/$pat/s, "$name - raw resp headers like$sfx");
    }
    if (defined(my $pat = _expand_env(_pick(_sec($block, 'raw_response_headers_unlike'), $i)))) {
        Test::More::unlike($res->{raw_headers}, qr/$pat/s, "$name - raw resp headers unlike$sfx");
    }

    if (defined _sec($block, 'response_headers')) {
        my $hs = _expand_expected(_pick(_sec($block, 'response_headers'), $i));
        for my $h (_split_lines_headers($hs)) {
            my ($k, $v) = @$h;
            if ($k =~ s/^!\s*//) {
                Test::More::ok(!defined _header($res, $k), "$name - header $k not present$sfx")
                    or Test::More::diag("header $k: " . _header($res, $k));
                next;
            }
            my $got = _header($res, $k);
            Test::More::is(defined $got ? $got : '', $v, "$name - header $k ok$sfx");
        }
    }
    # as in the real runner, response_headers_like is only looked at in a
    # block without response_headers
    elsif (defined _sec($block, 'response_headers_like')) {
        my $hs = _expand_expected(_pick(_sec($block, 'response_headers_like'), $i));
        for my $h (_split_lines_headers($hs)) {
            my ($k, $v) = @$h;
            if ($k =~ s/^!\s*//) {
                Test::More::ok(!defined _header($res, $k), "$name - header $k not present$sfx");
                next;
            }
            my $got = _header($res, $k);
            Test::More::like(defined $got ? $got : '', qr/^$v$/, "$name - header $k like ok$sfx");
        }
    }

    return if defined _sec($block, 'ignore_response_body');
    my $body = $res->{body};
    if (defined(my $exp = _sec($block, 'response_body'))) {
        $exp = _expand_expected(_pick($exp, $i));
        if (defined $exp) {
            _check_string($body, $exp, "$name - response_body - response is expected$sfx");
        }
    } elsif (defined(my $like = _sec($block, 'response_body_like'))) {
        my $pat = _expand_expected(_pick($like, $i));
        if (defined $pat) {
            my $summary = defined $body ? $body : '';
            $summary =~ s/\A\s+|\s+\z//g;
            $summary =~ s/\s+/ /g;
            $summary = substr($summary, 0, 60) . '...' if length $summary > 60;
            Test::More::like($body, (ref $pat eq 'Regexp' ? $pat : qr/$pat/s),
                             "$name - response_body_like - response is expected ($summary)$sfx");
        }
    } elsif (defined(my $unlike = _sec($block, 'response_body_unlike'))) {
        my $pat = _expand_expected(_pick($unlike, $i));
        if (defined $pat) {
            Test::More::unlike($body, (ref $pat eq 'Regexp' ? $pat : qr/$pat/s),
                               "$name - response_body_unlike - response is expected$sfx");
        }
    }
    for my $check (@ResponseBodyChecks) {
        $check->($block, $body, $i, 0, 0);
    }
}

# ---------------------------------------------------------------------------
# Running blocks
# ---------------------------------------------------------------------------

sub _skip_count {
    my ($block) = @_;
    if (defined(my $s = _sec($block, 'skip_nginx'))) {
        if ($s =~ /^\s*(\d+)\s*:\s*(<=|>=|==|!=|<|>)\s*(\d+(?:\.\d+)*)/) {
            my ($n, $op, $v) = ($1, $2, $3);
            my ($a, $b) = (_ver_num(_nginx_version()), _ver_num($v));
            my $hit = $op eq '<'  ? $a lt $b : $op eq '<=' ? $a le $b
                    : $op eq '>'  ? $a gt $b : $op eq '>=' ? $a ge $b
                    : $op eq '==' ? $a eq $b : $a ne $b;
            return ($n, "nginx " . _nginx_version() . " $op $v") if $hit;
        }
    }
    if (defined(my $s = _sec($block, 'skip_eval'))) {
        if ($s =~ /^\s*(\d+)\s*:\s*(.*)\z/s) {
            my ($n, $code) = ($1, $2);
            my $hit = eval "package main; no strict; $code";
            return ($n, "skip_eval: $code") if $hit;
        }
    }
    return;
}

sub run_test { _run_block(shift, 1) }

sub _run_block {
    my ($block, $rep) = @_;
    my $name = $block->name;
    my $sfx  = $RepeatEach > 1 ? " (repeat $rep)" : '';
    my $tb = Test::More->builder;

    if (my ($n, $why) = _skip_count($block)) {
        $tb->skip("$name - $why") for 1 .. $n;
        return;
    }

    my $todo = _sec($block, 'todo');
    if (defined $todo) {
        my ($reason) = $todo =~ /^\s*(?:\d+\s*:)?\s*(.*?)\s*\z/s;
        $tb->todo_start($reason || 'todo');
    }

    my $ok = eval { _run_block_body($block, $name, $sfx); 1 };
    my $err = $@;
    _stop_current();
    if (!$ok) {
        Test::More::ok(0, "$name - test runner error$sfx");
        Test::More::diag($err);
    }
    $tb->todo_end if defined $todo;
    _reap_zombies();
}

sub _run_block_body {
    my ($block, $name, $sfx) = @_;

    my $must_die = _sec($block, 'must_die');
    my @reqs;
    if (!defined $must_die) {
        @reqs = _requests_for_block($block);
        die "no --- request or --- raw_request section\n" unless @reqs;
    }

    _prepare_servroot();
    _write_user_files(_expand_env(_sec($block, 'user_files')));
    _spew("$ConfDir/nginx.conf", _nginx_conf($block));
    _spew($StderrLog, '');
    my $err_pos = -s $ErrorLog || 0;    # error log position for this block

    my $startup = $UseValgrind ? 30 : 5;
    my $proc;
    if (!$NoNginxManager) {
        if (_port_listening($ServerPort)) {
            Test::More::ok(0, "$name - port $ServerPort is free before starting nginx$sfx");
            Test::More::diag("something else listens on 127.0.0.1:$ServerPort; "
                             . "set TEST_NGINX_PORT to another port");
            return;
        }
        $proc = $Current = _spawn(_nginx_cmd());
    }

    if (defined $must_die) {
        my $deadline = _now() + $startup;
        my $state = 'timeout';
        while (_now() < $deadline) {
            if (_poll_exit($proc)) { $state = 'exited'; last }
            if (_port_listening($ServerPort)) { $state = 'up'; last }
            Time::HiRes::sleep(0.01);
        }
        if ($state ne 'exited') {
            _stop_current();
            Test::More::ok(0, "$name - nginx must die$sfx");
            Test::More::diag($state eq 'up' ? 'nginx started and listens'
                                            : "nginx still running after ${startup}s");
        } else {
            $Current = undef;
            my $st = $proc->{status};
            my $want = _trimmed($must_die);
            if ($st & 127) {
                Test::More::ok(0, "$name - nginx must die (by exiting, not by a crash)$sfx");
                Test::More::diag('nginx ' . _describe_status($st));
            } elsif (defined $want && $want =~ /^\d+\z/) {
                Test::More::is($st >> 8, $want, "$name - die with the expected exit code$sfx");
            } else {
                # one test either way, like the real runner's "die as expected"
                Test::More::ok($st >> 8 != 0, "$name - die as expected$sfx");
            }
        }
        _reap_zombies();
        my $errlog = _slurp($ErrorLog, $err_pos);
        my $stderr = _slurp($StderrLog);
        my $text = $stderr . ($stderr =~ /\n\z|\A\z/ ? '' : "\n") . $errlog;
        _check_log($name, $sfx, $text, _sec($block, 'error_log'), 0, 'error.log');
        _check_log($name, $sfx, $text, _sec($block, 'no_error_log'), 1, 'error.log');
        _auto_checks($block, $name, $sfx, $errlog, $stderr, 1);
        return;
    }

    # Wait until nginx listens.
    if ($proc) {
        my $deadline = _now() + $startup;
        my $state = 'timeout';
        while (1) {
            if (_poll_exit($proc)) { $state = 'exited'; last }
            # up: our master wrote its pid file (after it opened the
            # listening sockets) and the port listens
            if (_pid_in("$LogDir/nginx.pid") == $proc->{pid}
                && _port_listening($ServerPort)) { $state = 'up'; last }
            last if _now() >= $deadline;
            Time::HiRes::sleep(0.02);
        }
        if ($state ne 'up') {
            _stop_current();
            Test::More::ok(0, "$name - nginx started$sfx");
            my $stderr = _slurp($StderrLog);
            my @emerg = grep { /\[(?:emerg|alert|crit)\]/ } split /\n/, _slurp($ErrorLog, $err_pos);
            Test::More::diag(($state eq 'exited'
                                  ? 'nginx exited during startup (' . _describe_status($proc->{status}) . ')'
                                  : "nginx did not listen on port $ServerPort within ${startup}s")
                             . "\nstderr:\n$stderr" . join("\n", @emerg));
            _auto_checks($block, $name, $sfx, '', $stderr, 1);
            return;
        }
    }

    # --- init runs once nginx is up, before the first request (like the
    # real runner, which evals it after starting nginx)
    if (defined(my $init = _sec($block, 'init'))) {
        if (ref $init eq 'CODE') { $init->() }
        else { eval "package main; no strict; $init; 1" or die "init failed: $@" }
    }

    my $timeout = _trimmed(_sec($block, 'timeout'));
    $timeout = $Timeout unless defined $timeout && $timeout =~ /^\d+(?:\.\d*)?\z/ && $timeout > 0;
    $timeout *= 5 if $UseValgrind;
    my $delay = _trimmed(_sec($block, 'raw_request_middle_delay'));
    $delay = 0.05 unless defined $delay && $delay =~ /^\d+(?:\.\d*)?\z/;
    my $abort = defined _sec($block, 'abort');
    my $multi = @reqs > 1;

    my $wait = _trimmed(_sec($block, 'wait'));
    $wait = 0 unless defined $wait && $wait =~ /^\d+(?:\.\d*)?\z/;

    # Each request's error_log/no_error_log/grep_error_log checks see the
    # slice of error.log written since the previous request's checks (the
    # first slice starts with nginx's startup), as in the real runner.
    my $slice_pos = $err_pos;
    my $client_gave_up = 0;
    # as the real runner: with several requests, what is expected of each
    # answer is a list, one per request (a single value stops the run)
    if ($multi) {
        for my $s (qw(error_code error_code_like raw_response_headers_like
                      raw_response_headers_unlike response_headers
                      response_headers_like response_body response_body_like
                      response_body_unlike)) {
            my $v = _sec($block, $s);
            next if !defined $v || ref $v eq 'ARRAY';
            Test::More::BAIL_OUT("$name - You asked for many requests, the"
                                 . " expected results should be arrays as well.");
        }
    }
    for my $i (0 .. $#reqs) {
        my $rsfx = ($multi ? " (req $i)" : '') . $sfx;
        my $res = _do_request($reqs[$i], $timeout, $delay);
        $client_gave_up = 1 if $res->{timed_out};
        if ($res->{timed_out} && !$abort) {
            Test::More::ok(0, "$name - request timed out after ${timeout}s$rsfx");
            Test::More::diag('received so far: ' . _esc(substr($res->{raw}, 0, 500)));
        } elsif ($res->{error} && !$res->{timed_out} && !defined $res->{code}) {
            Test::More::diag("$name - $res->{error}$rsfx");
        }
        Test::More::diag("$name - $res->{read_error}$rsfx") if $res->{read_error};
        _check_response($block, $res, $i, $name, $rsfx)
            unless defined _sec($block, 'ignore_response');
        # the real runner sleeps --- wait after every request, then looks
        # at the log
        Time::HiRes::sleep($wait) if $wait > 0;
        $slice_pos = _check_request_log($block, $name, $rsfx, $slice_pos);
    }

    # Stop nginx before the automatic checks, so that shutdown messages,
    # sanitizer reports and leak reports are included.
    if ($proc) {
        my $died = _poll_exit($proc);
        # After a client-side timeout nginx may still be busy with that
        # request; do not wait long for the graceful shutdown then.
        _stop_current($client_gave_up ? 0.5 : ($UseValgrind ? 30 : 5));
        if ($died) {
            Test::More::ok(0, "$name - nginx is still running after the requests$sfx");
            Test::More::diag('nginx ' . _describe_status($proc->{status}));
        } elsif ($proc->{killed}) {
            Test::More::ok(0, "$name - nginx stops on SIGQUIT/SIGTERM$sfx");
            Test::More::diag('nginx did not exit after SIGQUIT and SIGTERM and was killed');
        } elsif (($proc->{status} || 0) != 0) {
            Test::More::ok(0, "$name - nginx exits cleanly$sfx");
            Test::More::diag('nginx ' . _describe_status($proc->{status}));
        }
        if ($proc->{terminated} && !$proc->{killed}) {
            Test::More::diag("$name - nginx did not finish a graceful shutdown in time; used SIGTERM");
        }
        if ($proc->{leftovers}) {
            Test::More::diag("$name - killed $proc->{leftovers} leftover nginx process(es)");
        }
    }

    # shutdown_error_log: what was written after the last request's slice
    my $shutdown_log = _slurp($ErrorLog, $slice_pos);
    for my $s ([ 'shutdown_error_log', 0 ], [ 'no_shutdown_error_log', 1 ]) {
        _check_log($name, $sfx, $shutdown_log, _sec($block, $s->[0]), $s->[1], 'error.log');
    }

    # the automatic checks look at the whole block, shutdown included
    my $errlog = _slurp($ErrorLog, $err_pos);
    my $stderr = _slurp($StderrLog);
    _auto_checks($block, $name, $sfx, $errlog, $stderr, 0);
}

# The slice of error.log after $pos, up to its last complete line. The
# response was read to its end (nginx runs the log phase before it closes
# the connection), so there is no sleep unless TEST_NGINX_SLEEP is set;
# then it sleeps TEST_NGINX_SLEEP * 3 like the real runner. Returns the
# slice and the new position.
sub _log_slice {
    my ($pos) = @_;
    Time::HiRes::sleep($Sleep * 3) if $Sleep;
    my $text = _slurp($ErrorLog, $pos);
    my $end = rindex($text, "\n") + 1;
    return (substr($text, 0, $end), $pos + $end);
}

# error_log, no_error_log and grep_error_log of one request, against the
# slice of error.log that request wrote; returns the new log position.
sub _check_request_log {
    my ($block, $name, $rsfx, $pos) = @_;
    (my $slice, $pos) = _log_slice($pos);
    # patterns are taken literally, as the real runner does ($TEST_NGINX_*
    # is expanded only in grep_error_log_out)
    _check_log($name, $rsfx, $slice, _sec($block, 'error_log'), 0, 'error.log');
    _check_log($name, $rsfx, $slice, _sec($block, 'no_error_log'), 1, 'error.log');
    if (defined(my $g = _sec($block, 'grep_error_log'))) {
        $g = _pick($g, 0);
        my $re = ref $g eq 'Regexp' ? $g : do { (my $t = $g) =~ s/\n\z//; qr/\Q$t\E/ };
        my $out = '';
        for my $line (split /^/, $slice) {
            next unless $line =~ $re;
            my $m = $&;
            $out .= "$m\n" unless $m =~ /\n/;
        }
        my $exp = _expand_env(_pick(_sec($block, 'grep_error_log_out'), 0));
        if (defined $exp) {
            if (ref $exp eq 'Regexp') {
                Test::More::like($out, $exp, "$name - grep_error_log_out$rsfx");
            } else {
                _check_string($out, $exp, "$name - grep_error_log_out$rsfx");
            }
        }
    }
    return $pos;
}

sub _die_of_signal {
    my $sig = shift;
    _stop_current();
    for my $h (@CleanupHandlers) { eval { $h->(); 1 } }
    @CleanupHandlers = ();
    my %num;
    @num{ split ' ', $Config::Config{sig_name} } = split ' ', $Config::Config{sig_num};
    my $no = $num{$sig} || 15;
    $SIG{$sig} = 'DEFAULT';
    kill $sig, $$;
    # perl blocks the signal while its handler runs
    POSIX::sigprocmask(POSIX::SIG_UNBLOCK(), POSIX::SigSet->new($no));
    POSIX::_exit(128 + $no);
}

sub run_tests {
    my $tb = Test::More->builder;
    Test::More::plan('no_plan') unless $tb->has_plan;

    # Interrupted (or the TAP output went away): stop nginx, then die of the
    # same signal.
    local $SIG{INT}  = \&_die_of_signal;
    local $SIG{TERM} = \&_die_of_signal;
    local $SIG{PIPE} = \&_die_of_signal;

    my @blocks = Test::Base::blocks();
    @blocks = List::Util::shuffle(@blocks)
        unless $NoShuffle || $ENV{TEST_NGINX_NO_SHUFFLE};

    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        for my $rep (1 .. $RepeatEach) {
            _run_block($block, $rep);
        }
    }
    _stop_current();
}

1;

__END__

=head1 NAME

Test::Nginx::Socket - small self-written runner for Test::Nginx::Socket style tests

=head1 SYNOPSIS

    use Test::Nginx::Socket 'no_plan';
    repeat_each(1);
    no_shuffle();
    log_level('info');
    run_tests();
    __DATA__
    === TEST 1: hello
    --- config
    location = /t { return 200 "hi\n"; }
    --- request
    GET /t
    --- response_body
    hi
    --- no_error_log
    [alert]

Run with C<prove -I t/lib -r t/>. The same files run unchanged under the
real Test::Nginx (openresty/test-nginx): C<prove -I /path/to/test-nginx/lib
-r t/> (test files that need the suite's helpers add t/lib to @INC after
loading Test::Nginx::Socket, so the real one wins).

=head1 SUPPORTED

Built on Test::Base (the same block format, filters such as C<eval>,
C<chomp>, ONLY/SKIP/LAST).

Exports: run_tests, repeat_each, no_shuffle, log_level, no_long_string,
workers, master_on, master_off, master_process_enabled, worker_connections,
env_to_nginx, no_root_location, server_port/port, server_port_for_client,
server_addr, server_name, server_root, html_dir, timeout,
add_block_preprocessor, add_response_body_check, add_cleanup_handler, is_str,
bail_out, plus Test::Base's exports (plan, blocks, is, ok, like, ...).
check_accum_error_log, no_check_leak, use_hup, no_nginx_manager are accepted.

Environment: TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES, TEST_NGINX_PORT /
TEST_NGINX_SERVER_PORT (default 1984), TEST_NGINX_SERVROOT (default
t/servroot), TEST_NGINX_WORKERS, TEST_NGINX_LOG_LEVEL, TEST_NGINX_TIMEOUT,
TEST_NGINX_NO_SHUFFLE, TEST_NGINX_PRELOAD (LD_PRELOAD for nginx only; the
ASAN/UBSAN/LSAN_OPTIONS variables are inherited), TEST_NGINX_USE_VALGRIND,
TEST_NGINX_SLEEP (if set, sleep 3 times that before reading each request's
slice of error.log, as the real runner always does; default: no sleep).
C<$TEST_NGINX_FOO> in config sections, requests, more_headers, user_files
and expected responses and grep_error_log_out is replaced with the
environment value (unknown ones are left alone); error_log, no_error_log and
grep_error_log patterns are taken literally, as in the real runner.
TEST_NGINX_SERVER_PORT and TEST_NGINX_SERVER_ROOT are set by this module,
as by the real one (there is no TEST_NGINX_HTML_DIR in either: nginx runs
with C<-p servroot/>, so C<root html;> is the html dir).

Sections: main_config, http_config, config, request (also C<eval> returning an
array of requests, each sent on its own connection; an element may itself be
an array of packets), more_headers, raw_request (string or array of packets,
sent with raw_request_middle_delay, default 0.05 s, between them),
error_code, error_code_like, response_body, response_body_like,
response_body_unlike, response_headers (C<!Name> = absent),
response_headers_like, raw_response_headers_like/unlike, error_log,
no_error_log, shutdown_error_log, no_shutdown_error_log, grep_error_log,
grep_error_log_out, must_die, wait (slept after every request, before its
log checks), timeout, abort (a timeout is not a failure), ignore_response,
ignore_response_body, user_files, init (Perl run once nginx is up, i.e. its
pid file names our master and the port listens, before the first request;
not for must_die blocks), log_level, skip_nginx, skip_eval, todo.
Expected-response sections may be arrays with one entry per request.

=head1 ERROR LOG CHECKS

As in the real runner, error_log, no_error_log and grep_error_log are
checked after each request of a block, on the slice of F<logs/error.log>
written since the previous request's check (the first slice starts with
nginx's startup). The same patterns apply to every request's slice (they
are not arrays per request), so in a block of several requests an
error_log pattern must be written by every request; a test that wants a
line from one request of many checks it otherwise (t/lib/Engagement/Block.pm
has request_error_log and block_error_log sections for that).
shutdown_error_log and no_shutdown_error_log are checked on what was
written after the last request's slice, once nginx stopped. The automatic
checks below look at the whole block, shutdown included.

=head1 DIFFERENCES FROM THE REAL Test::Nginx::Socket

=over

=item * A fresh nginx (C<daemon off>, direct child, own process group) is
started for every block and repeat, and stopped with SIGQUIT (SIGKILL after
5 s) before the logs are checked, so shutdown-time alerts and sanitizer/leak
reports count for the block. No HUP reloads, no reuse.

=item * The test process makes itself a child subreaper (prctl) and reaps
zombies after each block. nginx gets PR_SET_PDEATHSIG=SIGTERM, so it shuts
down if the test process dies; SIGINT/SIGTERM/SIGPIPE stop nginx first. If a
graceful shutdown (SIGQUIT) takes longer than 5 s (0.5 s after a client
timeout), SIGTERM is sent, then SIGKILL to the whole process group; a
SIGKILL is a test failure. Nothing is ever killed by name.

=item * The block fails automatically (an extra failing test, only emitted
on a problem) when error.log has C<[alert]> or C<[emerg]> (unless the block
expects that level in error_log, or uses must_die), when error.log or the
nginx stderr has C<signal 11>, a *Sanitizer report or C<runtime error:>,
when nginx died during the block or did not exit cleanly, and (valgrind
mode) when a valgrind log reports errors or definite leaks.

=item * Sanitizers: with TEST_NGINX_PRELOAD containing "asan",
C<fast_unwind_on_malloc=0> is appended to nginx's ASAN_OPTIONS unless the
user set it (nginx has no frame pointers, so stacks would stop at
ngx_alloc). A LeakSanitizer report in which every frame of every leak is in
the nginx binary or libc/sanitizer runtime (nginx core's own exit-time
allocations, seen with a stock nginx and a preloaded libasan) does not fail
the block (a note is printed); TEST_NGINX_STRICT_LSAN=1 turns that off.
Any frame from a module .so or a source file keeps the report a failure.

=item * Valgrind (TEST_NGINX_USE_VALGRIND): nginx runs under
C<valgrind --leak-check=full --errors-for-leak-kinds=definite>, with a
built-in suppression for nginx core's own exit-time leaks and, if present,
F<valgrind.suppress> or F<t/valgrind.suppress>; startup may take 30 s and
request timeouts are multiplied by 5.

=item * must_die: the error_log patterns are matched against nginx's stderr
plus error.log; nginx is started normally (not with -t). One test says
whether it died as expected, as in the real runner.

=item * As in the real runner, response_headers_like is ignored in a block
that has response_headers.

=item * Defaults that differ: here C<master_process on> (the real runner:
off unless master_on() or use_hup), worker_connections 1024 (real: 64),
C<listen 127.0.0.1:port> (real: C<listen port>), keepalive_timeout 68 s
(real: 68000 ms). A test that reloads (HUP) or needs several workers calls
master_on() so that it means the same under both.

=item * The real runner prefixes block names with the script's path
(C<t/x.t TEST 1: ...>), evals C<--- init> in its own package (call
C<main::f()>, not C<f()>), bails out on an unknown C<$TEST_NGINX_*> variable,
and refuses to remove a server root that holds anything but conf/, html/,
logs/, *_temp/ and *_cache/: write other files elsewhere (File::Temp).

=item * The response is read until EOF, or until its framing
(Content-Length/chunked) is complete plus 100 ms. Default status expected
is 200, as in the real one.

=item * nginx is started with C<-p servroot/ -c conf/nginx.conf> and, for
nginx E<gt>= 1.19.5, C<-e logs/error.log>.

=item * Not implemented: pipelined_requests, tcp_listen/udp_listen mock
servers, stap, http2/curl, response_body_filters, check_leak, the
HUP/reuse modes, charset, block-level env, error_log_file, stream modules.

=back

=cut
