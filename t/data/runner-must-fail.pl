# Fixture for t/000-runner.t: EVERY block here has exactly one wrong
# expectation, so this file must fail (7 failing tests). Not a .t file on
# purpose, so that prove never runs it directly.
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();
log_level('info');
run_tests();

__DATA__

=== TEST 1: wrong body
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t
--- response_body
bye



=== TEST 2: wrong error_code
--- config
    location = /t { return 404; }
--- request
GET /t
--- error_code: 200



=== TEST 3: wrong no_error_log
--- config
    location = /t { deny all; }
--- request
GET /t
--- error_code: 403
--- no_error_log
access forbidden by rule



=== TEST 4: wrong error_log
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t
--- error_log
this line is never logged



=== TEST 5: unexpected startup failure
--- config
    location = /t { no_such_directive_here on; }
--- request
GET /t



=== TEST 6: must_die but nginx starts
--- config
    location = /t { return 200; }
--- must_die
--- error_log



=== TEST 7: error_log per request
--- config
    location = /t { deny all; }
    location = /ok { return 200 "ok\n"; }
--- request eval
["GET /t", "GET /ok"]
--- error_code eval
[403, 200]
--- error_log
access forbidden by rule
