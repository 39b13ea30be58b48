# Guards the heartbeat endpoint (issue 15): a player's liveness ping is
# accepted once per session (repeats change nothing), answers the
# content's live viewers with the interval players should keep; malformed
# heartbeats get a 4xx naming the field and change nothing; heartbeats
# pass the view path's protection (rate limits, tokens, bots, opt-out);
# and the live directives' mistakes are refused at nginx -t.
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';

add_response_body_check(post_check_hook());
repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
workers(2);

our $Secret = 'heartbeat-test-secret-0123456789';

our $HttpConfig = <<"_EOC_";
    engagement_zone engagement:1m;
    engagement_live_zone 256k;
    engagement_token_secret $Secret;
    engagement_limit_zone hb_ip:1m;
_EOC_

our $Loc = <<'_EOC_';
    location = /engagement/heartbeat {
        engagement heartbeat;
    }
    location /engagement/live {
        engagement live;
    }
    location = /token/heartbeat {
        engagement heartbeat;
        engagement_require_token on;
    }
    location = /drop/heartbeat {
        engagement heartbeat;
        engagement_opt_out drop;
    }
    location = /limited/heartbeat {
        engagement heartbeat;
        engagement_limit zone=hb_ip key=$binary_remote_addr rate=1r/m burst=1;
    }
    location = /mint {
        engagement_token_bind $arg_c $arg_s;
        return 200 "$engagement_token\n";
    }
_EOC_

sub hb { my ($body, $path) = @_; return "POST " . ($path // '/engagement/heartbeat') . "\n$body" }
sub live { return "GET /engagement/live?contentId=$_[0]" }
sub ok_body {
    my ($c, $live) = @_;
    return qq({"counted":true,"contentId":"$c","live":$live,"peak":$live,"intervalMs":10000}\n);
}
sub live_body { return qq({"contentId":"$_[0]","live":$_[1],"peak":$_[1]}\n) }
sub field_err {
    my ($field, $msg) = @_;
    return qq({"error":"invalid_field","field":"$field","message":"$msg"}\n);
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    $block->set_value("config", $Loc) unless defined $block->config;
    $block->set_value("more_headers", "Content-Type: application/json")
        unless defined $block->more_headers;
    $block->set_value("no_error_log", "[error]\n[alert]\nexited on signal\nAddressSanitizer\nLeakSanitizer\nruntime error")
        unless defined $block->no_error_log;
});

run_tests();

__DATA__

=== TEST 1: a heartbeat is accepted: 200, the content's live viewers, the interval
--- request eval
[ main::hb('{"contentId":"c1","sessionId":"s1","positionMs":1500,"state":"playing"}'),
  main::live('c1') ]
--- error_code eval
[200, 200]
--- response_body eval
[ main::ok_body('c1', 1), main::live_body('c1', 1) ]
--- response_headers eval
[ "Content-Type: application/json\nCache-Control: no-store",
  "Content-Type: application/json\nCache-Control: no-store" ]

=== TEST 2: idempotent: the same session again (any state, any position) is still one viewer
--- request eval
[ main::hb('{"contentId":"c2","sessionId":"s1","positionMs":0}'),
  main::hb('{"contentId":"c2","sessionId":"s1","positionMs":0}'),
  main::hb('{"contentId":"c2","sessionId":"s1","positionMs":9000,"state":"paused"}'),
  main::hb('{"contentId":"c2","sessionId":"s1","state":"buffering"}'),
  main::live('c2') ]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_body eval
[ main::ok_body('c2', 1), main::ok_body('c2', 1), main::ok_body('c2', 1),
  main::ok_body('c2', 1), main::live_body('c2', 1) ]

=== TEST 3: other sessions add up; a session that moves to other content moves its viewer
--- request eval
[ main::hb('{"contentId":"c3","sessionId":"a"}'),
  main::hb('{"contentId":"c3","sessionId":"b"}'),
  main::hb('{"contentId":"c3","sessionId":"c"}'),
  main::hb('{"contentId":"c3b","sessionId":"c"}'),
  main::live('c3'), main::live('c3b'), main::live('never') ]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200]
--- response_body eval
[ main::ok_body('c3', 1), main::ok_body('c3', 2), main::ok_body('c3', 3),
  qq({"counted":true,"contentId":"c3b","live":1,"peak":1,"intervalMs":10000}\n),
  qq({"contentId":"c3","live":2,"peak":3}\n), main::live_body('c3b', 1),
  main::live_body('never', 0) ]

=== TEST 4: missing or malformed ids: 400 naming the field, nothing recorded
--- request eval
[ main::hb('{"sessionId":"s"}'),
  main::hb('{"contentId":"c4"}'),
  main::hb('{"contentId":"c 4","sessionId":"s"}'),
  main::hb('{"contentId":"c4","sessionId":""}'),
  main::hb('{"contentId":4,"sessionId":"s"}'),
  main::hb('{"contentId":"c4","sessionId":"s","viewerId":"a/b"}'),
  main::hb('{"contentId":"' . ('x' x 129) . '","sessionId":"s"}'),
  main::live('c4') ]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 200]
--- response_body eval
[ main::field_err('contentId', 'is required'),
  main::field_err('sessionId', 'is required'),
  main::field_err('contentId', 'must be 1-128 bytes of [A-Za-z0-9._:-]'),
  main::field_err('sessionId', 'must be 1-128 bytes of [A-Za-z0-9._:-]'),
  main::field_err('contentId', 'must be a string of 1-128 bytes of [A-Za-z0-9._:-]'),
  main::field_err('viewerId', 'must be 1-128 bytes of [A-Za-z0-9._:-]'),
  main::field_err('contentId', 'must be 1-128 bytes of [A-Za-z0-9._:-]'),
  main::live_body('c4', 0) ]

=== TEST 5: malformed positionMs, state, token, optOut: 400 naming the field, nothing recorded
--- request eval
[ main::hb('{"contentId":"c5","sessionId":"s","positionMs":"10"}'),
  main::hb('{"contentId":"c5","sessionId":"s","positionMs":-1}'),
  main::hb('{"contentId":"c5","sessionId":"s","positionMs":1.5}'),
  main::hb('{"contentId":"c5","sessionId":"s","positionMs":9007199254740992}'),
  main::hb('{"contentId":"c5","sessionId":"s","state":"stopped"}'),
  main::hb('{"contentId":"c5","sessionId":"s","state":1}'),
  main::hb('{"contentId":"c5","sessionId":"s","token":42}'),
  main::hb('{"contentId":"c5","sessionId":"s","optOut":"yes"}'),
  main::live('c5') ]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400, 200]
--- response_body eval
[ main::field_err('positionMs', 'must be an integer number of milliseconds'),
  main::field_err('positionMs', 'must be between 0 and 9007199254740991'),
  main::field_err('positionMs', 'must be an integer number of milliseconds'),
  main::field_err('positionMs', 'must be between 0 and 9007199254740991'),
  main::field_err('state', 'must be one of playing, paused, buffering, ended'),
  main::field_err('state', 'must be one of playing, paused, buffering, ended'),
  main::field_err('token', 'must be a string of at most 128 bytes'),
  main::field_err('optOut', 'must be true or false'),
  main::live_body('c5', 0) ]

=== TEST 6: bodies that are not a JSON object: 400 invalid_body, nothing recorded
--- request eval
[ main::hb('{"contentId":"c6","sessionId":"s"'),
  main::hb('[{"contentId":"c6","sessionId":"s"}]'),
  main::hb('{"contentId":"c6","contentId":"c6","sessionId":"s"}'),
  main::hb(''),
  main::live('c6') ]
--- error_code eval
[400, 400, 400, 400, 200]
--- response_body_like eval
[ qr/^\{"error":"invalid_body","message":"body is not valid JSON","detail":"unexpected end of the body at offset 33"\}$/,
  qr/^\{"error":"invalid_body","message":"body must be a JSON object"\}$/,
  qr/^\{"error":"invalid_body","message":"body is not valid JSON","detail":"duplicate key \\"contentId\\" at offset 18"\}$/,
  qr/^\{"error":"invalid_body","message":"empty body: a JSON object is expected"\}$/,
  qr/^\{"contentId":"c6","live":0,"peak":0\}$/ ]

=== TEST 7: wrong method, size: 405, 413 with a JSON error, nothing recorded (the content type, 415: TEST 8)
--- request eval
[ "GET /engagement/heartbeat",
  "POST /engagement/heartbeat\n" . '{"contentId":"c7","sessionId":"s","pad":"' . ('x' x 9000) . '"}',
  main::live('c7') ]
--- error_code eval
[405, 413, 200]
--- response_body eval
[ qq({"error":"method_not_allowed","message":"heartbeats are sent with POST"}\n),
  qq({"error":"body_too_large","message":"the body exceeds engagement_max_body_size"}\n),
  main::live_body('c7', 0) ]

=== TEST 8: a heartbeat that is not JSON: 415, nothing recorded
--- more_headers
Content-Type: text/plain
--- request eval
[ main::hb('{"contentId":"c8","sessionId":"s"}'), main::live('c8') ]
--- error_code eval
[415, 200]
--- response_body eval
[ qq({"error":"unsupported_media_type","message":"Content-Type must be application/json"}\n),
  main::live_body('c8', 0) ]

=== TEST 9: a location that requires a token: none or a wrong one is refused (403), a good one counts
--- request eval
[ main::hb('{"contentId":"c9","sessionId":"s9"}', '/token/heartbeat'),
  main::hb('{"contentId":"c9","sessionId":"s9","token":"1.9999999999.AAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}', '/token/heartbeat'),
  main::live('c9'),
  "GET /mint?c=c9&s=s9" ]
--- error_code eval
[403, 403, 200, 200]
--- response_body_like eval
[ qr/^\{"error":"invalid_token","reason":"missing"/,
  qr/^\{"error":"invalid_token","reason":"(?:bad_signature|malformed|wrong_content)"/,
  qr/^\{"contentId":"c9","live":0,"peak":0\}$/,
  qr/^1\.\d+\./ ]
--- post_check
    my $tok = $main::Body;
    chomp $tok;
    my ($st, $b) = Engagement::Test::http_request(Engagement::Test::nginx_port(),
        'POST', '/token/heartbeat', qq({"contentId":"c9","sessionId":"s9","token":"$tok"}),
        'Content-Type' => 'application/json');
    Test::More::is($st, 200, 'TEST 9 - the minted token is accepted');
    Test::More::like($b, qr/"counted":true,"contentId":"c9","live":1,/, 'TEST 9 - and counts one live viewer');

=== TEST 10: bots are not live viewers: 200 counted false, reason bot, nothing recorded
--- more_headers
Content-Type: application/json
User-Agent: Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)
--- request eval
[ main::hb('{"contentId":"c10","sessionId":"s"}'), main::live('c10') ]
--- error_code eval
[200, 200]
--- response_body eval
[ qq({"counted":false,"reason":"bot","contentId":"c10"}\n), main::live_body('c10', 0) ]

=== TEST 11: opt-out: dropped where engagement_opt_out drop; counted (anonymously) by default
--- more_headers
Content-Type: application/json
Sec-GPC: 1
--- request eval
[ main::hb('{"contentId":"c11","sessionId":"s"}', '/drop/heartbeat'),
  main::hb('{"contentId":"c11","sessionId":"t","optOut":true}', '/drop/heartbeat'),
  main::live('c11'),
  main::hb('{"contentId":"c11","sessionId":"u"}') ]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[ qq({"counted":false,"reason":"opted_out","contentId":"c11"}\n),
  qq({"counted":false,"reason":"opted_out","contentId":"c11"}\n),
  main::live_body('c11', 0), main::ok_body('c11', 1) ]

=== TEST 12: rate limits: past the burst, 429 with Retry-After, nothing recorded
--- request eval
[ main::hb('{"contentId":"c12","sessionId":"a"}', '/limited/heartbeat'),
  main::hb('{"contentId":"c12","sessionId":"b"}', '/limited/heartbeat'),
  main::hb('{"contentId":"c12","sessionId":"c"}', '/limited/heartbeat'),
  main::live('c12') ]
--- error_code eval
[200, 200, 429, 200]
--- response_body_like eval
[ qr/"live":1,/, qr/"live":2,/, qr/"error":"rate_limited"/,
  qr/^\{"contentId":"c12","live":2,"peak":2\}$/ ]

=== TEST 13: engagement_heartbeat_interval: the answer tells players the configured interval
--- http_config
    engagement_heartbeat_interval 2500ms;
--- config
    location = /engagement/heartbeat { engagement heartbeat; }
--- request eval
main::hb('{"contentId":"c13","sessionId":"s"}')
--- error_code: 200
--- response_body
{"counted":true,"contentId":"c13","live":1,"peak":1,"intervalMs":2500}

=== TEST 14: the live endpoint: ids checked, method checked
--- request eval
[ "GET /engagement/live", "GET /engagement/live?contentId=a%20b",
  "POST /engagement/live?contentId=a" ]
--- error_code eval
[400, 400, 405]
--- response_body eval
[ qq({"error":"invalid_field","field":"contentId","message":"is required: /engagement/live/{contentId} (a stream) or ?contentId= (JSON)"}\n),
  qq({"error":"invalid_field","field":"contentId","message":"must be 1-128 bytes of [A-Za-z0-9._:-]"}\n),
  qq({"error":"method_not_allowed","message":"live counts are read with GET"}\n) ]

=== TEST 15: engagement_heartbeat_interval out of range
--- http_config
    engagement_heartbeat_interval 50ms;
--- config
    location = /engagement/heartbeat { engagement heartbeat; }
--- must_die
--- error_log
invalid time "50ms" of "engagement_heartbeat_interval": between 100ms and 1h, e.g. 10s

=== TEST 16: engagement_live_push not a time
--- http_config
    engagement_live_push often;
--- config
    location /engagement/live { engagement live; }
--- must_die
--- error_log
invalid time "often" of "engagement_live_push": between 100ms and 10s, e.g. 1s

=== TEST 17: engagement_live_zone too small
--- http_config
    engagement_live_zone 4k;
--- config
    location = /engagement/heartbeat { engagement heartbeat; }
--- must_die
--- error_log
invalid size "4k" of "engagement_live_zone": at least 128k, e.g. 4m

=== TEST 18: engagement_require_token on a heartbeat location needs a secret
--- http_config
--- config
    location = /engagement/heartbeat { engagement heartbeat; engagement_require_token on; }
--- must_die
--- error_log
"engagement_require_token" needs "engagement_token_secret"

=== TEST 19: engagement_live_push beyond 10 s is refused (a reload would wait for it)
--- http_config
    engagement_live_push 11s;
--- config
    location /engagement/live { engagement live; }
--- must_die
--- error_log
invalid time "11s" of "engagement_live_push": between 100ms and 10s, e.g. 1s

=== TEST 20: engagement_live_redis on without engagement_redis is refused at nginx -t
--- http_config
    engagement_live_redis on;
--- config
    location /engagement/live { engagement live; }
--- must_die
--- error_log
"engagement_live_redis on" needs "engagement_redis": live counts are shared through it

=== TEST 21: engagement_live_redis takes on or off
--- http_config
    engagement_live_redis sometimes;
--- config
    location /engagement/live { engagement live; }
--- must_die
--- error_log
invalid value "sometimes" of "engagement_live_redis": on or off

=== TEST 22: live directives with no heartbeat or live location: a warning at nginx -t, nginx runs
--- http_config
    engagement_zone engagement:1m;
    engagement_heartbeat_interval 5s;
--- config
    location = /engagement/view { engagement view; }
--- request
GET /engagement/view
--- error_code: 405
--- error_log
engagement_live_zone, engagement_heartbeat_interval, engagement_live_push and engagement_live_redis are ignored: no location has "engagement heartbeat" or "engagement live"
