# Guards creator milestones (issue 15): engagement_milestone thresholds are
# decided in Redis by the script that applies a count, so each threshold
# of a content notifies exactly once under concurrent traffic from two
# edges (nginx "a", the test's, and "b", started here, on one real
# redis-server): one entry in the stream eng:milestones and one PUBLISH
# per notification (a round that crosses several thresholds names them
# all in one); likes that go down and up again across a threshold do not
# notify twice; PUBLISHes over engagement_milestone_publish's rate= in a
# minute are kept in the stream only; the directives' errors fail nginx -t.
#
# The redis-server, edge b and the subscriber (redis-cli SUBSCRIBE, its
# output in a private file) are ours, stopped by pid.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes qw(sleep time);
use POSIX qw(WNOHANG);

our $rport = free_ports(400, 50, 1);
start_redis($rport);
$ENV{TEST_NGINX_REDIS_PORT} = $rport;

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
master_on();
workers(2);
add_response_body_check(post_check_hook());

our $Milestones = <<'_EOC_';
    engagement_milestone views 10 50 100;
    engagement_milestone likes 3;
_EOC_

our $HttpConfig = <<'_EOC_';
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms;
    engagement_flush_interval 100ms;
    engagement_edge_id edge-a;
_EOC_

our $Loc = <<'_EOC_';
    location = /engagement/view { engagement view; }
    location = /engagement/like { engagement like; }
    location = /status { engagement status; }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("config", $Loc) unless defined $block->config;
    $block->set_value("no_error_log", "[error]\n[alert]\nexited on signal\nAddressSanitizer\nLeakSanitizer\nruntime error")
        unless defined $block->no_error_log || $block->must_die;
});

# edge "b": a second nginx on the same Redis, with the same milestones
our ($BPort, $BPid);
sub start_b {
    my ($http) = @_;
    my $prefix = new_prefix('edge-b-ms');
    $BPort = free_ports(450, 50, 1);
    write_conf($prefix, port => $BPort, workers => 2, http => qq(
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$rport timeout=500ms connect_timeout=500ms;
    engagement_flush_interval 100ms;
    engagement_edge_id edge-b;
    $http
), server => q(
    location = /engagement/view { engagement view; }
    location = /engagement/like { engagement like; }
));
    $BPid = start_nginx($prefix, $BPort) or die "edge b did not start";
    return $prefix;
}

# a subscriber of a channel: redis-cli's output, one CSV line a message
our ($SubPid, $SubFile);
sub subscribe {
    my ($channel) = @_;
    $SubFile = scratch_dir('ms-sub') . "/out.csv";
    unlink $SubFile;
    $SubPid = fork() // die;
    if ($SubPid == 0) {
        open STDOUT, '>', $SubFile or die;
        open STDERR, '>', '/dev/null';
        exec 'redis-cli', '-p', $rport, '--csv', 'SUBSCRIBE', $channel;
        exit 127;
    }
    # subscribed once redis-cli printed the subscribe reply
    wait_until { -s $SubFile } 5;
}

sub unsubscribe {
    return unless $SubPid;
    kill 'TERM', $SubPid;
    waitpid($SubPid, 0);
    undef $SubPid;
}

sub messages {
    my @m;
    for (split /\n/, slurp($SubFile)) {
        push @m, $1 if /^"message","[^"]*","(.*)"$/;
    }
    s/\\"/"/g for @m;
    return @m;
}

# the stream's entries as hashes of their fields
sub stream_entries {
    my $out = redis_cli($rport, undef, 'XRANGE', 'eng:milestones', '-', '+');
    my (@e, $cur);
    my @l = split /\n/, $out;
    while (@l) {
        my $x = shift @l;
        if ($x =~ /^\d+-\d+$/) {
            $cur = {};
            push @e, $cur;
            next;
        }
        my $v = shift @l;
        $cur->{$x} = $v if $cur;
    }
    return @e;
}

sub view {
    my ($port, $c, $s) = @_;
    my ($st) = http_request($port, 'POST', '/engagement/view',
        qq({"contentId":"$c","sessionId":"$s"}), 'Content-Type' => 'application/json');
    return $st;
}

sub like_req {
    my ($port, $method, $c, $u) = @_;
    my ($st) = http_request($port, $method, '/engagement/like',
        qq({"contentId":"$c","userId":"$u"}), 'Content-Type' => 'application/json');
    return $st;
}

run_tests();

__DATA__

=== TEST 1: two edges, 4 clients at once: each views threshold of a content notifies exactly once; likes down and up across a threshold notify once
--- http_config eval
$::HttpConfig . $::Milestones
--- request
GET /status
--- error_code: 200
--- post_check
    redis_cli($rport, undef, 'DEL', 'eng:milestones');
    main::subscribe('eng:milestones');
    my $prefix = main::start_b($main::Milestones);
    my $A = nginx_port();
    my $B = $main::BPort;

    # 4 clients, 2 on each edge, 30 distinct sessions each: 120 views
    my @kids;
    for my $k (0 .. 3) {
        my $pid = fork() // die;
        if ($pid == 0) {
            my $bad = 0;
            for my $i (1 .. 30) {
                $bad++ unless main::view($k % 2 ? $B : $A, 'mv1', "s$k-$i") == 202;
            }
            POSIX::_exit($bad ? 1 : 0);
        }
        push @kids, $pid;
    }
    my $bad = 0;
    for (@kids) { waitpid($_, 0); $bad++ if $? }
    Test::More::is($bad, 0, 'TEST 1 - 120 views from 4 clients on two edges, all counted');
    Test::More::ok(main::wait_until(sub {
        redis_cli($rport, undef, 'HGET', 'eng:{c:mv1}', 'views') eq '120' }, 10),
        'TEST 1 - Redis holds 120 views of mv1');

    # likes: u1, u2, u3 (3: a milestone), u3 takes it back (2), likes again (3)
    my @codes = (main::like_req($A, 'POST', 'ml1', 'u1'), main::like_req($B, 'POST', 'ml1', 'u2'),
                 main::like_req($A, 'POST', 'ml1', 'u3'), main::like_req($B, 'DELETE', 'ml1', 'u3'),
                 main::like_req($A, 'POST', 'ml1', 'u3'));
    Test::More::is("@codes", '200 200 200 200 200', 'TEST 1 - five like requests answered 200');

    my @e;
    main::wait_until(sub { @e = main::stream_entries(); (grep { $_->{metric} eq 'likes' } @e) && (grep { $_->{threshold} eq '100' } @e) }, 5);
    my @views = grep { $_->{contentId} eq 'mv1' && $_->{metric} eq 'views' } @e;
    my %crossed;
    for my $x (@views) {
        $crossed{$_}++ for ($x->{json} =~ /"crossed":\[([\d,]+)\]/ ? split(/,/, $1) : ());
    }
    Test::More::is(join(',', map { "$_=$crossed{$_}" } sort { $a <=> $b } keys %crossed), '10=1,50=1,100=1',
        'TEST 1 - thresholds 10, 50 and 100 of mv1 each notified exactly once (in ' . scalar(@views) . ' entries)');
    Test::More::is(scalar(grep { $_->{threshold} eq '100' } @views), 1, 'TEST 1 - one entry names 100');
    Test::More::is(redis_cli($rport, undef, 'HGET', 'eng:{c:mv1}', 'ms:views'), '100',
        "TEST 1 - mv1's mark is its highest threshold notified");
    my @likes = grep { $_->{metric} eq 'likes' } @e;
    Test::More::is(scalar(@likes), 1, 'TEST 1 - the likes threshold 3 notified once, though crossed twice');
    Test::More::is($likes[0]{contentId} // '', 'ml1', 'TEST 1 - for ml1');
    Test::More::is(scalar(@e), @views + 1, 'TEST 1 - no other entry in the stream');

    # every entry was published (well under the default 60 a minute)
    main::wait_until(sub { scalar(main::messages()) >= @e }, 3);
    my @m = main::messages();
    Test::More::is(scalar(@m), scalar(@e), 'TEST 1 - one message published per entry (' . scalar(@m) . ')');
    Test::More::like($m[0] // '', qr/^\{.*"contentId":"mv1".*\}$/, 'TEST 1 - a message is the JSON notification');
    Test::More::is(scalar(grep { $_->{published} eq '1' } @e), scalar(@e), 'TEST 1 - every entry says published');

    # more views beyond the last threshold notify nothing
    Test::More::is(main::view($A, 'mv1', 'late-1'), 202, 'TEST 1 - one more view');
    Test::More::ok(main::wait_until(sub {
        redis_cli($rport, undef, 'HGET', 'eng:{c:mv1}', 'views') eq '121' }, 5), 'TEST 1 - flushed');
    Test::More::is(scalar(main::stream_entries()), scalar(@e), 'TEST 1 - no new entry past the last threshold');

    main::unsubscribe();
    stop_nginx($main::BPid);

=== TEST 2: over rate= in a minute, notifications go to the stream only
--- http_config
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms;
    engagement_flush_interval 100ms;
    engagement_milestone views 1;
    engagement_milestone_publish eng:ms:test rate=2;
--- request
GET /status
--- error_code: 200
--- post_check
    # all four in one minute: start early in a minute
    my $sec = (gmtime)[0];
    sleep(61 - $sec) if $sec > 45;
    redis_cli($rport, undef, 'DEL', 'eng:milestones');
    main::subscribe('eng:ms:test');
    my $A = nginx_port();
    for my $c (1 .. 4) {
        main::view($A, "rate$c", 's1');
        main::wait_until(sub { redis_cli($rport, undef, 'HGET', "eng:{c:rate$c}", 'views') eq '1' }, 5);
    }
    my @e = main::stream_entries();
    Test::More::is(scalar(@e), 4, 'TEST 2 - 4 contents crossed 1 view: 4 entries in the stream');
    Test::More::is(join(',', map { $_->{published} } @e), '1,1,0,0', 'TEST 2 - the first 2 were published, the others not');
    main::wait_until(sub { scalar(main::messages()) >= 2 }, 3);
    sleep 0.3;
    Test::More::is(scalar(main::messages()), 2, 'TEST 2 - 2 messages on the channel');
    main::unsubscribe();

=== TEST 3: engagement_milestone needs engagement_redis
--- http_config
    engagement_milestone views 10;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
engagement_milestone and engagement_milestone_publish need engagement_redis

=== TEST 4: thresholds must increase
--- http_config eval
$::HttpConfig . "engagement_milestone views 10 10;"
--- must_die
--- error_log
engagement_milestone: thresholds must increase ("10" after 10)

=== TEST 5: an unknown metric
--- http_config eval
$::HttpConfig . "engagement_milestone shares 10;"
--- must_die
--- error_log
engagement_milestone: unknown metric "shares" (views or likes)

=== TEST 6: a threshold that is not a whole number
--- http_config eval
$::HttpConfig . "engagement_milestone likes 1k;"
--- must_die
--- error_log
engagement_milestone: invalid threshold "1k"

=== TEST 7: publish without any threshold
--- http_config eval
$::HttpConfig . "engagement_milestone_publish chan;"
--- must_die
--- error_log
engagement_milestone_publish without engagement_milestone

=== TEST 8: a bad rate
--- http_config eval
$::HttpConfig . "engagement_milestone views 5; engagement_milestone_publish chan rate=0;"
--- must_die
--- error_log
engagement_milestone_publish: invalid "rate=0"

=== TEST 9: a metric given twice
--- http_config eval
$::HttpConfig . "engagement_milestone views 5; engagement_milestone views 6;"
--- must_die
--- error_log
engagement_milestone views is duplicate

=== TEST 10: likes milestones need the reaction type "like"
--- http_config eval
$::HttpConfig . "engagement_reactions love wow; engagement_milestone likes 5;"
--- must_die
--- error_log
engagement_milestone likes counts the reaction "like", which engagement_reactions does not name
