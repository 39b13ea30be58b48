# Guards the refusal of bad input on the view and summary endpoints: each
# case gets the right 4xx with a JSON error naming the problem, and nothing
# is counted (every block reads the summary afterwards). Table-driven.
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');

our $HttpConfig = <<'_EOC_';
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
_EOC_

our $Loc = <<'_EOC_';
    location = /engagement/view {
        engagement view;
    }
    location = /engagement/view16k {
        engagement view;
        engagement_max_body_size 16k;
        client_body_buffer_size 4k;
    }
    location /engagement/summary {
        engagement summary;
    }
_EOC_

our $Zero = qq({"contentId":"v","views":0,"engagedViews":0,"replays":0}\n);

sub view { my ($body, $uri) = @_; return "POST " . ($uri // "/engagement/view") . "\n$body" }

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    $block->set_value("config", $Loc) unless defined $block->config;
    $block->set_value("more_headers", "Content-Type: application/json")
        unless defined $block->more_headers;
    $block->set_value("no_error_log", "[error]\n[alert]\n[crit]\n[emerg]")
        unless defined $block->no_error_log;
});

run_tests();

__DATA__
=== TEST 1: empty body
--- request eval
[ main::view(''), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body","message":"empty body.*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 2: not JSON
--- request eval
[ main::view('hello'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body","message":"body is not valid JSON".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 3: a JSON array, not an object
--- request eval
[ main::view('[1,2]'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"message":"body must be a JSON object".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 4: a JSON string, not an object
--- request eval
[ main::view('"v"'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"message":"body must be a JSON object".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 5: a JSON number, not an object
--- request eval
[ main::view('42'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"message":"body must be a JSON object".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 6: JSON null
--- request eval
[ main::view('null'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"message":"body must be a JSON object".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 7: truncated JSON
--- request eval
[ main::view('{"contentId":"v","sessi'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 8: trailing garbage after the object
--- request eval
[ main::view('{"contentId":"v","sessionId":"s"} x'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 9: two objects
--- request eval
[ main::view('{"contentId":"v","sessionId":"s"}{}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 10: deeply nested arrays (3000 levels)
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","x":' . ('[' x 3000) . (']' x 3000) . '}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 11: deeply nested objects (2500 levels, 15 KB)
--- request eval
[ main::view(('{"a":' x 2500) . '1' . ('}' x 2500), '/engagement/view16k'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 12: duplicate keys
--- request eval
[ main::view('{"contentId":"v","contentId":"w","sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*duplicate.*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 13: invalid UTF-8 in a string
--- request eval
[ main::view(qq({"contentId":"v","sessionId":"s","category":"\xff\xfe"})), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 14: invalid UTF-8 outside strings
--- request eval
[ main::view(qq({"contentId":"v","sessionId":"s"}\xc3)), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 15: a raw NUL byte in the body
--- request eval
[ main::view(qq({"contentId":"v\0","sessionId":"s"})), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 16: an escaped NUL in a string
--- request eval
[ main::view('{"contentId":"v\\u0000x","sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 17: single quotes
--- request eval
[ main::view(q({'contentId':'v','sessionId':'s'})), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 18: a comment in JSON
--- request eval
[ main::view('{"contentId":"v", /* c */ "sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 19: missing contentId
--- request eval
[ main::view('{"sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId","message":"is required".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 20: empty contentId
--- request eval
[ main::view('{"contentId":"","sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 21: contentId of 129 bytes
--- request eval
[ main::view('{"contentId":"' . ('a' x 129) . '","sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 22: contentId with a control character
--- request eval
[ main::view('{"contentId":"v\\u0001","sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 23: contentId with a space
--- request eval
[ main::view('{"contentId":"v w","sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 24: contentId with a slash
--- request eval
[ main::view('{"contentId":"v/../w","sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 25: contentId with a brace (hash tag breaker)
--- request eval
[ main::view('{"contentId":"v}","sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 26: contentId with non-ASCII UTF-8
--- request eval
[ main::view('{"contentId":"vid\\u00e9","sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 27: contentId as a number
--- request eval
[ main::view('{"contentId":42,"sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId","message":"must be a string.*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 28: contentId null
--- request eval
[ main::view('{"contentId":null,"sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 29: contentId as an array
--- request eval
[ main::view('{"contentId":["v"],"sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 30: contentId as an object
--- request eval
[ main::view('{"contentId":{},"sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 31: contentId as true
--- request eval
[ main::view('{"contentId":true,"sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"contentId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 32: missing sessionId
--- request eval
[ main::view('{"contentId":"v"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"sessionId","message":"is required".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 33: sessionId with a quote
--- request eval
[ main::view('{"contentId":"v","sessionId":"s\\"x"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"sessionId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 34: viewerId empty
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","viewerId":""}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"viewerId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 35: requestId as a number
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","requestId":7}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"requestId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 36: channelId with a newline
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","channelId":"a\\nb"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"channelId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 37: device with a percent sign
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","device":"a%20b"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"device".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 38: durationMs as a string
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","durationMs":"100"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"durationMs","message":"must be an integer.*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 39: durationMs null
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","durationMs":null}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"durationMs".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 40: durationMs a float
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","durationMs":1.5}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"durationMs".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 41: durationMs a float with zero fraction
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","durationMs":100.0}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"durationMs".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 42: durationMs in exponent form
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","durationMs":1e3}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"durationMs".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 43: durationMs negative
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","durationMs":-1}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"durationMs","message":"must be between.*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 44: durationMs over 7 days
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","durationMs":604800001}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"durationMs".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 45: durationMs absurdly large (int64 max)
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","durationMs":9223372036854775807}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"durationMs".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 46: durationMs beyond int64
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","durationMs":99999999999999999999999}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 47: durationMs NaN
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","durationMs":NaN}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"error":"invalid_body".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 48: durationMs as a boolean
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","durationMs":true}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"durationMs".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 49: ts as a date string
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","ts":"2026-11-22T00:00:00Z"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"ts".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 50: ts in seconds, not milliseconds
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","ts":1790000000}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"ts".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 51: ts negative
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","ts":-5}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"ts".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 52: replay as a string
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","replay":"true"}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"replay","message":"must be true or false".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 53: replay as a number
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","replay":1}'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"replay".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 54: a body over the 8k limit (Content-Length)
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","pad":"' . ('x' x 9000) . '"}'), "GET /engagement/summary/v" ]
--- error_code eval
[413, 200]
--- response_body_like eval
[ qr/^\{.*"error":"body_too_large".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 55: a requestId of 10 KB (within a 16k body limit)
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","requestId":"' . ('r' x 10240) . '"}', '/engagement/view16k'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"requestId".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 56: a body of 10 KB partly in a temp file still parses
--- request eval
[ main::view('{"contentId":"v","sessionId":"s","pad":"' . ('x' x 10240) . '","durationMs":-3}', '/engagement/view16k'), "GET /engagement/summary/v" ]
--- error_code eval
[400, 200]
--- response_body_like eval
[ qr/^\{.*"field":"durationMs".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 57: no Content-Type
--- more_headers
X-Nothing: 1
--- request eval
[ main::view('{"contentId":"v","sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[415, 200]
--- response_body_like eval
[ qr/^\{.*"error":"unsupported_media_type".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 58: Content-Type text/plain
--- more_headers
Content-Type: text/plain
--- request eval
[ main::view('{"contentId":"v","sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[415, 200]
--- response_body_like eval
[ qr/^\{.*"error":"unsupported_media_type".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 59: Content-Type form
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
[ main::view('contentId=v&sessionId=s'), "GET /engagement/summary/v" ]
--- error_code eval
[415, 200]
--- response_body_like eval
[ qr/^\{.*"error":"unsupported_media_type".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 60: Content-Type application/jsonp (a prefix only)
--- more_headers
Content-Type: application/jsonp
--- request eval
[ main::view('{"contentId":"v","sessionId":"s"}'), "GET /engagement/summary/v" ]
--- error_code eval
[415, 200]
--- response_body_like eval
[ qr/^\{.*"error":"unsupported_media_type".*\}\n\z/s, qr/\A\Q$main::Zero\E\z/ ]

=== TEST 61: GET on the view endpoint is 405 with Allow: POST
--- request
GET /engagement/view
--- error_code: 405
--- response_headers
Allow: POST
Content-Type: application/json
--- response_body
{"error":"method_not_allowed","message":"view events are sent with POST"}

=== TEST 62: PUT and DELETE on the view endpoint are 405, nothing counted
--- request eval
[ "PUT /engagement/view\n" . '{"contentId":"v","sessionId":"s"}',
  "DELETE /engagement/view",
  "GET /engagement/summary/v" ]
--- error_code eval
[405, 405, 200]
--- response_body_like eval
[ qr/"method_not_allowed"/, qr/"method_not_allowed"/, qr/"views":0,/ ]

=== TEST 63: a chunked body over the limit is 413 in JSON, nothing counted
--- raw_request eval
"POST /engagement/view HTTP/1.1\r
Host: localhost\r
Connection: close\r
Content-Type: application/json\r
Transfer-Encoding: chunked\r
\r
2400\r
" . ('x' x 9216) . "\r
0\r
\r
"
--- error_code: 413
--- response_body_like: "error":"body_too_large"

=== TEST 64: summary: POST is 405
--- request
POST /engagement/summary/v
--- more_headers
Content-Type: application/json
--- error_code: 405
--- response_headers
Allow: GET, HEAD

=== TEST 65: summary: path tricks and bad ids are 400 or 404 in JSON
--- request eval
[ "GET /engagement/summary/a/b",
  "GET /engagement/summary/a%2Fb",
  "GET /engagement/summary/x..%2Fy",
  "GET /engagement/summary/%01x",
  "GET /engagement/summary/" . ('a' x 129),
  "GET /engagement/summaryX",
  "GET /engagement/summary/a%20b",
  "GET /engagement/summary?ids=",
  "GET /engagement/summary",
  "GET /engagement/summary?ids=a,,b",
  "GET /engagement/summary?ids=a,b%7D",
  "GET /engagement/summary?ids=" . CORE::join(",", 1..101) ]
--- error_code eval
[400, 400, 400, 400, 400, 404, 400, 400, 400, 400, 400, 400]
--- response_body_like eval
[ qr/"field":"contentId"/, qr/"field":"contentId"/, qr/"field":"contentId"/,
  qr/"field":"contentId"/, qr/"field":"contentId"/, qr/"error":"not_found"/,
  qr/"field":"contentId"/, qr/"field":"ids"/, qr/"field":"ids"/,
  qr/"field":"ids"/, qr/"field":"ids"/, qr/"field":"ids".*engagement_batch_max/ ]

=== TEST 66: summary: percent-encoded commas in the batch form work
--- request
GET /engagement/summary?ids=a%2Cb
--- error_code: 200
--- response_body
{"items":[{"contentId":"a","views":0,"engagedViews":0,"replays":0},{"contentId":"b","views":0,"engagedViews":0,"replays":0}]}

=== TEST 67: summary: HEAD has headers and no body
--- request
HEAD /engagement/summary/v
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body
