# Guards likes and reactions against a real redis-server: every
# transition of the per-(user, content) state machine with the counts in
# Redis and in the answer, request-id retries, two workers and many
# concurrent clients toggling (counts = truth computed from final states),
# Redis stopped mid-way (503, nothing half-applied, exact afterwards),
# bad input, and the configuration rule that reactions need Redis.
#
# The redis-server is ours (a free port, data in a private temporary
# directory, $TEST_NGINX_REDIS_PORT in the config); it keeps the state
# from block to block. Steps with counts in Redis, concurrency and the
# outage are the Perl of each block's "--- post_check".
use strict;
use warnings;
use FindBin;
# our helpers first: their END (which stops our servers) then runs after
# the runner's END has stopped nginx
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Test::Nginx::Socket 'no_plan';
use JSON::PP;
use Time::HiRes qw(sleep time);

our $port = nginx_port();
our $rport = free_ports(500, 50, 1);
our @types = qw(like love laugh wow sad angry);
start_redis($rport);
$ENV{TEST_NGINX_REDIS_PORT} = $rport;

master_on();
workers(2);
log_level('info');
no_shuffle();
add_response_body_check(post_check_hook());

# the blocks that do not say otherwise run with Redis, tokens and these
# locations
add_block_preprocessor(sub {
    my ($block) = @_;
    return if $block->{must_die};
    $block->set_value('http_config', <<'EOC') unless $block->{http_config};
    engagement_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=500ms connect_timeout=500ms backoff=50ms:300ms;
    engagement_token_secret 0123456789abcdef0123456789abcdef;
EOC
    $block->set_value('config', <<'EOC') unless $block->{config};
    location = /engagement/like { engagement like; }
    location = /engagement/state { engagement state; }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
    location = /liket { engagement like; engagement_require_token on; }
    location = /mint { engagement_token_bind $arg_c $arg_u; return 200 $engagement_token; }
EOC
});

sub react {
    my ($method, $json) = @_;
    my ($st, $b, $h) = http_request($port, $method, '/engagement/like', $json,
                                    'Content-Type' => 'application/json');
    my $doc = eval { decode_json($b) };
    return ($st, $doc, $b, $h);
}
sub rcount {
    my ($c, $t) = @_;
    my $v = redis_cli($rport, undef, 'HGET', "eng:{c:$c}", "r:$t");
    return $v eq '' ? 0 : $v;
}
sub counts_of { my ($doc) = @_; return join ',', map { $doc->{reactions}{$_} // 'x' } @types }
sub no_alerts {
    unlike(error_log_text(), qr/\[alert\]|exited on signal|AddressSanitizer/, 'no alert or crash');
}

run_tests();

__DATA__

=== TEST 1: every transition, with the counts in the answer and in Redis
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    ok(wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 },
       'both workers connect to Redis');
    my @steps = (
        # method, body, reaction, previous, changed, counts (like,love,laugh,wow,sad,angry)
        ['POST',   '{"contentId":"c","userId":"u1"}',                        'like',  undef,  1, '1,0,0,0,0,0', 'none -> like'],
        ['POST',   '{"contentId":"c","userId":"u1","reaction":"like"}',      'like',  'like', 0, '1,0,0,0,0,0', 'like -> like is a no-op'],
        ['POST',   '{"contentId":"c","userId":"u1","reaction":"love"}',      'love',  'like', 1, '0,1,0,0,0,0', 'like -> love: like -1, love +1'],
        ['POST',   '{"contentId":"c","userId":"u1","reaction":"love"}',      'love',  'love', 0, '0,1,0,0,0,0', 'love -> love is a no-op'],
        ['POST',   '{"contentId":"c","userId":"u2","reaction":"angry"}',     'angry', undef,  1, '0,1,0,0,0,1', 'another user: none -> angry'],
        ['DELETE', '{"contentId":"c","userId":"u1"}',                        undef,   'love', 1, '0,0,0,0,0,1', 'unlike: love -> none'],
        ['DELETE', '{"contentId":"c","userId":"u1"}',                        undef,   undef,  0, '0,0,0,0,0,1', 'unlike of nothing is a no-op'],
        ['POST',   '{"contentId":"c","userId":"u1","reaction":"wow","requestId":"q1"}', 'wow', undef, 1, '0,0,0,1,0,1', 'none -> wow with a request id'],
        ['DELETE', '{"contentId":"c","userId":"u1","requestId":"q2"}',       undef,   'wow',  1, '0,0,0,0,0,1', 'wow -> none'],
    );
    for my $s (@steps) {
        my ($m, $body, $reaction, $prev, $changed, $counts, $name) = @$s;
        my ($st, $doc, $raw) = react($m, $body);
        is($st, 200, "$name: 200");
        is($doc->{reaction}, $reaction, "$name: the user's state in the answer");
        is($doc->{previous}, $prev, "$name: the previous state");
        is($doc->{changed} ? 1 : 0, $changed, "$name: changed");
        is(counts_of($doc), $counts, "$name: counts of every type in the answer");
        is(join(',', map { rcount('c', $_) } @types), $counts, "$name: counts in Redis");
        is($doc->{likes}, (split /,/, $counts)[0], "$name: likes = the like count");
    }
    # a late retry of q1 must not bring wow back
    my ($st, $doc) = react('POST', '{"contentId":"c","userId":"u1","reaction":"wow","requestId":"q1"}');
    is($st, 200, 'a retried request id: 200');
    is($doc->{reason}, 'duplicate_request', 'answered as a duplicate request');
    is($doc->{reaction}, undef, 'and the state stays as it is now (none)');
    is(rcount('c', 'wow'), 0, 'wow is not counted again');
    is(redis_cli($rport, undef, 'HGET', 'eng:{c:c}:reactions', 'u2'), 'angry', 'Redis holds the state per user');

    # state and summary
    my (undef, $b) = http_request($port, 'GET', '/engagement/state?contentId=c&userId=u2');
    is($b, qq({"contentId":"c","userId":"u2","reaction":"angry","likes":0,"reactions":{"like":0,"love":0,"laugh":0,"wow":0,"sad":0,"angry":1}}\n),
       'state: the user reaction and all counts');
    (undef, $b) = http_request($port, 'GET', '/engagement/state?contentId=c&userId=nobody');
    like($b, qr/"reaction":null/, 'state of a user without a reaction: null');
    (undef, $b) = http_request($port, 'GET', '/engagement/summary/c');
    like($b, qr/"likes":0,"reactions":\{"like":0,"love":0,"laugh":0,"wow":0,"sad":0,"angry":1\}\}\n\z/,
         'summary: reactions of every type, zeros included');
    no_alerts();
--- no_shutdown_error_log eval
qr/\[alert\]|exited on signal|AddressSanitizer/



=== TEST 2: bad input is refused with a JSON error naming the problem
--- request eval
[
map { "$_->[0] /engagement/like\n$_->[1]" }
    ['POST', '{"contentId":"c","userId":"u1","reaction":"hate"}'],
    ['POST', '{"contentId":"c"}'],
    ['POST', '{"userId":"u"}'],
    ['POST', '{"contentId":"' . ('c' x 129) . '","userId":"u"}'],
    ['POST', '{"contentId":"c","userId":"' . ('u' x 129) . '"}'],
    ['POST', '{"contentId":"c","userId":"u","reaction":7}'],
    ['POST', '{"contentId":"c","userId":"u x"}'],
    ['POST', 'not json'],
    ['PUT', '{"contentId":"c","userId":"u"}'],
]
--- more_headers eval
[("Content-Type: application/json") x 9]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400, 405]
--- response_body_like eval
[
qr/"field":"reaction"/,
qr/"field":"userId","message":"is required"/,
qr/"field":"contentId"/,
qr/"field":"contentId"/,
qr/"field":"userId"/,
qr/"field":"reaction"/,
qr/"field":"userId"/,
qr/"error":"invalid_body"/,
qr/"error":"method_not_allowed"/,
]
--- post_check
    my ($s3, $b3, $h3) = http_request($port, 'GET', '/engagement/like');
    is($s3, 405, 'GET on like: 405');
    is($h3->{allow}, 'POST, DELETE', 'with Allow');
    ($s3, $b3) = http_request($port, 'POST', '/engagement/like', '{"contentId":"c","userId":"u"}', 'Content-Type' => 'text/plain');
    is($s3, 415, 'wrong content type: 415');
    ($s3, $b3) = http_request($port, 'GET', '/engagement/state?contentId=c');
    is($s3, 400, 'state without userId: 400');
    like($b3, qr/"field":"userId"/, 'naming the field');
    is(join(',', map { rcount('c', $_) } @types), '0,0,0,0,0,1', 'nothing counted by bad input');
    no_alerts();
--- no_shutdown_error_log eval
qr/\[alert\]|exited on signal|AddressSanitizer/



=== TEST 3: two workers, many concurrent clients toggling: counts equal the final states
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 };
    # --- two workers, many concurrent clients toggling --------------------------
    {
        my $clients = 6;
        my @kids;
        for my $k (1 .. $clients) {
            my $kid = fork() // die;
            if ($kid == 0) {
                srand($k * 7919);
                my $fails = 0;
                for my $i (1 .. 40) {
                    my $user = "k$k-" . int(rand(5));
                    my $r = int(rand(8));
                    my ($m, $body);
                    if ($r >= 6) {
                        ($m, $body) = ('DELETE', qq({"contentId":"hot","userId":"$user"}));
                    } else {
                        ($m, $body) = ('POST', qq({"contentId":"hot","userId":"$user","reaction":"$types[$r]"}));
                    }
                    my ($s, $rb) = http_request($port, $m, '/engagement/like', $body,
                                                'Content-Type' => 'application/json');
                    next if $s == 200;
                    print STDERR "# client $k: $m $body: $s $rb\n" unless $fails++;
                }
                POSIX::_exit($fails ? 1 : 0);
            }
            push @kids, $kid;
        }
        my $bad = 0;
        for (@kids) { waitpid($_, 0); $bad++ if $? }
        is($bad, 0, 'every toggle answered 200');
        my %truth = map { $_ => 0 } @types;
        my @flat = split /\n/, redis_cli($rport, undef, 'HGETALL', 'eng:{c:hot}:reactions');
        my %state = @flat;
        $truth{$_}++ for values %state;
        my $want = join ',', map { $truth{$_} } @types;
        is(join(',', map { rcount('hot', $_) } @types), $want,
           "counts equal the users in each state (" . scalar(keys %state) . " users with a reaction): $want");
        my (undef, $sb) = http_request($port, 'GET', '/engagement/summary/hot');
        my $sd = decode_json($sb);
        is(join(',', map { $sd->{reactions}{$_} } @types), $want, 'and the summary agrees');
    }
    no_alerts();
--- no_shutdown_error_log eval
qr/\[alert\]|exited on signal|AddressSanitizer/



=== TEST 4: likes where tokens are required: bound to the content and the user
--- request
GET /mint?c=tk&u=alice
--- response_body_like: ^1\.\d+\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{43}$
--- post_check
    wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 };
    # --- likes where tokens are required: bound to the content and the user ---------
    {
        my (undef, $tok) = http_request($port, 'GET', '/mint?c=tk&u=alice');
        like($tok, qr/^1\.\d+\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{43}$/, 'a token minted for (tk, alice)');
        my @cases = (
            ['{"contentId":"tk","userId":"alice"}', {}, 403, 'missing', 'no token'],
            [qq({"contentId":"tk","userId":"bob","token":"$tok"}), {}, 403, 'bad_signature', "alice's token used by bob"],
            [qq({"contentId":"tk2","userId":"alice","token":"$tok"}), {}, 403, 'wrong_content', 'the token of another content'],
            ['{"contentId":"tk","userId":"alice","token":42}', {}, 400, undef, 'a token that is not a string'],
        );
        for my $c (@cases) {
            my ($body, $hdr, $code, $reason, $name) = @$c;
            my ($s, $b) = http_request($port, 'POST', '/liket', $body,
                                       'Content-Type' => 'application/json', %$hdr);
            is($s, $code, "token on likes, $name: $code");
            like($b, qr/"reason":"\Q$reason\E"/, "token on likes, $name: reason $reason") if $reason;
        }
        is(rcount('tk', 'like'), 0, 'refused likes changed nothing');
        my ($s, $b) = http_request($port, 'POST', '/liket', qq({"contentId":"tk","userId":"alice","token":"$tok"}),
                                   'Content-Type' => 'application/json');
        is($s, 200, 'a valid token in the body: the like is applied');
        like($b, qr/"changed":true/, 'changed');
        ($s, $b) = http_request($port, 'DELETE', '/liket', '{"contentId":"tk","userId":"alice"}',
                                'Content-Type' => 'application/json', 'X-Engagement-Token' => $tok);
        is($s, 200, 'a valid token in the header: the unlike is applied');
        is(rcount('tk', 'like'), 0, 'like then unlike: 0');
        my (undef, $st) = http_request($port, 'GET', '/status');
        like($st, qr/^nginx_engagement_token_refused_total\{zone="engagement",reason="missing"\} 1$/m,
             'the refusals are in the status by reason');
    }
    no_alerts();
--- no_shutdown_error_log eval
qr/\[alert\]|exited on signal|AddressSanitizer/



=== TEST 5: Redis stopped mid-way: 503, nothing half-applied, exact afterwards
--- request
GET /status
--- response_body_like: ^# HELP nginx_engagement_
--- post_check
    wait_until { (status_metric('nginx_engagement_redis_ready_workers{zone="engagement"}') // 0) == 2 };
    # --- Redis stopped mid-way -----------------------------------------------------
    {
        react('POST', '{"contentId":"down","userId":"a","reaction":"love"}');
        stop_redis(redis_pid($rport));
        my ($s4, undef, $raw, $h4) = react('POST', '{"contentId":"down","userId":"b","reaction":"love"}');
        is($s4, 503, 'Redis down: 503');
        is($h4->{'retry-after'}, '1', 'with Retry-After');
        like($raw, qr/^\{"error":"backend_unavailable","message":"Redis is unavailable; nothing changed/, 'and a JSON reason');
        ($s4) = react('DELETE', '{"contentId":"down","userId":"a"}');
        is($s4, 503, 'unlike while down: 503 too');
        ($s4) = http_request($port, 'GET', '/engagement/state?contentId=down&userId=a');
        is($s4, 503, 'state while down: 503');
        start_redis($rport, keep => 1);
        my $ok = 0;
        for (1 .. 100) {
            my ($s5) = react('POST', '{"contentId":"down","userId":"b","reaction":"love"}');
            if ($s5 == 200) { $ok = 1; last }
            sleep 0.05;
        }
        ok($ok, 'accepted again once Redis is back');
        is(rcount('down', 'love'), 2, 'counts equal the truth after the outage: a and b love it');
    }

    my $t = (http_request($port, 'GET', '/status'))[1];
    like($t, qr/^nginx_engagement_reaction_requests_total\{zone="engagement",result="changed"\} [1-9]\d*$/m, 'status counts reactions');
    like($t, qr/^nginx_engagement_reaction_requests_total\{zone="engagement",result="unavailable"\} [3-9]$/m, 'and refusals while Redis was down');
    no_alerts();
--- no_shutdown_error_log eval
qr/\[alert\]|exited on signal|AddressSanitizer/



=== TEST 6: reactions need Redis: "engagement like" without engagement_redis fails
--- config
    location = /l { engagement like; }
--- must_die
--- error_log
"engagement like" and "engagement state" need "engagement_redis"
