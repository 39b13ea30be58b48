package Engagement::Block;

# Helpers for Test::Nginx::Socket files that must run the same under the
# bundled runner (t/lib/Test/Nginx/Socket.pm) and the real one
# (openresty/test-nginx). Load it after Test::Nginx::Socket:
#
#     use Test::Nginx::Socket 'no_plan';
#     use FindBin;
#     use lib "$FindBin::Bin/lib";
#     use Engagement::Block;
#
# Both runners start a fresh nginx for each block in their server root
# (server_root()), with its log in logs/error.log and the master's pid in
# logs/nginx.pid; everything here reads those and nothing else.
#
#   request_error_log_section()  registers the "--- request_error_log eval"
#       section: an array with one entry per request (undef, a pattern, or
#       an array of patterns: strings match literally, qr// as regexps);
#       each pattern must be in the part of error.log written since the
#       previous request's check (waits for it: a line may come after the
#       answer, e.g. "client prematurely closed connection").
#   block_error_log_section()  registers "--- block_error_log": patterns
#       (lines, or an eval array) that must be somewhere in the error.log of
#       the whole block, checked after its last request (waits for them):
#       for a line some request of many writes, no matter which.
#   master_pid()          the running master's pid (waits for the pid file)
#   workers_of($pid)      the live children of $pid (its worker processes)
#   reload(edit => sub { my $conf = shift; ...; return $conf }, probe => $uri)
#                         rewrites the running nginx.conf through edit
#                         (from the text the block started with), sends
#                         HUP, then waits until $uri answers 200 and the old
#                         workers are gone; returns (probe ok, old gone,
#                         [old worker pids]).
#                         Without probe it returns after the HUP.
#   wait_until($code, $secs)  polls $code until true; returns its value
#   error_log_text($from) error.log from byte $from
#   http($method, $uri, $body, %headers)  one request to the block's nginx
#                         on its own connection: (status, body, headers)

use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET ();
use Time::HiRes ();

our @EXPORT = qw(request_error_log_section block_error_log_section
                 master_pid workers_of reload reload_reset wait_until
                 error_log_text error_log_path http);

# sanitizer builds start and answer slowly
my $Slow = $ENV{TEST_NGINX_ASAN} || $ENV{TEST_NGINX_USE_VALGRIND} ? 5 : 1;

sub error_log_path { Test::Nginx::Socket::server_root() . '/logs/error.log' }

sub error_log_text {
    my ($from) = @_;
    open my $fh, '<:raw', error_log_path() or return '';
    seek $fh, $from, 0 if $from;
    local $/;
    my $s = <$fh>;
    return defined $s ? $s : '';
}

sub wait_until {
    my ($code, $secs) = @_;
    my $deadline = Time::HiRes::time() + ($secs // 5) * $Slow;
    while (1) {
        my $v = $code->();
        return $v if $v;
        return $v if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.01);
    }
}

# the master's pid, once it wrote its pid file and still runs
sub master_pid {
    my $f = Test::Nginx::Socket::server_root() . '/logs/nginx.pid';
    return wait_until(sub {
        open my $fh, '<', $f or return 0;
        my ($pid) = (<$fh> // '') =~ /^(\d+)/;
        return $pid && kill(0, $pid) ? $pid : 0;
    });
}

sub workers_of {
    my ($ppid) = @_;
    my @kids;
    opendir my $dh, '/proc' or return ();
    for my $pid (grep { /^\d+\z/ } readdir $dh) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $st = <$fh> // next;
        $st =~ s/\A.*\)\s+//s;               # after "pid (comm) "
        my ($state, $parent) = split ' ', $st;
        push @kids, $pid if $parent == $ppid && $state ne 'Z' && $state ne 'X';
    }
    return @kids;
}

my %Conf;    # block name => nginx.conf as the block started it

sub reload {
    my (%o) = @_;
    my $file = Test::Nginx::Socket::server_root() . '/conf/nginx.conf';
    my $block = $o{block} // '';
    if (!defined $Conf{$block}) {
        open my $in, '<', $file or die "$file: $!";
        local $/;
        $Conf{$block} = <$in>;
    }
    my $conf = $o{edit} ? $o{edit}->($Conf{$block}) : $Conf{$block};
    open my $out, '>', "$file.new" or die "$file.new: $!";
    print {$out} $conf;
    close $out or die "$file.new: $!";
    rename "$file.new", $file or die "$file: $!";
    my $master = master_pid() or return (0, 0);
    my @old = workers_of($master);
    kill 'HUP', $master;
    return (1, 1, \@old) unless defined $o{probe};
    my $served = wait_until(sub { (http('GET', $o{probe}))[0] == 200 });
    my $gone = wait_until(sub {
        my %now = map { $_ => 1 } workers_of($master);
        return !grep { $now{$_} } @old;
    }, 10);
    return ($served ? 1 : 0, $gone ? 1 : 0, \@old);
}

# forget the configurations of a block (call at its first request)
sub reload_reset { %Conf = () }

sub http {
    my ($method, $uri, $body, %h) = @_;
    my $port = Test::Nginx::Socket::server_port();
    local $SIG{PIPE} = 'IGNORE';    # nginx may close first; that is an answer
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 5 * $Slow)
        or return (0, "connect: $!", {});
    my $req = "$method $uri HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    $req .= "$_: $h{$_}\r\n" for sort keys %h;
    $req .= 'Content-Length: ' . length($body) . "\r\n" if defined $body;
    $req .= "\r\n" . ($body // '');
    print {$s} $req;
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($head, $rb) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    my %hdr;
    for (split /\r\n/, $head // '') { $hdr{lc $1} = $2 if /^([^:]+):\s*(.*)$/ }
    return ($status // 0, $rb // '', \%hdr);
}

# --- request_error_log ----------------------------------------------------

my $LogPos = 0;    # end of what the previous request's check consumed

sub _section {
    my ($block, $name) = @_;
    return $block->can($name) ? $block->$name : undef;
}

sub _check_request_error_log {
    my ($block, $body, $req_idx) = @_;
    my $spec = _section($block, 'request_error_log');
    return unless defined $spec;
    die $block->name . ": --- request_error_log must be an eval array\n"
        unless ref $spec eq 'ARRAY';
    $LogPos = 0 if $req_idx == 0;    # a fresh nginx and error.log per block
    my $want = $spec->[$req_idx];
    my @pats = !defined $want ? () : ref $want eq 'ARRAY' ? @$want : ($want);
    my $match = sub {
        my ($text, $p) = @_;
        return ref $p eq 'Regexp' ? $text =~ $p : index($text, $p) >= 0;
    };
    my $text = '';
    wait_until(sub {
        $text = error_log_text($LogPos);
        $text = substr($text, 0, rindex($text, "\n") + 1);   # whole lines
        return !grep { !$match->($text, $_) } @pats;
    }, @pats ? 5 : 0);
    $LogPos += length $text;
    my $name = $block->name;
    for my $p (@pats) {
        Test::More::ok($match->($text, $p),
            "$name - pattern \"$p\" matches a line in error.log (request $req_idx)")
            or Test::More::diag("error.log of request $req_idx:\n$text");
    }
}

sub _requests {
    my ($block) = @_;
    my $r = _section($block, 'request');
    return ref $r eq 'ARRAY' ? scalar @$r : 1;
}

# --- block_error_log: patterns that must be somewhere in the error.log of
# the whole block (startup included), checked after its last request
sub _check_block_error_log {
    my ($block, $body, $req_idx) = @_;
    my $spec = _section($block, 'block_error_log');
    return unless defined $spec && $req_idx == _requests($block) - 1;
    my @pats = ref $spec eq 'ARRAY' ? @$spec
             : ref $spec ? ($spec) : grep { /\S/ } split /\n/, $spec;
    my $match = sub {
        my ($text, $p) = @_;
        return ref $p eq 'Regexp' ? $text =~ $p : index($text, $p) >= 0;
    };
    my $text = '';
    wait_until(sub {
        $text = error_log_text(0);
        return !grep { !$match->($text, $_) } @pats;
    }, 5);
    my $name = $block->name;
    for my $p (@pats) {
        Test::More::ok($match->($text, $p),
            "$name - pattern \"$p\" matches a line in the error.log of the block")
            or Test::More::diag("error.log:\n$text");
    }
}

sub request_error_log_section {
    Test::Nginx::Socket::add_response_body_check(\&_check_request_error_log);
}

sub block_error_log_section {
    Test::Nginx::Socket::add_response_body_check(\&_check_block_error_log);
}

1;
