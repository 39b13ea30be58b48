# engagement_user_id binds the user id a request names to the user the
# operator's authentication says it is (here a map from a bearer token,
# as an auth_request or JWT variable would give): a view or heartbeat
# without an id takes the authenticated user's; a request that names
# another user is refused 403, one that names a user without being
# authenticated 401, each with a JSON error naming the field, and counts
# or stores nothing; an anonymous request (no user named, none
# authenticated) goes on as before. Resume, history, reactions and the
# reaction state are read and written for the authenticated user only.
# A real redis-server (ours, stopped by pid) holds reactions and positions.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use Time::HiRes qw(sleep time);

our $rport = free_ports(520, 50, 1);
start_redis($rport);
$ENV{TEST_NGINX_REDIS_PORT} = $rport;

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
master_on();
workers(2);
add_response_body_check(post_check_hook());

our $HttpConfig = <<'_EOC_';
    engagement_zone engagement:1m;
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s connect_timeout=1s;
    engagement_flush_interval 100ms;
    engagement_reactions like love;
    map $http_authorization $auth_user {
        "Bearer t-alice"   alice;
        "Bearer t-bob"     bob;
        "Bearer t-bad"     "not a valid id!";
        default            "";
    }
    engagement_user_id $auth_user;
_EOC_

our $Loc = <<'_EOC_';
    location = /engagement/view { engagement view; }
    location = /engagement/heartbeat { engagement heartbeat; }
    location = /engagement/like { engagement like; }
    location = /engagement/state { engagement state; }
    location = /engagement/resume { engagement resume; }
    location = /engagement/history { engagement history; }
    location = /status { engagement status; }
    location = /open/view {
        engagement view;
        engagement_user_id off;
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    $block->set_value("config", $Loc) unless defined $block->config;
});

sub req {
    my ($method, $uri, $body, $who) = @_;
    my @h = ('Content-Type' => 'application/json');
    push @h, ('Authorization' => "Bearer t-$who") if $who;
    my ($st, $b) = http_request(nginx_port(), $method, $uri, $body, @h);
    return ($st // 0, $b // '');
}

sub rcli { redis_cli($rport, undef, @_) }

sub ready {
    my $row = 0;
    return wait_until(sub {
        $row = (req('GET', '/engagement/history?userId=alice', undef, 'alice'))[0] == 200 ? $row + 1 : 0;
        $row >= 5 }, 10);
}

run_tests();

stop_redis(redis_pid($rport));

__DATA__

=== TEST 1: views: the authenticated user is the viewer; another viewerId 403, a viewerId without authentication 401, an anonymous view counted
--- request
GET /status
--- response_body_like: nginx_engagement_view_events_total
--- no_error_log
[error]
[alert]
--- post_check
    my ($st, $b) = main::req('POST', '/engagement/view', '{"contentId":"v1","sessionId":"s1"}', 'alice');
    is($st, 202, 'alice views v1 without naming herself: counted');
    ($st, $b) = main::req('POST', '/engagement/view', '{"contentId":"v1","sessionId":"s2"}', 'alice');
    is($st, 200, 'alice again from another session');
    like($b, qr/"reason":"duplicate"/, 'a duplicate: the viewer is alice, whatever the session');
    ($st, $b) = main::req('POST', '/engagement/view', '{"contentId":"v1","sessionId":"s3","viewerId":"alice"}', 'alice');
    like($b, qr/"reason":"duplicate"/, 'naming herself is the same viewer');
    ($st, $b) = main::req('POST', '/engagement/view', '{"contentId":"v1","sessionId":"s4","viewerId":"bob"}', 'alice');
    is($st, 403, 'alice naming bob: 403');
    is($b, qq({"error":"forbidden","field":"viewerId","message":"is not the user the request is authenticated as"}\n), 'the JSON error names viewerId');
    ($st, $b) = main::req('POST', '/engagement/view', '{"contentId":"v1","sessionId":"s5","viewerId":"bob"}');
    is($st, 401, 'naming bob without authentication: 401');
    is($b, qq({"error":"unauthenticated","field":"viewerId","message":"names a user, but the request is not authenticated"}\n), 'the JSON error says so');
    ($st, $b) = main::req('POST', '/engagement/view', '{"contentId":"v1","sessionId":"s6","viewerId":"bob"}', 'bad');
    is($st, 401, 'an authenticated value that is not a valid id is no authentication');
    ($st, $b) = main::req('POST', '/engagement/view', '{"contentId":"v1","sessionId":"s7"}');
    is($st, 202, 'an anonymous view (no user named, none authenticated) counts');
    ($st, $b) = main::req('POST', '/engagement/view', '{"contentId":"v1","sessionId":"s8"}', 'bob');
    is($st, 202, 'bob counts');
    ($st, $b) = main::req('POST', '/open/view', '{"contentId":"v1","sessionId":"s9","viewerId":"carol"}');
    is($st, 202, 'engagement_user_id off in a location turns the binding off there');
    like(error_log_text(), qr/engagement_user_id is "not a valid id!", not a valid id/, 'the bad value is logged');
    my $t = status_text();
    like($t, qr/^nginx_engagement_counted_total\{zone="engagement",metric="view"\} 4$/m,
         '4 views counted: alice, the anonymous one, bob, carol on /open; no refused one');
    like($t, qr/^nginx_engagement_refused_total\{zone="engagement",reason="invalid"\} 3$/m, 'the 3 refusals are counted as refused, invalid');

=== TEST 2: reactions and their state for the authenticated user only
--- request
GET /status
--- response_body_like: nginx_engagement_view_events_total
--- no_error_log
[error]
[alert]
--- post_check
    ok(main::ready(), 'the workers reach Redis');
    my ($st, $b) = main::req('POST', '/engagement/like', '{"contentId":"r1","userId":"alice","reaction":"love"}', 'alice');
    is($st, 200, 'alice loves r1');
    ($st, $b) = main::req('POST', '/engagement/like', '{"contentId":"r1","userId":"bob","reaction":"like"}', 'alice');
    is($st, 403, 'alice reacting as bob: 403');
    like($b, qr/"field":"userId"/, 'naming userId');
    ($st, $b) = main::req('DELETE', '/engagement/like', '{"contentId":"r1","userId":"alice"}', 'bob');
    is($st, 403, 'bob removing alice\'s reaction: 403');
    ($st, $b) = main::req('POST', '/engagement/like', '{"contentId":"r1","userId":"alice","reaction":"like"}');
    is($st, 401, 'a reaction naming alice without authentication: 401');
    ($st, $b) = main::req('GET', '/engagement/state?contentId=r1&userId=alice', undef, 'alice');
    is($st, 200, 'alice reads her state');
    like($b, qr/"reaction":"love"/, 'her reaction is still love');
    like($b, qr/"love":1\b/, 'one love, the refused ones changed nothing');
    ($st, $b) = main::req('GET', '/engagement/state?contentId=r1&userId=alice', undef, 'bob');
    is($st, 403, 'bob reading alice\'s state: 403');
    is(main::rcli('HGET', 'eng:{c:r1}', 'like') || 0, 0, 'no like in Redis from the refused requests');

=== TEST 3: positions, resume and history: written from heartbeats for the authenticated user, read and deleted by that user only
--- request
GET /status
--- response_body_like: nginx_engagement_view_events_total
--- no_error_log
[error]
[alert]
--- post_check
    ok(main::ready(), 'the workers reach Redis');
    my ($st, $b) = main::req('POST', '/engagement/heartbeat', '{"contentId":"h1","sessionId":"hs1","positionMs":7000,"state":"playing"}', 'alice');
    is($st, 200, 'a heartbeat of alice without userId');
    ($st, $b) = main::req('POST', '/engagement/heartbeat', '{"contentId":"h1","sessionId":"hs2","positionMs":9000,"state":"playing","userId":"alice"}', 'bob');
    is($st, 403, 'bob writing alice\'s position: 403');
    ($st, $b) = main::req('POST', '/engagement/heartbeat', '{"contentId":"h1","sessionId":"hs3","positionMs":9000,"state":"playing","userId":"alice"}');
    is($st, 401, 'a position for alice without authentication: 401');
    ($st, $b) = main::req('GET', '/engagement/resume?contentId=h1&userId=alice', undef, 'alice');
    is($st, 200, 'alice reads her position');
    like($b, qr/"positionMs":7000,/, 'the position is her heartbeat\'s, not the refused ones\'');
    ($st, $b) = main::req('GET', '/engagement/resume?contentId=h1&userId=alice', undef, 'bob');
    is($st, 403, 'bob reading alice\'s position: 403');
    ($st, $b) = main::req('GET', '/engagement/resume?contentId=h1&userId=alice');
    is($st, 401, 'without authentication: 401');
    ok(wait_until(sub { (main::req('GET', '/engagement/history?userId=alice', undef, 'alice'))[1] =~ /"contentId":"h1"/ }, 5),
       'alice\'s history has h1');
    ($st, $b) = main::req('GET', '/engagement/history?userId=alice', undef, 'bob');
    is($st, 403, 'bob reading alice\'s history: 403');
    ($st, $b) = main::req('DELETE', '/engagement/history?userId=alice', undef, 'bob');
    is($st, 403, 'bob deleting alice\'s history: 403');
    ($st, $b) = main::req('DELETE', '/engagement/history?userId=alice', undef, 'alice');
    is($st, 200, 'alice deletes her history');
    ($st, $b) = main::req('GET', '/engagement/history?userId=alice', undef, 'alice');
    unlike($b, qr/"contentId":"h1"/, 'and it is gone');

=== TEST 4: engagement_user_id with an empty value everywhere is no authentication: a view naming a viewer is refused 401
--- http_config
    engagement_zone engagement:1m;
    engagement_user_id $http_x_no_such_header;
--- config
    location = /engagement/view { engagement view; }
--- request
POST /engagement/view
{"contentId":"x","sessionId":"s","viewerId":"u"}
--- more_headers
Content-Type: application/json
--- error_code: 401
--- response_body
{"error":"unauthenticated","field":"viewerId","message":"names a user, but the request is not authenticated"}
--- no_error_log
[error]

=== TEST 5: engagement_user_id with an empty value fails nginx -t
--- http_config
    engagement_zone engagement:1m;
    engagement_user_id "";
--- config
    location = /engagement/view { engagement view; }
--- must_die
--- error_log
"engagement_user_id" directive needs a value (a variable your authentication sets) or off

=== TEST 6: interaction events: another viewerId 403, naming nobody takes the authenticated user
--- http_config
    engagement_zone engagement:1m;
    engagement_interaction share_button;
    map $http_authorization $auth_user {
        "Bearer t-alice"   alice;
        default            "";
    }
    engagement_user_id $auth_user;
--- config
    location = /engagement/event { engagement event; }
--- request eval
[ "POST /engagement/event\n" . '{"contentId":"e1","name":"share_button","viewerId":"bob"}',
  "POST /engagement/event\n" . '{"contentId":"e1","name":"share_button"}' ]
--- more_headers
Content-Type: application/json
Authorization: Bearer t-alice
--- error_code eval
[403, 202]
--- response_body eval
[ qq({"error":"forbidden","field":"viewerId","message":"is not the user the request is authenticated as"}\n),
  qq({"counted":true,"contentId":"e1","type":"click","name":"share_button"}\n) ]
--- no_error_log
[error]
