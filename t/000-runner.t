# Self-test of the bundled test runner (t/lib/Test/Nginx/Socket.pm). The
# blocks use core nginx only and pass under both runners; the checks after
# run_tests() run the bundled runner in child perls.
use Test::Nginx::Socket 'no_plan';
use Cwd ();
use File::Temp ();
use POSIX ();

repeat_each(1);
no_shuffle();
log_level('info');
run_tests();

# The bundled runner is tested in child perls that load it (-I t/lib), so
# this file checks it whichever runner runs the blocks below (the bundled
# one, or the real Test::Nginx::Socket).
my $lib = Cwd::abs_path('t/lib');

sub run_child {
    my ($script, $port, $servroot) = @_;
    local $ENV{TEST_NGINX_PORT}        = $port;
    local $ENV{TEST_NGINX_SERVER_PORT} = $port;
    local $ENV{TEST_NGINX_SERVROOT}    = $servroot;
    delete local $ENV{TEST_NGINX_LOAD_MODULES};
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        exec $^X, "-I$lib", $script or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> };
    close $fh;
    return ($out, $?);
}

# --- Unit checks of helpers -----------------------------------------------
# t/data/runner-units.pl checks the request builder, env expansion and the
# response parser; each of its results is one test here.
{
    my $tmp = File::Temp->newdir('runner-servroot-XXXXXX', TMPDIR => 1);
    my ($out, $status) = run_child('t/data/runner-units.pl', server_port() + 1, "$tmp");
    my @results = $out =~ /^((?:not )?ok \d+ - .*)$/mg;
    is(scalar(@results), 5, 'runner: the 5 unit checks ran') or diag($out);
    for my $r (@results) {
        my ($not, $what) = $r =~ /^(not )?ok \d+ - (.*)$/;
        ok(!$not, $what) or diag($out);
    }
    is($status, 0, 'runner: unit checks exit 0');
}

# --- The runner must report failures -------------------------------------
# Run t/data/runner-must-fail.pl (every block has one wrong expectation)
# in a child perl on another port and server root, and check its TAP.
{
    my $tmp = File::Temp->newdir('runner-servroot-XXXXXX', TMPDIR => 1);
    my ($out, $status) = run_child('t/data/runner-must-fail.pl', server_port() + 1, "$tmp");
    my $exit = $status >> 8;

    my @not_ok = $out =~ /^(not ok \d+ .*)$/mg;
    ok($status != 0, 'runner: failing blocks give a non-zero exit status')
        or diag($out);
    is(scalar(@not_ok), 7, 'runner: exactly the 7 wrong expectations fail')
        or diag($out);
    is($exit, 7, 'runner: exit status counts the failures');

    for my $re (
        qr/^not ok \d+ - TEST 1: wrong body - response_body - response is expected$/m,
        qr/^not ok \d+ - TEST 2: wrong error_code - status code ok$/m,
        qr/^not ok \d+ - TEST 3: wrong no_error_log - pattern "access forbidden by rule" should not match any line in error.log$/m,
        qr/^not ok \d+ - TEST 4: wrong error_log - pattern "this line is never logged" matches a line in error.log$/m,
        qr/^not ok \d+ - TEST 5: unexpected startup failure - nginx started$/m,
        qr/^not ok \d+ - TEST 6: must_die but nginx starts - nginx must die$/m,
        # error_log is checked on each request's own slice of error.log
        qr/^not ok \d+ - TEST 7: error_log per request - pattern "access forbidden by rule" matches a line in error.log \(req 1\)$/m,
    ) {
        like($out, $re, "runner: reports $re");
    }
    # The correct expectations of the same blocks still pass.
    like($out, qr/^ok \d+ - TEST 1: wrong body - status code ok$/m,
         'runner: correct status code in a failing block passes');
    like($out, qr/^ok \d+ - TEST 3: wrong no_error_log - status code ok$/m,
         'runner: status 403 expectation passes');
    like($out, qr/^ok \d+ - TEST 7: error_log per request - pattern "access forbidden by rule" matches a line in error.log \(req 0\)$/m,
         'runner: the request that wrote the line passes its error_log check');
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
--- response_body
ok



=== TEST 2b: response_headers_like (the real runner ignores it when a block has response_headers)
--- config
    location = /h {
        return 200 "ok\n";
    }
--- request
GET /h
--- response_headers_like
Server: nginx(/[\d.]+)?
Content-Length: \d+



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
        root html;
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
        # the real runner reads until nginx closes the idle connection
        keepalive_timeout 1s;
        return 200 "kept\n";
    }
--- raw_request eval
"GET /t HTTP/1.1\r\nHost: localhost\r\n\r\n"
--- timeout: 3
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



=== TEST 16: grep_error_log sees each request's own slice of error.log
--- config
    location = /deny {
        deny all;
    }
--- request eval
["GET /deny?a=1", "GET /deny?a=2"]
--- error_code eval
[403, 403]
--- grep_error_log chomp
access forbidden by rule
--- grep_error_log_out
access forbidden by rule
