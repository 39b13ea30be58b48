# Guards the edge protection of the view path: signed view tokens (minted
# by $engagement_token, required by engagement_require_token: valid,
# expired, other content, other session, tampered, missing, malformed),
# bots (the built-in user agent list and the operator's engagement_bot
# value), opt-out (Sec-GPC and "optOut" in each engagement_opt_out mode),
# client address truncation in surrogate identities (IPv4 /24, IPv6 /48),
# the status figures of each outcome, and the directives' errors at start.
use Test::Nginx::Socket 'no_plan';
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');

our $Secret = 'test-secret-0123456789abcdef';

# the token format of README "Signed view tokens", made independently
sub tok {
    my ($c, $s, $exp, $secret) = @_;
    $exp //= time() + 3600;
    $secret //= $Secret;
    my $tag = substr(encode_base64url(substr(hmac_sha256("c\n$c", $secret),
                                             0, 6)), 0, 8);
    my $part = "1.$exp.$tag";
    return "$part." . encode_base64url(hmac_sha256("$part\n$c\n$s", $secret));
}

sub view {
    my ($body, $path) = @_;
    $path //= '/engagement/view';
    return "POST $path\n$body";
}

sub tview {
    my ($c, $s, $token, $path) = @_;
    return view(qq({"contentId":"$c","sessionId":"$s","token":"$token"}),
                $path);
}

our $HttpConfig = <<"_EOC_";
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
    engagement_token_secret $Secret;
    map \$http_x_bot \$is_bot {
        default "";
        yes     1;
        zero    0;
    }
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;
_EOC_

our $Loc = <<'_EOC_';
    location = /engagement/view {
        engagement view;
        engagement_require_token on;
    }
    location = /open/view {
        engagement view;
        engagement_bot $is_bot;
    }
    location = /client/view {
        engagement view;
        engagement_dedupe_key client;
    }
    location = /drop/view {
        engagement view;
        engagement_opt_out drop;
    }
    location = /off/view {
        engagement view;
        engagement_opt_out off;
        engagement_bot_agents off;
    }
    location = /mint {
        engagement_token_bind $arg_c $arg_s;
        return 200 "$engagement_token\n";
    }
    location = /page/view {
        engagement_token_bind $arg_c $arg_s;
        proxy_set_header X-Engagement-Token $engagement_token;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/engagement/view;
    }
    location /engagement/summary {
        engagement summary;
    }
    location /engagement/status {
        engagement status;
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Loc) unless defined $block->config;
    $block->set_value("more_headers", "Content-Type: application/json")
        unless defined $block->more_headers;
    $block->set_value("no_error_log", "[error]\n[warn]\n[alert]")
        unless defined $block->no_error_log || defined $block->must_die;
});

run_tests();

__DATA__

=== TEST 1: $engagement_token mints a token of the documented shape
--- request
GET /mint?c=vid-1&s=sess-1
--- response_body_like chomp
^1\.\d{10}\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{43}$

=== TEST 2: no token is minted for values that are not ids
--- request eval
[ "GET /mint?c=bad%20id&s=s1", "GET /mint?c=vid-1", "GET /mint?s=s1" ]
--- error_code eval
[200, 200, 200]
--- response_body eval
[ "\n", "\n", "\n" ]

=== TEST 3: a token minted by nginx for the page is accepted (header)
--- request eval
[ main::view('{"contentId":"vid-1","sessionId":"s1"}', '/page/view?c=vid-1&s=s1'),
  main::view('{"contentId":"vid-1","sessionId":"s2"}', '/page/view?c=vid-1&s=s2') ]
--- error_code eval
[202, 202]
--- response_body eval
[ qq({"counted":true,"contentId":"vid-1","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"counted":true,"contentId":"vid-1","metrics":["view"],"views":2,"engagedViews":0,"replays":0}\n) ]

=== TEST 4: a token the page got for other content or another session fails
--- request eval
[ main::view('{"contentId":"vid-2","sessionId":"s1"}', '/page/view?c=vid-1&s=s1'),
  main::view('{"contentId":"vid-1","sessionId":"s2"}', '/page/view?c=vid-1&s=s1'),
  "GET /engagement/summary/vid-1" ]
--- error_code eval
[403, 403, 200]
--- response_body eval
[ qq({"error":"invalid_token","reason":"wrong_content","message":"the view token was issued for other content"}\n),
  qq({"error":"invalid_token","reason":"bad_signature","message":"the view token's signature does not match"}\n),
  qq({"contentId":"vid-1","views":0,"engagedViews":0,"replays":0}\n) ]

=== TEST 5: a valid token in the body counts once; its repeat is a duplicate
--- request eval
[ main::tview("vid-1", "s1", main::tok("vid-1", "s1")),
  main::tview("vid-1", "s1", main::tok("vid-1", "s1")) ]
--- error_code eval
[202, 200]
--- response_body_like eval
[ qr/^\{"counted":true,/, qr/^\{"counted":false,"reason":"duplicate",/ ]

=== TEST 6: the token in X-Engagement-Token; the body's token wins
--- more_headers eval
[ "Content-Type: application/json\nX-Engagement-Token: " . main::tok("v", "s1"),
  "Content-Type: application/json\nX-Engagement-Token: " . main::tok("v", "s2") ]
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1"}'),
  main::tview("v", "s2", "junk") ]
--- error_code eval
[202, 403]
--- response_body_like eval
[ qr/^\{"counted":true,/, qr/"reason":"malformed"/ ]

=== TEST 7: an expired token, properly signed, is refused as expired
--- request eval
[ main::tview("vid-1", "s1", main::tok("vid-1", "s1", time() - 5)),
  "GET /engagement/summary/vid-1" ]
--- error_code eval
[403, 200]
--- response_body eval
[ qq({"error":"invalid_token","reason":"expired","message":"the view token has expired: reload the page for a new one"}\n),
  qq({"contentId":"vid-1","views":0,"engagedViews":0,"replays":0}\n) ]

=== TEST 8: a missing token: absent, empty, and with no header either
--- request eval
[ main::view('{"contentId":"vid-1","sessionId":"s1"}'),
  main::tview("vid-1", "s1", "") ]
--- error_code eval
[403, 403]
--- response_body eval
[ qq({"error":"invalid_token","reason":"missing","message":"a view token is required: send it in the token field or in X-Engagement-Token"}\n),
  qq({"error":"invalid_token","reason":"missing","message":"a view token is required: send it in the token field or in X-Engagement-Token"}\n) ]

=== TEST 9: a token that is not a string is an invalid field, 400
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","token":42}'),
  main::view('{"contentId":"v","sessionId":"s","token":"' . ("A" x 129) . '"}') ]
--- error_code eval
[400, 400]
--- response_body_like eval
[ qr/"field":"token"/, qr/"field":"token"/ ]

=== TEST 10: status figures of refused tokens, by reason
--- request eval
[ main::view('{"contentId":"v","sessionId":"s"}'),
  main::tview("v", "s", "1.2.3"),
  main::tview("v", "s", "1.99999999999.AAAAAAAA.x"),
  main::tview("v", "s", main::tok("v", "s", time() - 100)),
  main::tview("v", "s", main::tok("w", "s")),
  main::tview("v", "s", main::tok("v", "other")),
  main::tview("v", "s", main::tok("v", "s", undef, "another-secret-0123456789")),
  main::tview("v", "s", main::tok("v", "s")),
  "GET /engagement/status" ]
--- error_code eval
[403, 403, 403, 403, 403, 403, 403, 202, 200]
--- response_body_like eval
[ qr/"missing"/, qr/"malformed"/, qr/"malformed"/, qr/"expired"/,
  qr/"wrong_content"/, qr/"bad_signature"/, qr/"wrong_content"/,
  qr/"counted":true/,
  qr/nginx_engagement_token_refused_total\{zone="engagement",reason="missing"\} 1\nnginx_engagement_token_refused_total\{zone="engagement",reason="malformed"\} 2\nnginx_engagement_token_refused_total\{zone="engagement",reason="expired"\} 1\nnginx_engagement_token_refused_total\{zone="engagement",reason="wrong_content"\} 2\nnginx_engagement_token_refused_total\{zone="engagement",reason="bad_signature"\} 1\n/s ]

=== TEST 11: tampering: each part of a good token changed by one character
--- request eval
my $t = main::tok("v", "s");
my @p = split /\./, $t;
my $flip = sub { my $s = shift; my $c = substr($s, -1); substr($s, -1) = $c eq 'A' ? 'B' : 'A'; $s };
[ main::tview("v", "s", CORE::join('.', $p[0], $p[1] + 1000, $p[2], $p[3])),
  main::tview("v", "s", CORE::join('.', $p[0], $p[1], $flip->($p[2]), $p[3])),
  main::tview("v", "s", CORE::join('.', $p[0], $p[1], $p[2], $flip->($p[3]))),
  main::tview("v", "s", "2." . substr($t, 2)),
  main::tview("v", "s", "$t."),
  main::tview("v", "s", "$t" . "A"),
  main::tview("v", "s", substr($t, 0, -1)),
  "GET /engagement/summary/v" ]
--- error_code eval
[403, 403, 403, 403, 403, 403, 403, 200]
--- response_body_like eval
[ qr/"bad_signature"/, qr/"wrong_content"/, qr/"bad_signature"/,
  qr/"malformed"/, qr/"malformed"/, qr/"malformed"/, qr/"malformed"/,
  qr/"views":0,/ ]

=== TEST 12: built-in bots are answered honestly and not counted; curl counts
--- more_headers eval
[ "Content-Type: application/json\nUser-Agent: Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  "Content-Type: application/json\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
  "Content-Type: application/json\nUser-Agent: python-requests/2.31.0",
  "Content-Type: application/json\nUser-Agent: Mozilla/5.0 (compatible; BINGBOT/2.0)",
  "Content-Type: application/json\nUser-Agent: curl/7.88.1",
  "Content-Type: application/json\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
  "Content-Type: application/json",
  "Content-Type: application/json" ]
--- request eval
[ main::view('{"contentId":"v","sessionId":"b1"}', '/open/view'),
  main::view('{"contentId":"v","sessionId":"b2"}', '/open/view'),
  main::view('{"contentId":"v","sessionId":"b3"}', '/open/view'),
  main::view('{"contentId":"v","sessionId":"b4"}', '/open/view'),
  main::view('{"contentId":"v","sessionId":"h1"}', '/open/view'),
  main::view('{"contentId":"v","sessionId":"h2"}', '/open/view'),
  main::view('{"contentId":"v","sessionId":"h3"}', '/open/view'),
  "GET /engagement/status" ]
--- error_code eval
[200, 200, 200, 200, 202, 202, 202, 200]
--- response_body_like eval
[ qr/^\{"counted":false,"reason":"bot","contentId":"v"\}$/,
  qr/"reason":"bot"/, qr/"reason":"bot"/, qr/"reason":"bot"/,
  qr/"views":1,/, qr/"views":2,/, qr/"views":3,/,
  qr/nginx_engagement_not_counted_total\{zone="engagement",reason="bot"\} 4\n/ ]

=== TEST 13: the operator's engagement_bot value: non-empty and not "0" is a bot
--- more_headers eval
[ "Content-Type: application/json\nX-Bot: yes",
  "Content-Type: application/json\nX-Bot: zero",
  "Content-Type: application/json\nX-Bot: other" ]
--- request eval
[ main::view('{"contentId":"v","sessionId":"o1"}', '/open/view'),
  main::view('{"contentId":"v","sessionId":"o2"}', '/open/view'),
  main::view('{"contentId":"v","sessionId":"o3"}', '/open/view') ]
--- error_code eval
[200, 202, 202]
--- response_body_like eval
[ qr/"reason":"bot"/, qr/"views":1,/, qr/"views":2,/ ]

=== TEST 14: engagement_bot_agents off counts a crawler's view
--- more_headers
Content-Type: application/json
User-Agent: Googlebot/2.1
--- request eval
main::view('{"contentId":"v","sessionId":"s"}', '/off/view')
--- error_code: 202
--- response_body_like: "counted":true

=== TEST 15: anonymous (default): Sec-GPC and optOut count without identity
--- more_headers eval
[ "Content-Type: application/json\nSec-GPC: 1",
  "Content-Type: application/json\nSec-GPC: 1",
  "Content-Type: application/json",
  "Content-Type: application/json",
  "Content-Type: application/json" ]
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1","viewerId":"alice"}', '/open/view'),
  main::view('{"contentId":"v","sessionId":"s1","viewerId":"bob"}', '/open/view'),
  main::view('{"contentId":"v","sessionId":"s2","viewerId":"alice","optOut":true}', '/open/view'),
  main::view('{"contentId":"v","sessionId":"s3","viewerId":"alice"}', '/open/view'),
  "GET /engagement/status" ]
--- error_code eval
[202, 200, 202, 202, 200]
--- response_body_like eval
[ qr/"counted":true.*"views":1,/, qr/"reason":"duplicate"/,
  qr/"views":2,/, qr/"views":3,/,
  qr/nginx_engagement_anonymous_total\{zone="engagement"\} 3\n/ ]

=== TEST 16: drop: opted-out events are answered and not counted
--- more_headers eval
[ "Content-Type: application/json\nSec-GPC: 1",
  "Content-Type: application/json",
  "Content-Type: application/json\nSec-GPC: 0",
  "Content-Type: application/json" ]
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1"}', '/drop/view'),
  main::view('{"contentId":"v","sessionId":"s2","optOut":true}', '/drop/view'),
  main::view('{"contentId":"v","sessionId":"s3","optOut":false}', '/drop/view'),
  "GET /engagement/status" ]
--- error_code eval
[200, 200, 202, 200]
--- response_body_like eval
[ qr/^\{"counted":false,"reason":"opted_out","contentId":"v"\}$/,
  qr/"reason":"opted_out"/, qr/"views":1,/,
  qr/nginx_engagement_not_counted_total\{zone="engagement",reason="opted_out"\} 2\n/ ]

=== TEST 17: off: opt-out signals are ignored, the viewer identity is used
--- more_headers eval
[ "Content-Type: application/json\nSec-GPC: 1",
  "Content-Type: application/json\nSec-GPC: 1" ]
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1","viewerId":"alice"}', '/off/view'),
  main::view('{"contentId":"v","sessionId":"s2","viewerId":"alice"}', '/off/view') ]
--- error_code eval
[202, 200]
--- response_body_like eval
[ qr/"views":1,/, qr/"reason":"duplicate"/ ]

=== TEST 18: "optOut" must be a boolean
--- request eval
main::view('{"contentId":"v","sessionId":"s","optOut":"yes"}', '/open/view')
--- error_code: 400
--- response_body_like: "field":"optOut"

=== TEST 19: client identities use the /24: one surrogate per IPv4 network
--- more_headers eval
[ "Content-Type: application/json\nX-Real-IP: 203.0.113.5",
  "Content-Type: application/json\nX-Real-IP: 203.0.113.77",
  "Content-Type: application/json\nX-Real-IP: 203.0.114.5",
  "Content-Type: application/json\nX-Real-IP: 203.0.114.200\nUser-Agent: other" ]
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1"}', '/client/view'),
  main::view('{"contentId":"v","sessionId":"s2"}', '/client/view'),
  main::view('{"contentId":"v","sessionId":"s3"}', '/client/view'),
  main::view('{"contentId":"v","sessionId":"s4"}', '/client/view') ]
--- error_code eval
[202, 200, 202, 202]
--- response_body_like eval
[ qr/"views":1,/, qr/"reason":"duplicate"/, qr/"views":2,/, qr/"views":3,/ ]

=== TEST 20: client identities use the /48: one surrogate per IPv6 site
--- more_headers eval
[ "Content-Type: application/json\nX-Real-IP: 2001:db8:1:2::1",
  "Content-Type: application/json\nX-Real-IP: 2001:db8:1:ffff:abcd::9",
  "Content-Type: application/json\nX-Real-IP: 2001:db8:2::1",
  "Content-Type: application/json\nX-Real-IP: ::ffff:198.51.100.7",
  "Content-Type: application/json\nX-Real-IP: 198.51.100.99" ]
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1"}', '/client/view'),
  main::view('{"contentId":"v","sessionId":"s2"}', '/client/view'),
  main::view('{"contentId":"v","sessionId":"s3"}', '/client/view'),
  main::view('{"contentId":"v","sessionId":"s4"}', '/client/view'),
  main::view('{"contentId":"v","sessionId":"s5"}', '/client/view') ]
--- error_code eval
[202, 200, 202, 202, 200]
--- response_body_like eval
[ qr/"views":1,/, qr/"reason":"duplicate"/, qr/"views":2,/, qr/"views":3,/,
  qr/"reason":"duplicate"/ ]

=== TEST 21: the order of checks: a bot without a token gets the token answer
--- more_headers
Content-Type: application/json
User-Agent: Googlebot/2.1
--- request eval
[ main::view('{"contentId":"v","sessionId":"s"}'),
  main::tview("v", "s", main::tok("v", "s")) ]
--- error_code eval
[403, 200]
--- response_body_like eval
[ qr/"reason":"missing"/, qr/"reason":"bot"/ ]

=== TEST 22: engagement_require_token without a secret
--- http_config
--- config
    location = /v { engagement view; engagement_require_token on; }
--- must_die
--- error_log
"engagement_require_token" needs "engagement_token_secret"

=== TEST 23: a short secret
--- http_config
    engagement_token_secret short;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
"engagement_token_secret" must be at least 16 bytes long

=== TEST 24: a zero token lifetime
--- http_config
--- config
    location = /v { engagement view; engagement_token_ttl 0; }
--- must_die
--- error_log
"engagement_token_ttl" must be positive

=== TEST 25: an unknown opt-out mode
--- http_config
--- config
    location = /v { engagement view; engagement_opt_out maybe; }
--- must_die
--- error_log
invalid value "maybe"

=== TEST 26: the salt rotates for the whole http block only
--- http_config
--- config
    location = /v { engagement view; engagement_salt_rotate 1h; }
--- must_die
--- error_log
"engagement_salt_rotate" directive is not allowed here

=== TEST 27: a zero salt period
--- http_config
    engagement_salt_rotate 0;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
"engagement_salt_rotate" must be positive

=== TEST 28: engagement_token_bind takes a content and a session
--- http_config
--- config
    location = /v { engagement_token_bind $arg_c; }
--- must_die
--- error_log
invalid number of arguments in "engagement_token_bind" directive

=== TEST 29: a 1 s salt period (rotations between requests) keeps dedupe
--- http_config
    engagement_salt_rotate 1s;
--- config
    location = /v { engagement view; }
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1"}', '/v'),
  main::view('{"contentId":"v","sessionId":"s1"}', '/v'),
  main::view('{"contentId":"v","sessionId":"s1"}', '/v'),
  main::view('{"contentId":"v","sessionId":"s1"}', '/v') ]
--- error_code eval
[202, 200, 200, 200]
--- response_body_like eval
[ qr/"views":1,/, qr/"reason":"duplicate"/, qr/"reason":"duplicate"/,
  qr/"reason":"duplicate"/ ]

=== TEST 30: a change of secret: tokens of the previous secret still hold
--- http_config eval
(my $c = $main::HttpConfig) =~ s/engagement_token_secret \S+;/engagement_token_secret new-secret-0123456789ab $main::Secret;/;
$c
--- request eval
[ main::tview("v", "s1", main::tok("v", "s1")),
  main::tview("v", "s2", main::tok("v", "s2", undef, "new-secret-0123456789ab")),
  main::tview("v", "s3", main::tok("v", "s3", time() - 5)),
  main::tview("v", "s4", main::tok("v", "s4", undef, "third-secret-0123456789")),
  main::tview("v", "s5", main::tok("v", "other")),
  "GET /mint?c=v&s=s6" ]
--- error_code eval
[202, 202, 403, 403, 403, 200]
--- response_body_like eval
[ qr/"views":1,/, qr/"views":2,/, qr/"reason":"expired"/,
  qr/"reason":"wrong_content"/, qr/"reason":"bad_signature"/,
  qr/^1\.\d+\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{43}$/ ]

=== TEST 31: new tokens are minted with the current secret only
--- http_config eval
(my $c = $main::HttpConfig) =~ s/engagement_token_secret \S+;/engagement_token_secret new-secret-0123456789ab $main::Secret;/;
$c
--- config eval
$main::Loc =~ s{location = /engagement/view \{}{location = /old/view { engagement view; engagement_require_token on; engagement_token_secret $main::Secret; }\n    location = /engagement/view \{}r
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1"}', '/page/view?c=v&s=s1'),
  "POST /old/view\n" . '{"contentId":"v","sessionId":"s2","token":"' . main::tok("v", "s2", undef, "new-secret-0123456789ab") . '"}' ]
--- error_code eval
[202, 403]
--- response_body_like eval
[ qr/"counted":true/, qr/"reason":"wrong_content"/ ]

=== TEST 32: a short previous secret
--- http_config
    engagement_token_secret long-enough-secret-0123 short;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
"engagement_token_secret" must be at least 16 bytes long
