# Unit checks of the bundled runner's helpers (t/lib/Test/Nginx/Socket.pm),
# run by t/000-runner.t in a child perl with -I t/lib. Not a .t file on
# purpose: it tests the bundled runner only.
use strict;
use warnings;
use Test::Nginx::Socket 'no_plan';

{
    local $ENV{TEST_NGINX_RUNNER_SELFTEST} = 'v1';
    delete local $ENV{TEST_NGINX_NO_SUCH_VAR_XYZ};
    is(Test::Nginx::Socket::_expand_env(
           'a $TEST_NGINX_RUNNER_SELFTEST $TEST_NGINX_NO_SUCH_VAR_XYZ $server_port'),
       'a v1 $TEST_NGINX_NO_SUCH_VAR_XYZ $server_port',
       'runner: known $TEST_NGINX_ vars expanded, unknown ones kept');
}
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
