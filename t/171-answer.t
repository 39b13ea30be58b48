# Guards engagement_answer: what a view event's answer carries. full (the
# default) is the answer of t/020; minimal is the outcome alone; none is a
# 204 with no body (navigator.sendBeacon never reads the answer). In every
# mode the status of a valid event is unchanged but for none's 204, errors
# are the same JSON 4xx answers, and the access log's $engagement_outcome
# and $engagement_reason say the same as in full. A wrong value is refused
# at nginx -t with the choices.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
workers(2);

# a view location answering in mode $_[0] (undef: the default), its
# summary, and the access log of the views served back as a file
sub loc {
    my ($mode) = @_;
    my $answer = defined $mode ? "engagement_answer $mode;" : '';
    return <<"_EOC_";
    location = /engagement/view {
        engagement view;
        engagement_engaged_after 30s;
        $answer
        access_log logs/eng.log eng;
    }
    location /engagement/summary {
        engagement summary;
        access_log off;
    }
    location = /eng.log {
        root logs;
        default_type text/plain;
        access_log off;
    }
_EOC_
}

sub view { "POST /engagement/view\n$_[0]" }

# what a block does not say: the zones and the log format, a JSON
# Content-Type, and no error logged (but where nginx -t must refuse)
our %Default = (
    http_config => join("\n",
        '    engagement_zone engagement:1m;',
        '    engagement_dedupe_zone engagement_dedupe:1m;',
        q(    log_format eng '$request_method $uri $status $engagement_outcome ) .
            q($engagement_reason $engagement_content_id';), ''),
    more_headers => 'Content-Type: application/json',
    no_error_log => "[error]\n[warn]\n[alert]",
);

add_block_preprocessor(sub {
    my $block = shift;
    for my $k (sort keys %Default) {
        next if defined $block->$k;
        next if $k eq 'no_error_log' && defined $block->must_die;
        $block->set_value($k, $Default{$k});
    }
});

run_tests();

__DATA__

=== TEST 1: the default is full: the outcome, the content, what counted, the totals
--- config eval
main::loc()
--- request eval
[ main::view('{"contentId":"a","sessionId":"s1"}'),
  main::view('{"contentId":"a","sessionId":"s1"}') ]
--- error_code eval
[202, 200]
--- response_body eval
[ qq({"counted":true,"contentId":"a","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"counted":false,"reason":"duplicate","contentId":"a","views":1,"engagedViews":0,"replays":0}\n) ]
--- response_headers eval
[ "Content-Type: application/json\nCache-Control: no-store",
  "Content-Type: application/json\nCache-Control: no-store" ]

=== TEST 2: engagement_answer full is the default's answer
--- config eval
main::loc('full')
--- request eval
[ main::view('{"contentId":"a","sessionId":"s1","durationMs":31000}'),
  main::view('{"contentId":"a","sessionId":"s1","durationMs":32000}') ]
--- error_code eval
[202, 200]
--- response_body eval
[ qq({"counted":true,"contentId":"a","metrics":["view","engaged"],"views":1,"engagedViews":1,"replays":0}\n),
  qq({"counted":false,"reason":"duplicate","contentId":"a","views":1,"engagedViews":1,"replays":0}\n) ]

=== TEST 3: minimal: the outcome alone, same statuses and headers
--- config eval
main::loc('minimal')
--- request eval
[ main::view('{"contentId":"a","sessionId":"s1"}'),
  main::view('{"contentId":"a","sessionId":"s1"}'),
  main::view('{"contentId":"a","sessionId":"s1","durationMs":31000}'),
  main::view('{"contentId":"a","sessionId":"s1","requestId":"r1"}'),
  main::view('{"contentId":"a","sessionId":"s2","requestId":"r1"}'),
  "GET /engagement/summary/a" ]
--- error_code eval
[202, 200, 202, 200, 200, 200]
--- response_body eval
[ qq({"counted":true}\n),
  qq({"counted":false,"reason":"duplicate"}\n),
  qq({"counted":true}\n),
  qq({"counted":false,"reason":"duplicate"}\n),
  qq({"counted":false,"reason":"duplicate_request"}\n),
  qq({"contentId":"a","views":1,"engagedViews":1,"replays":0}\n) ]
--- response_headers eval
[ "Content-Type: application/json\nCache-Control: no-store",
  "Content-Type: application/json\nCache-Control: no-store",
  "Content-Type: application/json\nCache-Control: no-store",
  "Content-Type: application/json\nCache-Control: no-store",
  "Content-Type: application/json\nCache-Control: no-store",
  "Content-Type: application/json" ]

=== TEST 4: none: 204 with no body, counted or not; the counts are the same
--- config eval
main::loc('none')
--- request eval
[ main::view('{"contentId":"a","sessionId":"s1"}'),
  main::view('{"contentId":"a","sessionId":"s1"}'),
  main::view('{"contentId":"a","sessionId":"s2","durationMs":31000}'),
  "GET /engagement/summary/a" ]
--- error_code eval
[204, 204, 204, 200]
--- response_body eval
[ "", "", "",
  qq({"contentId":"a","views":2,"engagedViews":1,"replays":0}\n) ]
--- response_headers eval
[ "!Content-Type\n!Content-Length\nCache-Control: no-store",
  "!Content-Type\n!Content-Length\nCache-Control: no-store",
  "!Content-Type\n!Content-Length\nCache-Control: no-store",
  "Content-Type: application/json" ]

=== TEST 5: minimal and none: errors are the same JSON 4xx answers as in full
--- config eval
main::loc('minimal') . <<'_EOC_'
    location = /engagement/beacon {
        engagement view;
        engagement_answer none;
    }
_EOC_
--- request eval
[ main::view('{"contentId":"a"}'),
  main::view('{"contentId":"a",'),
  main::view('{"contentId":"a b","sessionId":"s"}'),
  "GET /engagement/view",
  "POST /engagement/beacon\n" . '{"contentId":"a"}',
  "POST /engagement/beacon\n[1,2]",
  "GET /engagement/beacon" ]
--- error_code eval
[400, 400, 400, 405, 400, 400, 405]
--- response_body eval
[ qq({"error":"invalid_field","field":"sessionId","message":"is required"}\n),
  qq({"error":"invalid_body","message":"body is not valid JSON","detail":"unexpected end of the body at offset 17"}\n),
  qq({"error":"invalid_field","field":"contentId","message":"must be 1-128 bytes of [A-Za-z0-9._:-]"}\n),
  qq({"error":"method_not_allowed","message":"view events are sent with POST"}\n),
  qq({"error":"invalid_field","field":"sessionId","message":"is required"}\n),
  qq({"error":"invalid_body","message":"body must be a JSON object"}\n),
  qq({"error":"method_not_allowed","message":"view events are sent with POST"}\n) ]
--- response_headers eval
[ ("Content-Type: application/json") x 7 ]

=== TEST 6: none: a wrong Content-Type is still a JSON 415
--- config eval
main::loc('none')
--- more_headers
Content-Type: text/plain
--- request eval
main::view('{"contentId":"a","sessionId":"s1"}')
--- error_code: 415
--- response_body
{"error":"unsupported_media_type","message":"Content-Type must be application/json"}
--- response_headers
Content-Type: application/json

=== TEST 7: none: a too large body is still a JSON 413
--- config eval
main::loc('none') . "    engagement_max_body_size 64;\n"
--- request eval
main::view('{"contentId":"a","sessionId":"s1","source":"' . ('x' x 80) . '"}')
--- error_code: 413
--- response_body
{"error":"body_too_large","message":"the body exceeds engagement_max_body_size"}

=== TEST 8: none: the access log says what full says (outcome, reason, content)
--- config eval
main::loc('none')
--- request eval
[ main::view('{"contentId":"log1","sessionId":"s"}'),
  main::view('{"contentId":"log1","sessionId":"s"}'),
  main::view('{"contentId":"log1"}'),
  "GET /engagement/view",
  "GET /eng.log" ]
--- error_code eval
[204, 204, 400, 405, 200]
--- response_body eval
[ "", "", qq({"error":"invalid_field","field":"sessionId","message":"is required"}\n),
  qq({"error":"method_not_allowed","message":"view events are sent with POST"}\n),
  "POST /engagement/view 204 counted - log1
POST /engagement/view 204 not_counted duplicate log1
POST /engagement/view 400 invalid sessionId -
GET /engagement/view 405 refused method -
" ]

=== TEST 9: minimal: the access log says what full says
--- config eval
main::loc('minimal')
--- request eval
[ main::view('{"contentId":"log2","sessionId":"s"}'),
  main::view('{"contentId":"log2","sessionId":"s"}'),
  "GET /eng.log" ]
--- error_code eval
[202, 200, 200]
--- response_body eval
[ qq({"counted":true}\n), qq({"counted":false,"reason":"duplicate"}\n),
  "POST /engagement/view 202 counted - log2
POST /engagement/view 200 not_counted duplicate log2
" ]

=== TEST 10: set at the server level, a location inherits it or sets its own
--- config
    engagement_answer none;
    location = /engagement/view { engagement view; }
    location = /engagement/view2 {
        engagement view;
        engagement_answer minimal;
    }
--- request eval
[ main::view('{"contentId":"a","sessionId":"s1"}'),
  "POST /engagement/view2\n" . '{"contentId":"b","sessionId":"s1"}' ]
--- error_code eval
[204, 202]
--- response_body eval
[ "", qq({"counted":true}\n) ]

=== TEST 11: an unknown mode is refused at nginx -t, naming the choices
--- config
    location = /engagement/view {
        engagement view;
        engagement_answer brief;
    }
--- must_die
--- error_log
invalid value "brief" of "engagement_answer": must be full, minimal or none

=== TEST 12: engagement_answer twice in one place is refused
--- config
    location = /engagement/view {
        engagement view;
        engagement_answer none;
        engagement_answer full;
    }
--- must_die
--- error_log
"engagement_answer" directive is duplicate
