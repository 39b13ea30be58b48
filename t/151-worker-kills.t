# Guards exactness under worker kills (issue 12, item 3): several clients
# post views with request ids and retry each event until it is answered,
# while workers are killed with SIGKILL again and again (12 times, or
# $DD_KILLS), with a real redis-server (the blocks' http_config is
# dd_redis_http's). Then every event answered counted,
# and every event whose retry was answered duplicate_request, is in the
# totals of the summary and of Redis, and nothing is counted twice.
#
# Before the fix, the request id was marked in the dedupe zone before the
# count was added under the counters zone's lock: a worker killed between
# the two left the event uncounted, and its retry was answered
# duplicate_request. Now the marks stay pending under the dedupe lock
# until the count is added, and are committed under the counters lock.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

our $port = nginx_port();
our $rport;

master_on();
our $nworkers = $ENV{DD_WORKERS} || 4;
workers($nworkers);
log_level('warn');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

add_block_preprocessor(sub {
    my ($block) = @_;
    workers($block->{dd_workers} ? $block->{dd_workers}[0] + 0 : $nworkers);
    $rport = free_ports(300, 50, 1);
    start_redis($rport);
    my $http = dd_redis_http($rport, '4m', 'kill-edge');
    $block->can('set_value') ? $block->set_value(http_config => $http)
                             : ($block->{http_config} = [$http]);
});

# one attempt: 'counted', a not-counted reason, or undef (no answer: the
# connection was cut, refused or timed out, or a 5xx)
sub dd_attempt { view_attempt($port, $_[0], 3) }

# a client: posts its events until $stop exists, each retried until it
# is answered; writes "event content answer tries" lines to $out
sub dd_client {
    my ($n, $stop, $out) = @_;
    open my $fh, '>', $out or POSIX::_exit(1);
    select((select($fh), $| = 1)[0]);
    for (my $i = 1; !-e $stop; $i++) {
        my $id = "e$n-$i";
        my $c = "k" . ($i % 4);
        my $json = qq({"contentId":"$c","viewerId":"u$id","sessionId":"s$id",)
                   . qq("durationMs":40000,"requestId":"r$id"});
        my ($answer, $tries);
        for ($tries = 1; $tries <= 200; $tries++) {
            $answer = dd_attempt($json);
            last if defined $answer;
            sleep 0.01;
        }
        print $fh "$id $c " . ($answer // 'none') . " $tries\n";
        # now and then the same event again, answered: a repeat
        if ($i % 10 == 0 && defined $answer) {
            my $again;
            $again = dd_attempt($json) until defined $again;
            print $fh "again-$id $c $again 1\n";
        }
    }
    close $fh;
    POSIX::_exit(0);
}

# gdb on the only worker: at the first call of one of @syms, the worker
# is killed with SIGKILL (gdb's kill); returns gdb's pid once it waits
sub dd_kill_at {
    my ($out, @syms) = @_;
    my ($w) = worker_pids();
    return gdb_at($w, $out, \@syms, 'kill');
}

sub rtotal {
    my ($c, $field) = @_;
    my $v = redis_cli($rport, undef, 'HGET', "eng:{c:$c}", $field);
    return $v eq '' ? 0 : $v;
}

run_tests();

__DATA__

=== TEST 1: 12 worker kills under load: every event answered counted or duplicate_request is counted, once
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    my $dir = scratch_dir('kills');
    my $stop = "$dir/stop";
    unlink $stop;
    my $clients = 6;
    my @kids;
    for my $n (1 .. $clients) {
        my $pid = fork();
        die "fork: $!" unless defined $pid;
        dd_client($n, $stop, "$dir/client$n") if $pid == 0;
        push @kids, $pid;
    }

    my $kills = $ENV{DD_KILLS} || 12;
    my $killed = 0;
    # let the clients get going, then kill a busy worker each round
    wait_until { -s "$dir/client1" } 10;
    for my $k (1 .. $kills) {
        my @w = worker_pids();
        next unless @w;
        my $victim = $w[int rand @w];
        $killed += kill 'KILL', $victim;
        wait_workers($nworkers, $victim);
        # a pacing: some traffic between two kills
        sleep 0.1 + rand 0.2;
    }
    open my $sf, '>', $stop or die $!;
    close $sf;
    waitpid($_, 0) for @kids;
    ok($killed >= 10, "$killed workers killed with SIGKILL under load");

    my (%expect, %answers, $events, $bad);
    my $retried = 0;
    for my $n (1 .. $clients) {
        open my $fh, '<', "$dir/client$n" or die $!;
        while (<$fh>) {
            my ($id, $c, $answer, $tries) = split;
            $answers{$answer}++;
            if ($id =~ /^again-/) {
                $bad .= "$id: $answer\n" if $answer ne 'duplicate_request';
                next;
            }
            $events++;
            $retried++ if $tries > 1;
            if ($answer eq 'counted' || $answer eq 'duplicate_request') {
                $expect{$c}++;
            } else {
                $bad .= "$id: $answer after $tries tries\n";
            }
        }
    }
    ok($events > 200, "$events events posted, $retried of them retried");
    diag(join ', ', map { "$_: $answers{$_}" } sort keys %answers);
    ok(!defined $bad, "every event answered counted or duplicate_request, "
                      . "every repeat duplicate_request")
        or diag($bad);

    ok(dd_flushed(20), "everything flushed");

    for my $c (map { "k$_" } 0 .. 3) {
        my $want = $expect{$c} // 0;
        my (undef, $sum) = http_request($port, 'GET', "/engagement/summary/$c");
        my ($views, $engaged) = $sum =~ /"views":(\d+),"engagedViews":(\d+)/;
        is($views, $want, "$c: summary views = events answered counted or duplicate_request ($want)");
        is($engaged, $want, "$c: summary engaged views = $want");
        is(rtotal($c, 'views'), $want, "$c: Redis views = $want");
        is(rtotal($c, 'engaged'), $want, "$c: Redis engaged views = $want");
    }
    my $signals = () = error_log_text() =~ /exited on signal 9/g;
    ok($signals >= 10, "the master saw $signals workers die of SIGKILL");
--- error_log
[alert]
exited on signal 9



=== TEST 2: a worker killed between its marks and its count, and between its count and its answer (gdb): the retry counts the first, not the second
--- dd_workers: 1
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    SKIP: {
        skip "no gdb", 13 unless have_gdb();
        my $dir = scratch_dir('gdb');
        # the count (counters_add before the fix); the answer
        my @points = (
            [ 'marks', 'counted',
              'ngx_http_engagement_counters_add_locked',
              'ngx_http_engagement_counters_add' ],
            [ 'answer', 'duplicate_request',
              'ngx_http_engagement_send_json' ],
        );
        for my $p (@points) {
            my ($name, $want, @syms) = @$p;
            my ($old) = worker_pids();
            my $gdb = dd_kill_at("$dir/$name.out", @syms);
            my $json = qq({"contentId":"g-$name","viewerId":"u-$name",)
                       . qq("sessionId":"s-$name","durationMs":40000,)
                       . qq("requestId":"r-$name"});
            my $first = dd_attempt($json);
            gdb_wait($gdb, 30);
            like(slurp("$dir/$name.out"), qr/^Breakpoint \d+(?:\.\d+)?, /m,
                 "$name: the worker stopped at the point");
            ok(!defined $first, "$name: the worker died before answering");
            ok(wait_workers(1, $old), "$name: the master started another");
            my $retry;
            for (1 .. 50) {
                $retry = dd_attempt($json);
                last if defined $retry;
                sleep 0.05;
            }
            is($retry, $want, "$name: the retry is answered $want");
        }
        ok(dd_flushed(20), "everything flushed");
        for my $name (qw(marks answer)) {
            my (undef, $sum) = http_request($port, 'GET', "/engagement/summary/g-$name");
            my ($views) = $sum =~ /"views":(\d+)/;
            is($views, 1, "$name: counted once in the summary");
            is(rtotal("g-$name", 'views'), 1, "$name: counted once in Redis");
        }
    }
--- error_log
[alert]
exited on signal 9
