# The durable writer with its upstream down and its spool's disk full (a
# 1 MB tmpfs of our own, filled up): every batch stays queued (nothing is
# lost, nothing refused while the queue has room), and a worker tries the
# disk again only every retry=, instead of taking the next batch at once
# (the soak measured about 500 failed writes and [alert] lines a second).
# Once the disk has room again, the batches are spooled. Needs root (to
# mount the tmpfs); skipped otherwise, saying so.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket;
use Time::HiRes qw(sleep time);

our $mnt;
if ($> != 0) {
    Test::More::plan(skip_all => 'needs root to mount a small tmpfs for the spool');
} else {
    $mnt = scratch_dir('spool-full');
    if (system('mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', $mnt) != 0) {
        Test::More::plan(skip_all => 'could not mount a tmpfs (a container without the right)');
    } else {
        Test::More::plan('no_plan');
    }
}

END { system('umount', $mnt) if $mnt && $> == 0 }

$ENV{TEST_NGINX_SPOOL} = "$mnt/spool";
$ENV{TEST_NGINX_DEAD_PORT} = free_ports(470, 20, 1);   # nothing listens

master_on();
workers(2);
log_level('info');
no_shuffle();
timeout(10);
add_response_body_check(post_check_hook());

sub alerts { scalar(() = error_log_text() =~ /could not write/g) }

run_tests();

__DATA__

=== TEST 1: a full spool disk: batches stay queued, a worker tries the disk again every retry=, then spools once there is room
--- http_config
    engagement_zone engagement:1m;
    engagement_writer http://127.0.0.1:$TEST_NGINX_DEAD_PORT/ batch=5 interval=100ms
        connect_timeout=300ms timeout=1s retry=1s spool=$TEST_NGINX_SPOOL thread_pool=default;
--- config
    location = /engagement/view { engagement view; }
    location = /status { engagement status; }
--- request
GET /status
--- response_body_like: \nnginx_engagement_writer_queued_events 0\n
--- timeout: 30
--- error_log
[alert]
could not write
--- post_check
    # fill the disk: ballast up to the last few KB
    my $ballast = "$::mnt/ballast";
    open my $fh, '>', $ballast or die $!;
    my $chunk = 'x' x 4096;
    1 while syswrite($fh, $chunk);
    close $fh;
    my $ok = 0;
    for my $i (1 .. 200) {
        my ($st) = http_request(nginx_port(), 'POST', '/engagement/view',
            qq({"contentId":"full","sessionId":"s$i"}), 'Content-Type' => 'application/json');
        $ok++ if ($st // 0) == 202;
    }
    is($ok, 200, "200 views answered 202 while the spool's disk is full");
    ok(wait_until(sub { alerts() > 0 }, 10), "the full disk is logged");
    my $a0 = alerts();
    sleep 4;
    my $a1 = alerts();
    ok($a1 - $a0 <= 12, "at most one write attempt a second per worker: " . ($a1 - $a0) . " failed writes in 4 s");
    like(status_text(), qr/^nginx_engagement_writer_queued_events [1-9]/m, "the events stay queued");
    unlink $ballast;
    ok(wait_until(sub { status_text() =~ /^nginx_engagement_writer_queued_events 0$/m }, 15),
       "with room again, every batch is spooled");
    my @files = glob("$::mnt/spool/*.ndjson");
    my $rows = 0;
    for my $f (@files) { $rows += () = slurp($f) =~ /\n/g }
    is($rows, 200, "the spool holds the 200 events");
