# Self-test of the bundled test runner (t/lib/Test/Nginx/Socket.pm).
# Only core nginx features are used; no module is loaded.
use Test::Nginx::Socket 'no_plan';
use Cwd ();
use File::Temp ();

repeat_each(1);
no_shuffle();
log_level('info');
run_tests();

# --- Unit checks of helpers -----------------------------------------------
{
    local $ENV{TEST_NGINX_RUNNER_SELFTEST} = 'v1';
    delete local $ENV{TEST_NGINX_NO_SUCH_VAR_XYZ};
    is(Test::Nginx::Socket::_expand_env(
           'a $TEST_NGINX_RUNNER_SELFTEST $TEST_NGINX_NO_SUCH_VAR_XYZ $server_port'),
       'a v1 $TEST_NGINX_NO_SUCH_VAR_XYZ $server_port',
       'runner: known $TEST_NGINX_ vars expanded, unknown ones kept');
    my $r = Test::Nginx::Socket::_build_request("POST /x\n  body \n", "X-A: 1");
    is($r->{pieces}[0],
       "POST /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-A: 1\r\n"
       . "Content-Length: 4\r\n\r\nbody",
       'runner: request building (Host, Connection: close, more_headers, Content-Length)');
    $r = Test::Nginx::Socket::_build_request("POST /x\nabc", "Transfer-Encoding: chunked");
    unlike($r->{pieces}[0], qr/Content-Length/,
           'runner: no Content-Length when more_headers sets the framing');
    my $res = Test::Nginx::Socket::_parse_response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n", 'GET');
    is($res->{body}, 'abcde', 'runner: chunked decoding');
    ok($res->{complete}, 'runner: chunked response complete');
}

# --- The runner must report failures -------------------------------------
# Run t/data/runner-must-fail.pl (every block has one wrong expectation)
# in a child perl on another port and server root, and check its TAP.
{
    my $port    = server_port() + 1;
    my $tmp     = File::Temp->newdir('runner-servroot-XXXXXX', TMPDIR => 1);
    my $lib     = Cwd::abs_path('t/lib');
    my $fixture = 't/data/runner-must-fail.pl';

    local $ENV{TEST_NGINX_PORT}        = $port;
    local $ENV{TEST_NGINX_SERVER_PORT} = $port;
    local $ENV{TEST_NGINX_SERVROOT}    = "$tmp";
    delete local $ENV{TEST_NGINX_LOAD_MODULES};

    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        exec $^X, "-I$lib", $fixture or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> };
    close $fh;
    my $status = $?;
    my $exit   = $status >> 8;

    my @not_ok = $out =~ /^(not ok \d+ .*)$/mg;
    ok($status != 0, 'runner: failing blocks give a non-zero exit status')
        or diag($out);
    is(scalar(@not_ok), 6, 'runner: exactly the 6 wrong expectations fail')
        or diag($out);
    is($exit, 6, 'runner: exit status counts the failures');

    for my $re (
        qr/^not ok \d+ - TEST 1: wrong body - response_body - response is expected$/m,
        qr/^not ok \d+ - TEST 2: wrong error_code - status code ok$/m,
        qr/^not ok \d+ - TEST 3: wrong no_error_log - pattern "access forbidden by rule" should not match any line in error.log$/m,
        qr/^not ok \d+ - TEST 4: wrong error_log - pattern "this line is never logged" matches a line in error.log$/m,
        qr/^not ok \d+ - TEST 5: unexpected startup failure - nginx started$/m,
        qr/^not ok \d+ - TEST 6: must_die but nginx starts - nginx must die$/m,
    ) {
        like($out, $re, "runner: reports $re");
    }
    # The correct expectations of the same blocks still pass.
    like($out, qr/^ok \d+ - TEST 1: wrong body - status code ok$/m,
         'runner: correct status code in a failing block passes');
    like($out, qr/^ok \d+ - TEST 3: wrong no_error_log - status code ok$/m,
         'runner: status 403 expectation passes');
    like($out, qr/got: "hi\\n"/, 'runner: body mismatch shows what was received');
    unlike($out, qr/^not ok \d+ .*(?:runner error|still running|exits cleanly)/m,
           'runner: no spurious process-management failures');
}

__DATA__

=== TEST 1: return 200 with a body
--- config
    location = /t {
        return 200 "hi\n";
    }
--- request
GET /t
--- response_body
hi
--- error_code: 200
--- no_error_log
[alert]
[error]



=== TEST 2: add_header, response_headers with an absent header
--- config
    location = /h {
        add_header X-Foo bar;
        return 200 "ok\n";
    }
--- request
GET /h
--- response_headers
X-Foo: bar
Content-Type: text/plain
Content-Length: 3
!X-Absent
--- response_headers_like
Server: nginx(/[\d.]+)?
--- response_body
ok



=== TEST 3: 404
--- config
    location = /missing {
        return 404;
    }
--- request
GET /missing
--- error_code: 404
--- response_body_like: 404 Not Found



=== TEST 4: POST with a body gets a Content-Length, return 204
--- config
    location = /p {
        add_header X-CL $http_content_length always;
        add_header X-Method $request_method always;
        return 204;
    }
--- request
POST /p
hello world
--- error_code: 204
--- response_headers
X-CL: 11
X-Method: POST
--- response_body



=== TEST 5: three requests on separate connections
--- config
    location = /a { return 200 "a\n"; }
    location = /b { return 404; }
    location = /c {
        add_header X-CL $http_content_length always;
        return 204;
    }
--- request eval
["GET /a", "GET /b", "POST /c\nxyz"]
--- error_code eval
[200, 404, 204]
--- response_body_like eval
["^a\n\\z", "<title>404 Not Found</title>", "^\\z"]
--- response_headers eval
["!X-CL", "!X-CL", "X-CL: 3"]



=== TEST 6: error_log from a deny rule
--- config
    location = /deny {
        deny all;
    }
--- request
GET /deny
--- error_code: 403
--- error_log
access forbidden by rule
--- no_error_log
[alert]
[crit]



=== TEST 7: error_log eval with a regex, no_error_log eval
--- config
    location = /deny {
        deny all;
    }
--- request
GET /deny?x=1
--- error_code: 403
--- error_log eval
[qr/\[error\] .*access forbidden by rule, client: 127\.0\.0\.1/, "request: \"GET /deny?x=1 HTTP/1.1\""]
--- no_error_log eval
[qr/\[(?:alert|emerg)\]/]



=== TEST 8: must_die with an unknown directive
--- config
    location = /t {
        no_such_directive_here on;
    }
--- must_die
--- error_log
unknown directive "no_such_directive_here"



=== TEST 9: $TEST_NGINX_ variables are expanded, nginx variables are not
--- config
    location = /port {
        return 200 "$TEST_NGINX_SERVER_PORT $server_port\n";
    }
--- request
GET /port
--- response_body
$TEST_NGINX_SERVER_PORT $TEST_NGINX_SERVER_PORT



=== TEST 10: chunked response (ssi), user_files
--- user_files
>>> ssi.html
hello <!--# echo var="arg_a" --> world
--- config
    location = /ssi.html {
        ssi on;
        root $TEST_NGINX_HTML_DIR;
    }
--- request
GET /ssi.html?a=42
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body
hello 42 world



=== TEST 11: raw_request in several packets
--- config
    location = /t {
        return 200 "raw\n";
    }
--- raw_request eval
["GET /t HTTP/1.1\r\nHost: loc", "alhost\r\nConnection: close\r\n\r\n"]
--- response_body
raw



=== TEST 12: raw keep-alive request is framed by Content-Length
--- config
    location = /t {
        return 200 "kept\n";
    }
--- raw_request eval
"GET /t HTTP/1.1\r\nHost: localhost\r\n\r\n"
--- timeout: 2
--- response_headers
Connection: keep-alive
--- response_body
kept



=== TEST 13: more_headers, HEAD
--- config
    location = /t {
        return 200 "[$http_x_test][$http_user_agent]\n";
    }
--- more_headers
X-Test: abc
User-Agent: runner
--- request
HEAD /t
--- response_headers
Content-Length: 14
--- response_body



=== TEST 14: main_config, http_config, wait
--- main_config
worker_rlimit_nofile 4096;
--- http_config
    map $uri $mapped {
        default "mapped";
    }
--- config
    location = /m {
        return 200 "$mapped\n";
    }
--- request
GET /m
--- wait: 0.05
--- response_body
mapped



=== TEST 15: static file from the root location
--- user_files
>>> index.html
<p>index</p>
--- config
--- request
GET /
--- response_body
<p>index</p>
