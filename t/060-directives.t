# Guards configuration: each mistake an operator can make with the
# module's directives is refused at startup (`nginx -t`) with a message
# that names it, and the defaults work without any zone declared.
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();
log_level('info');

run_tests();

__DATA__

=== TEST 1: no zone declared: the default zones are made on first use
--- config
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
--- more_headers
Content-Type: application/json
--- request eval
[ "POST /engagement/view\n{\"contentId\":\"v\",\"sessionId\":\"s\"}",
  "GET /engagement/summary/v" ]
--- error_code eval
[202, 200]
--- response_body eval
[ qq({"counted":true,"contentId":"v","metrics":["view"],"views":1,"engagedViews":0,"replays":0}\n),
  qq({"contentId":"v","views":1,"engagedViews":0,"replays":0}\n) ]

=== TEST 2: locations name their zones
--- http_config
    engagement_dedupe_zone later_d:64k;
    engagement_zone later:64k;
--- config
    location = /engagement/view { engagement view zone=later dedupe=later_d; }
    location /engagement/summary { engagement summary zone=later; }
--- more_headers
Content-Type: application/json
--- request eval
[ "POST /engagement/view\n{\"contentId\":\"v\",\"sessionId\":\"s\"}",
  "GET /engagement/summary/v" ]
--- error_code eval
[202, 200]
--- response_body_like eval
[ qr/"views":1,/, qr/"views":1,/ ]

=== TEST 3: unknown endpoint
--- config
    location = /x { engagement vieww; }
--- must_die
--- error_log
unknown engagement endpoint "vieww": expected view, summary, like, state, heartbeat, live, resume, history, event, analytics, trending, status or health

=== TEST 4: unknown zone name
--- config
    location = /x { engagement view zone=nope; }
--- must_die
--- error_log
unknown engagement_zone "nope"

=== TEST 5: a dedupe zone used as a counters zone
--- http_config
    engagement_dedupe_zone dd:64k;
--- config
    location = /x { engagement view zone=dd; }
--- must_die
--- error_log
"dd" is an engagement_dedupe_zone zone, not an engagement_zone zone

=== TEST 6: a zone declared twice
--- http_config
    engagement_zone z:64k;
    engagement_zone z:128k;
--- config
--- must_die
--- error_log
zone "z" is already declared

=== TEST 7: zone without a size
--- http_config
    engagement_zone z;
--- config
--- must_die
--- error_log
invalid zone "z": expected name:size, e.g. engagement:16m

=== TEST 8: zone too small
--- http_config
    engagement_zone z:4k;
--- config
--- must_die
--- error_log
zone "z:4k" is too small: at least 32k

=== TEST 9: bad zone size
--- http_config
    engagement_zone z:lots;
--- config
--- must_die
--- error_log
invalid zone size "z:lots"

=== TEST 10: engaged threshold shorter than the view threshold
--- config
    location = /x { engagement view; engagement_view_after 10s; engagement_engaged_after 5s; }
--- must_die
--- error_log
"engagement_engaged_after" (5000 ms) must not be shorter than "engagement_view_after" (10000 ms)

=== TEST 11: unknown dedupe key
--- config
    location = /x { engagement view; engagement_dedupe_key cookie; }
--- must_die
--- error_log
invalid value "cookie"

=== TEST 12: zero dedupe window
--- config
    location = /x { engagement view; engagement_dedupe_window 0; }
--- must_die
--- error_log
"engagement_dedupe_window" must be positive

=== TEST 13: body limit out of range
--- config
    location = /x { engagement view; engagement_max_body_size 2m; }
--- must_die
--- error_log
"engagement_max_body_size" must be between 1 and 1m

=== TEST 14: engagement twice in one location
--- config
    location = /x { engagement view; engagement summary; }
--- must_die
--- error_log
"engagement" directive is duplicate

=== TEST 15: an unknown parameter
--- config
    location = /x { engagement summary dedupe=d; }
--- must_die
--- error_log
invalid parameter "dedupe=d" for "engagement summary"

=== TEST 16: status takes no parameters
--- config
    location = /x { engagement status zone=a; }
--- must_die
--- error_log
"engagement status" takes no parameters

=== TEST 17: zone directives belong to http{}
--- config
    location = /x { engagement_zone z:64k; }
--- must_die
--- error_log
"engagement_zone" directive is not allowed here

=== TEST 18: shared settings inherited from server level
--- config
    engagement_view_after 2s;
    location = /engagement/view { engagement view; }
--- more_headers
Content-Type: application/json
--- request
POST /engagement/view
{"contentId":"v","sessionId":"s","durationMs":1000}
--- error_code: 200
--- response_body_like: "reason":"below_policy"



=== TEST 19: engagement_redis buckets= beyond its bound is refused at nginx -t
--- http_config
    engagement_redis 127.0.0.1:6379 buckets=2h;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
invalid parameter "buckets=2h" of engagement_redis



=== TEST 20: engagement_redis uniques= that is not a time is refused at nginx -t
--- http_config
    engagement_redis 127.0.0.1:6379 uniques=often;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
invalid parameter "uniques=often" of engagement_redis



=== TEST 21: engagement_dimension with an unknown dimension is refused at nginx -t
--- config
    location = /v { engagement view; engagement_dimension region $http_x_region; }
--- must_die
--- error_log
unknown dimension "region" in "engagement_dimension": expected country, channel, category, device or source



=== TEST 22: engagement_dimension given twice for one dimension at one level is refused
--- config
    location = /v {
        engagement view;
        engagement_dimension country $http_x_country;
        engagement_dimension country $http_cf_ipcountry;
    }
--- must_die
--- error_log
"engagement_dimension country" is duplicate



=== TEST 23: engagement_dimension with a bad complex value is refused
--- config
    location = /v { engagement view; engagement_dimension channel "${oops"; }
--- must_die
--- error_log
the closing bracket in "oops" variable is missing



=== TEST 24: engagement_dimension_limit out of its bounds, a bad idle= and a duplicate are refused
--- http_config
    engagement_dimension_limit 0;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
invalid value "0" of "engagement_dimension_limit": the number of categories must be between 1 and 1024



=== TEST 25: engagement_dimension_limit with a bad idle= is refused
--- http_config
    engagement_dimension_limit 10 idle=soon;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
invalid idle time "soon" of "engagement_dimension_limit"



=== TEST 26: engagement_dimension_limit given twice is refused
--- http_config
    engagement_dimension_limit 10;
    engagement_dimension_limit 20 idle=30m;
--- config
    location = /v { engagement view; }
--- must_die
--- error_log
"engagement_dimension_limit" directive is duplicate



=== TEST 27: engagement_interaction with a bad name is refused
--- http_config
    engagement_interaction subscribe_button "share button";
--- config
    location = /e { engagement event; }
--- must_die
--- error_log
invalid interaction name "share button": 1-64 bytes of [A-Za-z0-9._:-]



=== TEST 28: an interaction declared twice (over two lines) is refused
--- http_config
    engagement_interaction subscribe_button share_button;
    engagement_interaction share_button;
--- config
    location = /e { engagement event; }
--- must_die
--- error_log
interaction "share_button" is declared twice



=== TEST 29: engagement event without declared interactions is refused
--- config
    location = /e { engagement event; }
--- must_die
--- error_log
"engagement event" needs the interactions it takes declared: "engagement_interaction <name> ...;" in the http block



=== TEST 30: engagement_dimension, the limit with idle= and the interactions at the http level: both endpoints start and count
--- http_config
    engagement_dimension_limit 2 idle=10m;
    engagement_interaction play_button;
    engagement_dimension country $http_x_country;
--- config
    location = /e { engagement event; }
    location = /v { engagement view; }
--- more_headers
Content-Type: application/json
X-Country: nl
--- request eval
[ "POST /e\n{\"contentId\":\"v\",\"name\":\"play_button\"}",
  "POST /v\n{\"contentId\":\"v\",\"sessionId\":\"s\",\"category\":\"a\"}" ]
--- error_code eval
[202, 202]



=== TEST 31: a counters zone may not take the dimensions zone's name
--- http_config
    engagement_zone engagement_dims:1m;
--- config
    location = /v { engagement view zone=engagement_dims; }
--- must_die
--- error_log
zone name "engagement_dims" is reserved for the module's dimensions zone; give the zone another name
