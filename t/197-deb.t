# The Debian package (issue 17): builds libnginx-mod-http-engagement with
# ./build.sh deb (dh and dh_nginx from nginx-dev), checks what it holds and
# depends on, installs it into the system with apt-get, runs the system
# nginx (/usr/sbin/nginx) with a private prefix and a config that loads
# modules the Debian way (include /etc/nginx/modules-enabled/*.conf), with
# a real redis-server on a free loopback port, posts views and checks that
# they are counted in Redis, stops both by PID, then removes the package
# (the link is renamed .removed, as Debian's module packages do) and
# purges it, and checks that the machine is as it was (no module, no load
# file, the same modules-enabled, no system nginx started). The system's
# own nginx.conf must still pass `nginx -t` with the module enabled.
#
# A plain Test::More file, not Test::Nginx::Socket blocks: Debian's load
# files say "load_module modules/...so;", relative to nginx's prefix, so
# the prefix needs a modules/ link to /usr/lib/nginx/modules (as Debian's
# /usr/share/nginx has), and a runner's servroot may hold no file the
# runner did not make. It uses the suite's helpers (free ports, redis,
# nginx as our own child) and passes under either runner.
#
# Skips (with the reason) when not root, under --asan (the package holds
# the plain build), when dpkg/apt-get or the build tools are missing, or
# when the package is already installed (it is not ours to purge).
# ENGAGEMENT_DEB=path/to.deb tests that file instead of building one.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::More;
use POSIX ();
use Time::HiRes qw(time);

my $PKG = 'libnginx-mod-http-engagement';
my $SO = '/usr/lib/nginx/modules/ngx_http_engagement_module.so';
my $AVAIL = '/usr/share/nginx/modules-available/mod-http-engagement.conf';
my $LINK = '/etc/nginx/modules-enabled/50-mod-http-engagement.conf';
my $NGINX = '/usr/sbin/nginx';
my $ROOT = root_dir();

sub have { my ($c) = @_; return grep { -x "$_/$c" } split /:/, $ENV{PATH} }

sub pkg_status {
    my $s = `dpkg-query -W -f='\${Status}' $PKG 2>/dev/null`;
    return $s // '';
}

# a command's exit status, its output (stdout and stderr) in $out
sub run_cmd {
    my ($out, @cmd) = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        { no warnings 'exec'; exec @cmd; }
        POSIX::_exit(127);
    }
    waitpid($pid, 0);
    return $? >> 8;
}

sub tail_of { my @l = split /\n/, slurp($_[0]); return join "\n", @l[-($_[1] < @l ? $_[1] : @l) .. -1] }

plan skip_all => 'needs root: installs a package into the system'
    unless $> == 0;
plan skip_all => 'the package holds the plain build, not the --asan one'
    if $ENV{TEST_NGINX_ASAN};
for my $c (qw(dpkg dpkg-deb dpkg-query apt-get redis-server)) {
    plan skip_all => "needs $c" unless have($c);
}
plan skip_all => "needs Debian's nginx at $NGINX" unless -x $NGINX;
plan skip_all => "needs the build tools (dpkg-buildpackage, dh_nginx from nginx-dev; ./build.sh deb installs them)"
    unless $ENV{ENGAGEMENT_DEB} || (have('dpkg-buildpackage') && have('dh_nginx'));
plan skip_all => "$PKG is installed already (not ours to purge): "
                 . "dpkg --purge $PKG first to run this test"
    if pkg_status() =~ /installed/;

my $scratch = scratch_dir('deb');
my (%before, $installed, $npid, $rpid);

# the machine as it was
$before{enabled} = join ' ', sort glob '/etc/nginx/modules-enabled/*';
$before{port80} = port_listening(80);
$before{sys_pid} = slurp('/run/nginx.pid') =~ /(\d+)/ ? $1 : 0;
# the system's own configuration (read only: -t opens no socket)
sub system_conf_ok { return run_cmd("$_[0]", $NGINX, '-t', '-q') == 0 }

# whatever happens below, the package does not outlive the test
END {
    my $st = $?;
    stop_nginx($npid) if $npid;
    if ($installed) {
        system('sh', '-c', "DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "
               . "-o DPkg::Lock::Timeout=120 $PKG >/dev/null 2>&1");
    }
    $? = $st;
}

$before{conf_ok} = system_conf_ok("$scratch/system-t0.out");

# --- the package -------------------------------------------------------------

my $deb = $ENV{ENGAGEMENT_DEB};
if (!$deb) {
    my $t0 = time;
    my $rc = run_cmd("$scratch/build.out", 'env', "DEB_OUT=$scratch/out", 'LINTIAN=0',
                     "$ROOT/build.sh", 'deb');
    ok($rc == 0, sprintf('./build.sh deb built the package (%.1f s)', time - $t0))
        or diag(tail_of("$scratch/build.out", 30));
    ($deb) = glob "$scratch/out/${PKG}_*.deb";
}
# no package: nothing more to test here (the rest of the suite goes on)
if (!ok($deb && -f $deb, "the .deb exists")) {
    done_testing();
    exit;
}

my $field = sub { my $v = `dpkg-deb -f '$deb' $_[0]`; chomp $v; $v };
is($field->('Package'), $PKG, 'package name');
my $abi = slurp('/usr/share/nginx/src/debian/libnginx-mod.abisubstvars')
          =~ /^nginx:abi=(\S+)/m ? $1 : 'nginx-abi-?';
my $depends = $field->('Depends');
like($depends, qr/(^|, )\Q$abi\E(,|$)/, "depends on the nginx ABI ($abi)");
like($depends, qr/(^|, )libhiredis0\.14\b/, 'depends on libhiredis0.14');
like($field->('Version'), qr/^\d[\w.+~]*$/, 'a version: ' . $field->('Version'));
my $contents = `dpkg-deb -c '$deb'`;
like($contents, qr{ \./usr/lib/nginx/modules/ngx_http_engagement_module\.so$}m,
     'holds the module where Debian keeps nginx modules');
like($contents, qr{ \./usr/share/nginx/modules-available/mod-http-engagement\.conf$}m,
     'holds the load file');

# --- install -----------------------------------------------------------------

my $rc = run_cmd("$scratch/install.out", 'env', 'DEBIAN_FRONTEND=noninteractive',
                 'RUNLEVEL=1', 'apt-get', 'install', '-y', '-q', '--no-remove',
                 '-o', 'DPkg::Lock::Timeout=120', $deb);
$installed = 1;
ok($rc == 0, 'apt-get install ./the.deb') or diag(tail_of("$scratch/install.out", 20));
like(pkg_status(), qr/install ok installed/, 'dpkg says installed');
ok(-f $SO, "the module is at $SO");
is(readlink($LINK), $AVAIL, "enabled: $LINK -> $AVAIL");
is(slurp($AVAIL), "load_module modules/ngx_http_engagement_module.so;\n",
   'the load file loads the module by the path Debian resolves');

# the install must not have started a system nginx (the dpkg trigger
# reloads one that runs; none is started); one that was started is
# stopped by its pid
my $sys = slurp('/run/nginx.pid') =~ /(\d+)/ ? $1 : 0;
if ($sys && $sys != $before{sys_pid} && kill(0, $sys)) {
    kill 'QUIT', $sys;
    fail("the install started a system nginx (pid $sys, now stopped)");
} else {
    pass('no system nginx started by the install');
}
is(port_listening(80), $before{port80}, 'port 80 as before the install');
SKIP: {
    skip "the system's nginx.conf failed nginx -t before the install", 1
        unless $before{conf_ok};
    ok(system_conf_ok("$scratch/system-t.out"),
       "the system's own nginx.conf still passes nginx -t with the module enabled")
        or diag(slurp("$scratch/system-t.out"));
}

# --- the system nginx loads it the Debian way and counts a view ----------------

my $rport = free_ports(300, 50, 1);
$rpid = start_redis($rport);
ok(redis_cli($rport, undef, 'PING') eq 'PONG', "redis-server on 127.0.0.1:$rport");

my $port = free_port();
my $prefix = "$scratch/prefix";
mkdir $prefix;
mkdir "$prefix/$_" for qw(conf logs temp);
# as /usr/share/nginx/modules, the prefix Debian's nginx is built with
symlink('/usr/lib/nginx/modules', "$prefix/modules") or die "symlink: $!";
open my $fh, '>', "$prefix/conf/nginx.conf" or die $!;
print $fh <<"EOC";
include /etc/nginx/modules-enabled/*.conf;
user root root;
worker_processes 1;
daemon off;
master_process on;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log logs/access.log;
    client_body_temp_path temp/body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
    engagement_zone engagement:4m;
    engagement_dedupe_zone engagement_dedupe:1m;
    engagement_redis 127.0.0.1:$rport timeout=500ms connect_timeout=500ms backoff=50ms:400ms;
    engagement_flush_interval 100ms;
    engagement_edge_id deb-edge;
    server {
        listen 127.0.0.1:$port;
        location = /engagement/view { engagement view; }
        location = /status { engagement status; }
    }
}
EOC
close $fh;

$rc = run_cmd("$scratch/nginx-t.out", $NGINX, '-p', "$prefix/",
              '-c', "$prefix/conf/nginx.conf", '-e', "$prefix/logs/error.log", '-t');
ok($rc == 0, "$NGINX -t accepts the config with the packaged module")
    or diag(slurp("$scratch/nginx-t.out"));

{
    local $ENV{TEST_NGINX_BINARY} = $NGINX;
    $npid = start_nginx($prefix, $port);
}
ok($npid, "$NGINX runs on 127.0.0.1:$port")
    or diag(slurp("$prefix/logs/error.log") . slurp("$prefix/logs/stderr.log"));

SKIP: {
    skip 'nginx did not start', 6 unless $npid;
    my ($w) = wait_until { (worker_pids($npid))[0] } 5;
    like(slurp("/proc/$w/maps"), qr{\Q$SO\E},
         "the worker maps the packaged module ($SO)");

    my @answers = map {
        view_attempt($port, qq({"contentId":"debpkg","viewerId":"u$_",)
                            . qq("sessionId":"s$_","durationMs":40000}))
    } 1 .. 3;
    is_deeply(\@answers, [('counted') x 3], 'three views answered counted');
    my ($st, $body) = post_view($port, '{"contentId":"debpkg"');
    ok($st >= 400 && $st < 500 && $body =~ /"error"/,
       "a broken body: $st with a JSON error") or diag("$st $body");

    my $views = wait_until {
        redis_cli($rport, undef, 'HGET', 'eng:{c:debpkg}', 'views') eq '3'
    } 10;
    ok($views, 'Redis holds 3 views for the content')
        or diag(redis_cli($rport, undef, 'HGETALL', 'eng:{c:debpkg}'));

    my $status = stop_nginx($npid);
    undef $npid;
    is($status, 0, 'nginx stopped by its pid (QUIT), exit 0');
    unlike(slurp("$prefix/logs/error.log"),
           qr/\[alert\]|\[emerg\]|exited on signal/,
           'no alert, emerg or crash in the error log');
}
stop_redis($rpid);

# --- remove, then purge: the machine as it was ---------------------------------

# remove keeps the admin's choice: the link is renamed, not deleted
$rc = run_cmd("$scratch/remove.out", 'env', 'DEBIAN_FRONTEND=noninteractive',
              'apt-get', 'remove', '-y', '-q', '-o', 'DPkg::Lock::Timeout=120', $PKG);
ok($rc == 0, "apt-get remove $PKG") or diag(tail_of("$scratch/remove.out", 20));
ok(!-e $SO && -l "$LINK.removed" && !-e $LINK,
   'removed: no module, the link renamed to .removed');

$rc = run_cmd("$scratch/purge.out", 'env', 'DEBIAN_FRONTEND=noninteractive',
              'apt-get', 'purge', '-y', '-q', '-o', 'DPkg::Lock::Timeout=120', $PKG);
ok($rc == 0, "apt-get purge $PKG") or diag(tail_of("$scratch/purge.out", 20));
$installed = 0 if $rc == 0;
unlike(pkg_status(), qr/installed/, 'dpkg says not installed');
ok(!-e $SO && !-e $AVAIL, 'module and load file gone');
ok(!-l $LINK && !-l "$LINK.removed", 'no link left in modules-enabled');
is(join(' ', sort glob '/etc/nginx/modules-enabled/*'), $before{enabled},
   'modules-enabled as before');

done_testing();
