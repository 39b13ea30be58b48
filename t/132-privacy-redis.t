# Guards what leaves the node, against a real redis-server: opted-out
# events (Sec-GPC, "optOut") count as views but add nothing to the
# unique-viewer count, identified viewers do; and no raw viewer id,
# session id or client address appears anywhere in Redis (keys, hash
# fields, values).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Engagement::Test;
use Time::HiRes qw(sleep time);

my $port = free_port();
my $rport = free_ports(400, 50, 1);

my $rpid = start_redis($rport);
ok(redis_cli($rport, undef, 'PING') eq 'PONG', 'redis-server started');

my $prefix = new_prefix('privacy-redis');
write_conf($prefix, port => $port, http => <<"EOC", server => <<'EOC2');
engagement_redis 127.0.0.1:$rport timeout=500ms connect_timeout=500ms;
    engagement_flush_interval 100ms;
EOC
    location = /engagement/view { engagement view; }
    location = /client/view { engagement view; engagement_dedupe_key client; }
    location = /status { engagement status; }
EOC2
my $pid = start_nginx($prefix, $port);
ok($pid, 'nginx started') or diag(slurp("$prefix/logs/stderr.log"));

sub ev {
    my ($json, %h) = @_;
    my ($st, $body) = http_request($port, 'POST', $h{uri} // '/engagement/view',
        $json, 'Content-Type' => 'application/json',
        ($h{gpc} ? ('Sec-GPC' => '1') : ()));
    return "$st $body";
}

like(ev('{"contentId":"p","sessionId":"sess-aaa1","viewerId":"viewer-alice"}'),
     qr/^202 /, 'alice');
like(ev('{"contentId":"p","sessionId":"sess-aaa2","viewerId":"viewer-alice"}'),
     qr/^200 .*"duplicate"/, 'alice again, another session: a duplicate');
like(ev('{"contentId":"p","sessionId":"sess-bbb1","viewerId":"viewer-bob"}'),
     qr/^202 /, 'bob');
like(ev('{"contentId":"p","sessionId":"sess-ccc1","viewerId":"viewer-carol"}',
        gpc => 1), qr/^202 /, 'carol with Sec-GPC: counted');
like(ev('{"contentId":"p","sessionId":"sess-ddd1","viewerId":"viewer-dave","optOut":true}'),
     qr/^202 /, 'dave with optOut: counted');
like(ev('{"contentId":"p","sessionId":"sess-eee1"}', uri => '/client/view'),
     qr/^202 /, 'a client identity');

my $deadline = time + 10;
my $views = '';
while (time < $deadline) {
    $views = redis_cli($rport, undef, 'HGET', 'eng:{c:p}', 'views');
    last if $views eq '5';
    sleep 0.1;
}
is($views, '5', 'Redis has the 5 views');
is(redis_cli($rport, undef, 'PFCOUNT', 'eng:{c:p}:uv'), '3',
   'unique viewers: alice, bob and the client, not the opted-out two');

# everything Redis holds, as text
my $all = '';
for my $k (split /\n/, redis_cli($rport, undef, '--scan')) {
    $all .= "$k\n";
    my $type = redis_cli($rport, undef, 'TYPE', $k);
    if ($type eq 'hash') {
        $all .= redis_cli($rport, undef, 'HGETALL', $k) . "\n";
    } elsif ($type eq 'string') {
        $all .= redis_cli($rport, undef, 'GET', $k) . "\n";
    } elsif ($type eq 'zset') {
        $all .= redis_cli($rport, undef, 'ZRANGE', $k, 0, -1) . "\n";
    } elsif ($type eq 'set') {
        $all .= redis_cli($rport, undef, 'SMEMBERS', $k) . "\n";
    }
}
ok(length $all, 'Redis holds keys');
unlike($all, qr/viewer-|sess-|127\.0\.0|alice|bob|carol|dave/,
       'no raw viewer id, session id or address in Redis');

stop_nginx($pid);
stop_redis($rpid);
my $log = slurp("$prefix/logs/error.log") . slurp("$prefix/logs/stderr.log");
unlike($log, qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/,
       'no alert, crash or sanitizer report');

done_testing();
