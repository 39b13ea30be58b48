# Guards the view path in shared memory: what counts, what is a repeat,
# the watch-time policy (views and engaged views), replays, request ids,
# dedupe identities and windows, and the honest answer for each.
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
workers(2);

our $HttpConfig = <<'_EOC_';
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
_EOC_

our $Loc = <<'_EOC_';
    location = /engagement/view {
        engagement view;
        engagement_engaged_after 30s;
    }
    location /engagement/summary {
        engagement summary;
    }
_EOC_

sub view { my ($body) = @_; return "POST /engagement/view\n$body" }

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    $block->set_value("config", $Loc) unless defined $block->config;
    $block->set_value("more_headers", "Content-Type: application/json")
        unless defined $block->more_headers;
    $block->set_value("no_error_log", "[error]\n[warn]\n[alert]")
        unless defined $block->no_error_log;
});

run_tests();

__DATA__

=== TEST 1: a first view is counted, 202 with the new count
--- request eval
main::view('{"contentId":"vid-1","sessionId":"s1"}')
--- error_code: 202
--- response_body
{"counted":true,"contentId":"vid-1","metrics":["view"],"views":1,"engagedViews":0,"replays":0}
--- response_headers
Content-Type: application/json
Cache-Control: no-store

=== TEST 2: the same session again within the window is a duplicate, 200
--- request eval
[ main::view('{"contentId":"vid-1","sessionId":"s1"}'),
  main::view('{"contentId":"vid-1","sessionId":"s1"}'),
  "GET /engagement/summary/vid-1" ]
--- error_code eval
[202, 200, 200]
--- response_body eval
[ qq({"counted":true,"contentId":"vid-1","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"counted":false,"reason":"duplicate","contentId":"vid-1","views":1,"engagedViews":0,"replays":0}\n),
  qq({"contentId":"vid-1","views":1,"engagedViews":0,"replays":0}\n) ]

=== TEST 3: other sessions and other content count on their own
--- request eval
[ main::view('{"contentId":"a","sessionId":"s1"}'),
  main::view('{"contentId":"a","sessionId":"s2"}'),
  main::view('{"contentId":"b","sessionId":"s1"}'),
  "GET /engagement/summary?ids=a,b,c" ]
--- error_code eval
[202, 202, 202, 200]
--- response_body eval
[ qq({"counted":true,"contentId":"a","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"counted":true,"contentId":"a","metrics":["view"],"views":2,"engagedViews":0,"replays":0}\n),
  qq({"counted":true,"contentId":"b","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"items":[{"contentId":"a","views":2,"engagedViews":0,"replays":0},{"contentId":"b","views":1,"engagedViews":0,"replays":0},{"contentId":"c","views":0,"engagedViews":0,"replays":0}]}\n) ]

=== TEST 4: progress past the engaged threshold adds one engaged view, once
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1","durationMs":0}'),
  main::view('{"contentId":"v","sessionId":"s1","durationMs":10000}'),
  main::view('{"contentId":"v","sessionId":"s1","durationMs":30000}'),
  main::view('{"contentId":"v","sessionId":"s1","durationMs":60000}') ]
--- error_code eval
[202, 200, 202, 200]
--- response_body eval
[ qq({"counted":true,"contentId":"v","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"counted":false,"reason":"duplicate","contentId":"v","views":1,"engagedViews":0,"replays":0}\n),
  qq({"counted":true,"contentId":"v","metrics":["engaged"],"views":1,"engagedViews":1,"replays":0}\n),
  qq({"counted":false,"reason":"duplicate","contentId":"v","views":1,"engagedViews":1,"replays":0}\n) ]

=== TEST 5: a first event already past both thresholds counts both
--- request eval
main::view('{"contentId":"v","sessionId":"s1","durationMs":45000}')
--- error_code: 202
--- response_body
{"counted":true,"contentId":"v","metrics":["view","engaged"],"views":1,"engagedViews":1,"replays":0}

=== TEST 6: a minimum watch time: below it the answer says below_policy
--- config
    location = /engagement/view {
        engagement view;
        engagement_view_after 3s;
        engagement_engaged_after 10s;
    }
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1"}'),
  main::view('{"contentId":"v","sessionId":"s1","durationMs":2999}'),
  main::view('{"contentId":"v","sessionId":"s1","durationMs":3000}'),
  main::view('{"contentId":"v","sessionId":"s1","durationMs":10000}') ]
--- error_code eval
[200, 200, 202, 202]
--- response_body eval
[ qq({"counted":false,"reason":"below_policy","contentId":"v","views":0,"engagedViews":0,"replays":0}\n),
  qq({"counted":false,"reason":"below_policy","contentId":"v","views":0,"engagedViews":0,"replays":0}\n),
  qq({"counted":true,"contentId":"v","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"counted":true,"contentId":"v","metrics":["engaged"],"views":1,"engagedViews":1,"replays":0}\n) ]

=== TEST 7: a retried requestId is answered duplicate_request and never counted twice
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1","requestId":"req-1"}'),
  main::view('{"contentId":"v","sessionId":"s2","requestId":"req-1"}'),
  main::view('{"contentId":"v","sessionId":"s2","requestId":"req-2"}') ]
--- error_code eval
[202, 200, 202]
--- response_body eval
[ qq({"counted":true,"contentId":"v","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"counted":false,"reason":"duplicate_request","contentId":"v","views":1,"engagedViews":0,"replays":0}\n),
  qq({"counted":true,"contentId":"v","metrics":["view"],"views":2,"engagedViews":0,"replays":0}\n) ]

=== TEST 8: replays count in their own counter, never as views, once per window
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1"}'),
  main::view('{"contentId":"v","sessionId":"s1","replay":true,"durationMs":40000}'),
  main::view('{"contentId":"v","sessionId":"s1","replay":true}'),
  main::view('{"contentId":"v","sessionId":"s2","replay":true}'),
  main::view('{"contentId":"v","sessionId":"s1","replay":false}') ]
--- error_code eval
[202, 202, 200, 202, 200]
--- response_body eval
[ qq({"counted":true,"contentId":"v","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"counted":true,"contentId":"v","metrics":["replay"],"views":1,"engagedViews":0,"replays":1}\n),
  qq({"counted":false,"reason":"duplicate","contentId":"v","views":1,"engagedViews":0,"replays":1}\n),
  qq({"counted":true,"contentId":"v","metrics":["replay"],"views":1,"engagedViews":0,"replays":2}\n),
  qq({"counted":false,"reason":"duplicate","contentId":"v","views":1,"engagedViews":0,"replays":2}\n) ]

=== TEST 9: dedupe on the viewer (default): one viewer, two sessions, one view
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1","viewerId":"u1"}'),
  main::view('{"contentId":"v","sessionId":"s2","viewerId":"u1"}'),
  main::view('{"contentId":"v","sessionId":"s2","viewerId":"u2"}') ]
--- error_code eval
[202, 200, 202]

=== TEST 10: dedupe on the session: one viewer, two sessions, two views
--- config
    location = /engagement/view {
        engagement view;
        engagement_dedupe_key session;
    }
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1","viewerId":"u1"}'),
  main::view('{"contentId":"v","sessionId":"s2","viewerId":"u1"}'),
  main::view('{"contentId":"v","sessionId":"s2","viewerId":"u2"}') ]
--- error_code eval
[202, 202, 200]

=== TEST 11: dedupe on the client (truncated address + user agent) ignores sessions
--- config
    location = /engagement/view {
        engagement view;
        engagement_dedupe_key client;
    }
--- more_headers
Content-Type: application/json
User-Agent: player/1
--- request eval
[ main::view('{"contentId":"v","sessionId":"s1"}'),
  main::view('{"contentId":"v","sessionId":"s2","viewerId":"other"}'),
  main::view('{"contentId":"w","sessionId":"s3"}') ]
--- error_code eval
[202, 200, 202]

=== TEST 12: a valid body sent with chunked transfer encoding counts
--- raw_request eval
"POST /engagement/view HTTP/1.1\r
Host: localhost\r
Connection: close\r
Content-Type: application/json\r
Transfer-Encoding: chunked\r
\r
13\r
{\"contentId\":\"v\",\"s\r
e\r
essionId\":\"s\"}\r
0\r
\r
"
--- error_code: 202
--- response_body
{"counted":true,"contentId":"v","metrics":["view"],"views":1,"engagedViews":0,"replays":0}

=== TEST 13: Content-Type with parameters, unknown fields ignored, every optional field
--- more_headers
Content-Type: application/json; charset=utf-8
--- request eval
main::view('{"contentId":"c:1.x_y-z","sessionId":"s","viewerId":"u","requestId":"r","durationMs":5,"ts":' . int(time() * 1000) . ',"channelId":"ch","category":"music","source":"feed","device":"mobile","replay":false,"future":{"x":[1,2]}}')
--- error_code: 202
--- response_body_like: "counted":true

=== TEST 14: counts are shared by both workers, exactly
--- request eval
[ map { main::view(qq({"contentId":"w","sessionId":"s$_"})) } 1..20 ]
--- error_code eval
[ (202) x 20 ]
--- response_body_like eval
[ map { qr/"views":$_,/ } 1..20 ]
