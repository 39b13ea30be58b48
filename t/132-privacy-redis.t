# Guards what leaves the node, against a real redis-server: opted-out
# events (Sec-GPC, "optOut") count as views but add nothing to the
# unique-viewer count, identified viewers do; and no raw viewer id,
# session id or client address appears anywhere in Redis (keys, hash
# fields, values).
#
# The redis-server is ours: started below on a free port (data in a
# private temporary directory), passed to the config as
# $TEST_NGINX_REDIS_PORT, stopped by pid at exit.
use strict;
use warnings;
use FindBin;
# our helpers first: their END (which stops our servers) then runs after
# the runner's END has stopped nginx
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';

our $rport = free_ports(400, 50, 1);
start_redis($rport);
$ENV{TEST_NGINX_REDIS_PORT} = $rport;

master_on();
log_level('info');
no_shuffle();
add_response_body_check(post_check_hook());

run_tests();

__DATA__

=== TEST 1: opted-out views count without a viewer; nothing raw reaches Redis
--- http_config
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms buckets=0 uniques=0;
    engagement_flush_interval 100ms;
--- config
    location = /engagement/view { engagement view; }
    location = /client/view { engagement view; engagement_dedupe_key client; }
    location = /status { engagement status; }
--- request eval
[
"POST /engagement/view\n" . '{"contentId":"p","sessionId":"sess-aaa1","viewerId":"viewer-alice"}',
"POST /engagement/view\n" . '{"contentId":"p","sessionId":"sess-aaa2","viewerId":"viewer-alice"}',
"POST /engagement/view\n" . '{"contentId":"p","sessionId":"sess-bbb1","viewerId":"viewer-bob"}',
"POST /engagement/view\n" . '{"contentId":"p","sessionId":"sess-ccc1","viewerId":"viewer-carol"}',
"POST /engagement/view\n" . '{"contentId":"p","sessionId":"sess-ddd1","viewerId":"viewer-dave","optOut":true}',
"POST /client/view\n" . '{"contentId":"p","sessionId":"sess-eee1"}',
]
--- more_headers eval
[
"Content-Type: application/json",
"Content-Type: application/json",
"Content-Type: application/json",
"Content-Type: application/json\nSec-GPC: 1",
"Content-Type: application/json",
"Content-Type: application/json",
]
--- error_code eval
[202, 200, 202, 202, 202, 202]
--- response_body_like eval
[
qr/"counted":true/,
qr/"reason":"duplicate"/,
qr/"counted":true/,
qr/"counted":true/,
qr/"counted":true/,
qr/"counted":true/,
]
--- post_check
    is(redis_cli($rport, undef, 'PING'), 'PONG', 'redis-server is up');
    wait_until { redis_cli($rport, undef, 'HGET', 'eng:{c:p}', 'views') eq '5' };
    my $views = redis_cli($rport, undef, 'HGET', 'eng:{c:p}', 'views');
    is($views, '5', 'Redis has the 5 views');
    is(redis_cli($rport, undef, 'PFCOUNT', 'eng:{c:p}:uv'), '3',
       'unique viewers: alice, bob and the client, not the opted-out two');

    # everything Redis holds, as text
    my $all = '';
    for my $k (split /\n/, redis_cli($rport, undef, '--scan')) {
        $all .= "$k\n";
        my $type = redis_cli($rport, undef, 'TYPE', $k);
        if ($type eq 'hash') {
            $all .= redis_cli($rport, undef, 'HGETALL', $k) . "\n";
        } elsif ($type eq 'string') {
            $all .= redis_cli($rport, undef, 'GET', $k) . "\n";
        } elsif ($type eq 'zset') {
            $all .= redis_cli($rport, undef, 'ZRANGE', $k, 0, -1) . "\n";
        } elsif ($type eq 'set') {
            $all .= redis_cli($rport, undef, 'SMEMBERS', $k) . "\n";
        }
    }
    ok(length $all, 'Redis holds keys');
    unlike($all, qr/viewer-|sess-|127\.0\.0|alice|bob|carol|dave/,
           'no raw viewer id, session id or address in Redis');
--- no_error_log eval
qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/
--- no_shutdown_error_log eval
qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/
