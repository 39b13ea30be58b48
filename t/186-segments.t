# Guards views verified from what nginx served (issue 15,
# engagement_segments): HLS segments made by ffmpeg at test time and
# served by nginx's static module credit their media time to the session
# of a valid view token, in the log phase, with no player beacon. A
# session counts one view once it was served engagement_view_after (8 s:
# two 4 s segments) and one engaged view at engagement_engaged_after
# (16 s), never before; replaying a segment URL earns nothing twice; a
# beacon of the same session after segment credit is a duplicate, and
# segment credit after a beacon is too; a missing, malformed, expired,
# other-content or other-session token credits nothing (each counted);
# playlists, 404s, HEAD and aborted transfers credit nothing; the session
# is a live viewer while it fetches segments; a full segments zone
# credits nothing more for new sessions (counted) and keeps crediting the
# ones it holds; tokens in cookies and the README's playlist rewriting
# work; byte ranges of an ffmpeg-made MP4 credit each part of the file
# once (bitrate=), ranges of a segment credit it once; the durable writer
# gets the same lines as for beacons (a real clickhouse-server, when
# installed); the directive's errors at nginx -t.
use strict;
use warnings;
use FindBin;
BEGIN { push @INC, "$FindBin::Bin/lib" }
use Engagement::Test;
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use Time::HiRes qw(sleep time);

our ($Media, $Secret, $Size, $Bitrate);

BEGIN {
    $Secret = 'segments-secret-0123456789abcdef';

    my $ff = (grep { -x "$_/ffmpeg" } split /:/, $ENV{PATH})[0];
    if (!$ff) {
        Test::More::plan(skip_all => 'ffmpeg is not installed (Debian '
            . 'package ffmpeg; ./build.sh test installs it): no segments '
            . 'to serve');
    }

    # 24 s of test pattern, cut in six 4 s HLS segments (a key frame each
    # second, so each cut falls on 4 s), and a short MP4
    $Media = Engagement::Test::scratch_dir('media');
    mkdir "$Media/hls";
    mkdir "$Media/hls/v1";
    system('ffmpeg', '-nostdin', '-loglevel', 'error', '-f', 'lavfi',
           '-i', 'testsrc=duration=24:size=160x120:rate=10',
           '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '10',
           '-f', 'hls', '-hls_time', '4', '-hls_list_size', '0',
           '-hls_segment_filename', "$Media/hls/v1/seg%d.ts",
           "$Media/hls/v1/index.m3u8") == 0
        or die "ffmpeg failed to make the HLS segments\n";

    # a 24 s MP4 for byte ranges, and the bit rate that makes its bytes 24 s
    system('ffmpeg', '-nostdin', '-loglevel', 'error', '-f', 'lavfi',
           '-i', 'testsrc=duration=24:size=160x120:rate=10',
           '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '10',
           '-movflags', '+faststart', "$Media/hls/v1/movie.mp4") == 0
        or die "ffmpeg failed to make the MP4\n";
    $Size = -s "$Media/hls/v1/movie.mp4";
    $Bitrate = int($Size * 8 / 24);

    # each test has content of its own: the same segments under other ids
    symlink "$Media/hls/v1", "$Media/hls/$_" for map { "v$_" } 2 .. 30;
}

use Test::Nginx::Socket 'no_plan';
use Engagement::ClickHouse;

# the durable writer's lines go to a real clickhouse-server of our own
# (TEST 24), when the Debian package is installed
our ($ChPort, $Ch);
if (ch_bin()) {
    $ChPort = free_ports(150, 15, 3);
    ch_setup(port => $ChPort, dir => scratch_dir("clickhouse-$ChPort"));
    $ENV{TEST_NGINX_CH_PORT} = $ChPort;
    $ENV{TEST_NGINX_SPOOL} = scratch_dir('spool');
} else {
    $ENV{TEST_NGINX_CH_PORT} = 1;
    $ENV{TEST_NGINX_SPOOL} = scratch_dir('spool');
}

repeat_each(1);
no_shuffle();
no_long_string();
log_level('info');
add_response_body_check(post_check_hook());

# the token format of README "Signed view tokens", made independently
sub tok {
    my ($c, $s, $exp, $secret) = @_;
    $exp //= int(time()) + 3600;
    $secret //= $Secret;
    my $tag = substr(encode_base64url(substr(hmac_sha256("c\n$c", $secret),
                                             0, 6)), 0, 8);
    my $part = "1.$exp.$tag";
    return "$part." . encode_base64url(hmac_sha256("$part\n$c\n$s", $secret));
}

our $HttpConfig = <<"_EOC_";
    engagement_zone engagement:1m;
    engagement_dedupe_zone engagement_dedupe:1m;
    engagement_token_secret $Secret;
    engagement_view_after 8s;
    engagement_engaged_after 16s;
    engagement_heartbeat_interval 1s;
    types {
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
        video/mp4 mp4;
    }
_EOC_

our $Loc = <<"_EOC_";
    location ~ ^/hls/(?<vid>[A-Za-z0-9_-]+)/ {
        root $Media;
        log_not_found off;
        engagement_segments on content=\$vid duration=4s bitrate=$Bitrate;
    }
    location ~ ^/cookie/hls/(?<cvid>[A-Za-z0-9_-]+)/ {
        root $Media;
        rewrite ^/cookie(/.*)\$ \$1 break;
        engagement_segments on content=\$cvid duration=4s
                            session=\$cookie_es token=\$cookie_et;
    }
    location ~ ^/slow/hls/(?<svid>[A-Za-z0-9_-]+)/ {
        root $Media;
        rewrite ^/slow(/.*)\$ \$1 break;
        limit_rate 4k;
        engagement_segments on content=\$svid duration=4s;
    }
    location = /page {
        engagement_token_bind \$arg_v \$arg_s;
        return 200 "\$engagement_token";
    }
    location = /engagement/view { engagement view; }
    location /engagement/summary { engagement summary; }
    location /engagement/live { engagement live; }
    location = /status { engagement status; }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Loc) unless defined $block->config;
    $block->set_value("no_error_log", "[error]\n[alert]\nexited on signal\nAddressSanitizer\nLeakSanitizer\nruntime error")
        unless defined $block->no_error_log || defined $block->must_die;
});

# one segment (or any URI) of content $c for session $s with token $t
sub seg {
    my ($c, $n, $s, $t, %h) = @_;
    my $q = '';
    $q .= "es=$s" if defined $s;
    $q .= ($q ? '&' : '') . "et=$t" if defined $t;
 my $uri = ($h{prefix} // '') . "/hls/$c/" . ($n =~ /\./ ? $n : "seg$n.ts")
              . ($q ? "?$q" : '');
    my ($st) = http_request(nginx_port(), $h{method} // 'GET', $uri, undef,
                            %{ $h{headers} // {} });
    return $st;
}

# views and engaged views of content $c on this edge
sub counts {
    my ($c) = @_;
    my ($st, $b) = http_request(nginx_port(), 'GET',
                                "/engagement/summary/$c");
    return $b =~ /"views":(\d+),"engagedViews":(\d+)/ ? "$1/$2" : "?($b)";
}

sub seg_metric {
    my ($name, $outcome) = @_;
    my $t = status_text();
    my $re = defined $outcome
        ? qr/^nginx_engagement_segments_\Q$name\E\{outcome="\Q$outcome\E"\} (\d+)$/m
        : qr/^nginx_engagement_segments_\Q$name\E (\d+)$/m;
    return $t =~ $re ? $1 : undef;
}

# the media time credited, in ms (the figure is in seconds, to the ms)
sub credited_ms {
    my $t = status_text();
    return $t =~ /^nginx_engagement_segments_credited_seconds_total (\d+)\.(\d{3})$/m
        ? $1 * 1000 + $2 : undef;
}

sub view {
    my ($c, $s, $ms) = @_;
    my ($st, $b) = post_view(nginx_port(),
        qq({"contentId":"$c","sessionId":"$s","durationMs":$ms}));
    return "$st $b";
}

sub live_of {
    my ($c) = @_;
    my ($st, $b) = http_request(nginx_port(), 'GET',
                                "/engagement/live?contentId=$c");
    return $b =~ /"live":(\d+)/ ? $1 : -1;
}

run_tests();

__DATA__

=== TEST 1: the segments are real: the playlist lists six 4 s segments, served as HLS; it credits nothing
--- request
GET /hls/v1/index.m3u8
--- response_headers
Content-Type: application/vnd.apple.mpegurl
--- response_body_like chomp
^#EXTM3U\n(?:.*\n)*?(?:#EXTINF:4\.0+,\nseg\d\.ts\n){6}#EXT-X-ENDLIST\n$
--- post_check
    my $t = main::tok('v1', 's1');
    # the playlist with a valid token, three times: no credit, no view
    my @st = map { (http_request(nginx_port(), 'GET',
                    "/hls/v1/index.m3u8?es=s1&et=$t"))[0] } 1 .. 3;
    Test::More::is("@st", '200 200 200', 'TEST 1 - the playlist is served');
    Test::More::is(main::counts('v1'), '0/0', 'TEST 1 - playlists credit nothing');
    Test::More::is(main::seg_metric('requests_total', 'playlist'), 4,
                   'TEST 1 - four playlist requests counted');
    Test::More::is(main::credited_ms(), 0,
                   'TEST 1 - no media time credited');
    my ($st, $b) = http_request(nginx_port(), 'GET', "/hls/v1/seg0.ts?es=s1&et=$t");
    Test::More::ok($st == 200 && length($b) > 10000 && substr($b, 0, 1) eq 'G',
                   'TEST 1 - a segment is MPEG-TS served by the static module');

=== TEST 2: a session counts one view at 8 s served and one engaged view at 16 s, never before
--- request
GET /engagement/summary/v2
--- response_body
{"contentId":"v2","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}
--- post_check
    my $t = main::tok('v2', 's2');
    my @seen;
    for my $n (0 .. 5) {
        my $st = main::seg('v2', $n, 's2', $t);
        push @seen, "$st:" . main::counts('v2');
    }
    Test::More::is(join(" ", @seen),
                   '200:0/0 200:1/0 200:1/0 200:1/1 200:1/1 200:1/1',
                   'TEST 2 - view after the 2nd segment (8 s), engaged after the 4th (16 s), once each');
    Test::More::is(main::seg_metric('segments_total', 'credited'), 6, 'TEST 2 - six segments credited');
    Test::More::is(main::credited_ms(), 24000, 'TEST 2 - 24 s credited');
    Test::More::is(main::seg_metric('sessions_total'), 1, 'TEST 2 - one session');
    Test::More::is(main::seg_metric('views_total', 'view'), 1, 'TEST 2 - status: one view from segments');
    Test::More::is(main::seg_metric('views_total', 'engaged'), 1, 'TEST 2 - status: one engaged view from segments');
    my ($zv) = status_text() =~ /^nginx_engagement_counted_total\{[^}]*zone="engagement"[^}]*metric="view"[^}]*\} (\d+)$/m;
    Test::More::is($zv, 1, "TEST 2 - the counters zone's own figure counts the view");
    SKIP: {
        Test::More::skip('promtool is not installed', 1) unless -x '/usr/bin/promtool';
        my $f = Engagement::Test::scratch_dir() . '/metrics.txt';
        open my $fh, '>', $f; print $fh status_text(); close $fh;
        my $out = `/usr/bin/promtool check metrics < $f 2>&1`;
        Test::More::is($?, 0, 'TEST 2 - promtool check metrics passes with the segments figures') or Test::More::diag($out);
    }
    # a second session of the same content counts on its own
    my $t2 = main::tok('v2', 's2b');
    main::seg('v2', $_, 's2b', $t2) for 0, 1;
    Test::More::is(main::counts('v2'), '2/1', 'TEST 2 - another session: another view');

=== TEST 3: replaying one segment URL earns nothing twice
--- request
GET /engagement/summary/v3
--- response_body
{"contentId":"v3","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}
--- post_check
    my $t = main::tok('v3', 's3');
    # seg0 five times, and again with other query arguments: 4 s
    my @st = map { main::seg('v3', 0, 's3', $t) } 1 .. 5;
    my ($st) = http_request(nginx_port(), 'GET', "/hls/v3/seg0.ts?et=$t&es=s3&x=1");
    Test::More::is("@st $st", '200 200 200 200 200 200', 'TEST 3 - every replay is served');
    Test::More::is(main::counts('v3'), '0/0', 'TEST 3 - one segment replayed six times: 4 s, no view');
    Test::More::is(main::seg_metric('segments_total', 'replayed'), 5, 'TEST 3 - five replays counted');
    Test::More::is(main::credited_ms(), 4000, 'TEST 3 - 4 s credited');
    # seg1 makes 8 s; seg0 and seg1 again up to the engaged level: nothing
    main::seg('v3', 1, 's3', $t);
    Test::More::is(main::counts('v3'), '1/0', 'TEST 3 - a second segment: the view');
    main::seg('v3', $_, 's3', $t) for (0, 1) x 4;
    Test::More::is(main::counts('v3'), '1/0', 'TEST 3 - replays never reach the engaged level');
    # ranges of one segment (206) credit the segment once: 4 s, not 4 s each
    my @rs = map { (http_request(nginx_port(), 'GET', "/hls/v3/seg2.ts?es=s3&et=$t", undef,
                                 Range => 'bytes=' . ($_ * 1000) . '-' . ($_ * 1000 + 999)))[0] } 0 .. 9;
    Test::More::is("@rs", join(' ', ('206') x 10), 'TEST 3 - ten ranges of a segment are served');
    Test::More::is(main::credited_ms(), 12000, 'TEST 3 - they credit the segment once (12 s in all)');
    Test::More::is(main::counts('v3'), '1/0', 'TEST 3 - not engaged by ranges');
    main::seg('v3', $_, 's3', $t) for 2, 3;
    Test::More::is(main::counts('v3'), '1/1', 'TEST 3 - one new whole segment (and seg2 again, nothing) makes 16 s');

=== TEST 4: a beacon of the session first: segment credit for it is a duplicate, and the engaged level still counts
--- request
GET /engagement/summary/v4
--- response_body
{"contentId":"v4","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}
--- post_check
    Test::More::like(main::view('v4', 's4', 9000), qr/^202 .*"metrics":\["view"\]/,
                     'TEST 4 - the beacon counts the view');
    my $t = main::tok('v4', 's4');
    main::seg('v4', $_, 's4', $t) for 0, 1;
    Test::More::is(main::counts('v4'), '1/0', 'TEST 4 - 8 s of segments for the session: no second view');
    Test::More::is(main::seg_metric('views_total', 'duplicate'), 1, 'TEST 4 - a duplicate in the figures');
    Test::More::is(main::seg_metric('views_total', 'view'), 0, 'TEST 4 - no view from segments');
    main::seg('v4', $_, 's4', $t) for 2, 3;
    Test::More::is(main::counts('v4'), '1/1', 'TEST 4 - 16 s: the engaged view, once');
    Test::More::like(main::view('v4', 's4', 20000), qr/^200 \{"counted":false,"reason":"duplicate"/,
                     'TEST 4 - and a later engaged beacon is a duplicate of it');
    # another session's beacon is not affected
    Test::More::like(main::view('v4', 's4x', 9000), qr/^202 /, 'TEST 4 - another session counts');

=== TEST 5: segment credit first: the session's beacon is a duplicate
--- request
GET /engagement/summary/v5
--- response_body
{"contentId":"v5","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}
--- post_check
    my $t = main::tok('v5', 's5');
    main::seg('v5', $_, 's5', $t) for 0, 1;
    Test::More::is(main::counts('v5'), '1/0', 'TEST 5 - 8 s of segments: the view');
    Test::More::like(main::view('v5', 's5', 9000), qr/^200 \{"counted":false,"reason":"duplicate"/,
                     'TEST 5 - the beacon of the same session is a duplicate');
    Test::More::like(main::view('v5', 's5', 20000), qr/^202 .*"metrics":\["engaged"\]/,
                     'TEST 5 - an engaged beacon counts the engaged view alone');
    main::seg('v5', $_, 's5', $t) for 2 .. 5;
    Test::More::is(main::counts('v5'), '1/1', 'TEST 5 - segments past 16 s: a duplicate, not a second engaged view');
    Test::More::is(main::seg_metric('views_total', 'duplicate'), 1, 'TEST 5 - counted as a duplicate');

=== TEST 6: no token, a malformed, expired, other-content, other-session or other-secret token, or a bad session id: nothing credited, each counted
--- request
GET /engagement/summary/v6
--- response_body
{"contentId":"v6","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}
--- post_check
    my @cases = (
        [ 's6a', undef ],                                   # missing
        [ 's6b', 'not-a-token' ],                           # malformed
        [ 's6c', main::tok("v6", "s6c", int(time()) - 10) ],     # expired
        [ 's6d', main::tok('v1', 's6d') ],                  # other content
        [ 's6e', main::tok('v6', 'someone-else') ],         # other session
        [ 's6f', main::tok('v6', 's6f', undef, 'another-secret-0123456789') ],
        [ 'a%20b', main::tok('v6', 'a b') ],                # not an id
    );
    my @st;
    for my $c (@cases) {
        push @st, main::seg('v6', $_, $c->[0], $c->[1]) for 0 .. 4;
    }
    # no session at all
    push @st, main::seg('v6', 0, undef, main::tok('v6', 's6g'));
    Test::More::is(scalar(grep { $_ == 200 } @st), 36, 'TEST 6 - every segment is served as usual');
    Test::More::is(main::counts('v6'), '0/0', 'TEST 6 - 20 s of segments each: no view');
    Test::More::is(main::credited_ms(), 0, 'TEST 6 - nothing credited');
    Test::More::is(main::seg_metric('sessions_total'), 0, 'TEST 6 - no session kept');
    my %want = (missing => 5, malformed => 5, expired => 5,
                wrong_content => 10, bad_signature => 5, invalid => 6);
    my %got = map { $_ => main::seg_metric('refused_total', $_) } keys %want;
    Test::More::is_deeply(\%got, \%want, 'TEST 6 - refusals by reason (an unknown secret is wrong_content, as for views)');
    Test::More::is(live_of('v6'), 0, 'TEST 6 - no live viewer either');

=== TEST 7: 404s, other statuses, HEAD and a transfer cut short credit nothing
--- request
GET /engagement/summary/v7
--- response_body
{"contentId":"v7","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}
--- post_check
    my $t = main::tok('v7', 's7');
    my @st = map { main::seg('v7', $_, 's7', $t) } 6 .. 9;
    push @st, main::seg('v7', $_, 's7', $t, method => 'HEAD') for 0 .. 3;
    push @st, main::seg('v7', 0, 's7', $t, method => 'POST');
    Test::More::is("@st", '404 404 404 404 200 200 200 200 405', 'TEST 7 - 404s, HEADs, a POST');
    # a client that reads the start of a slowly sent segment and leaves
    for my $n (1 .. 3) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . nginx_port());
        print $s "GET /slow/hls/v7/seg$n.ts?es=s7&et=$t HTTP/1.1\r\nHost: x\r\n\r\n";
        my $buf;
        sysread $s, $buf, 100;
        setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_LINGER(), pack('ii', 1, 0));
        close $s;
    }
    my $cut = Engagement::Test::wait_until(sub { main::seg_metric('requests_total', 'not_served') == 12 }, 10);
    Test::More::ok($cut, 'TEST 7 - 12 not served: 4 404s, 4 HEADs, the POST, 3 transfers cut short');
    Test::More::is(main::counts('v7'), '0/0', 'TEST 7 - no view');
    Test::More::is(main::credited_ms(), 0, 'TEST 7 - nothing credited');
    # then the whole segments: the view
    main::seg('v7', $_, 's7', $t) for 0, 1;
    Test::More::is(main::counts('v7'), '1/0', 'TEST 7 - the same session served whole segments: the view');

=== TEST 8: live: a session fetching segments is a live viewer, and drops out when it stops
--- request
GET /engagement/live?contentId=v8
--- response_body
{"contentId":"v8","live":0,"peak":0}
--- post_check
    my %t = map { $_ => main::tok('v8', $_) } qw(s8a s8b);
    main::seg('v8', 0, $_, $t{$_}) for sort keys %t;
    main::seg('v8', 0, 's8c', undef);      # no token: not a viewer
    Test::More::is(main::live_of('v8'), 2, 'TEST 8 - two sessions fetching: two live viewers');
    # s8a keeps fetching (a replay keeps it live too), s8b stops
    my $stop = time;
    my $ok = 1;
    for my $i (1 .. 8) {
        main::seg('v8', $i % 6, 's8a', $t{s8a});
        sleep 0.5;
    }
    my $live = main::live_of('v8');
    Test::More::is($live, 1, 'TEST 8 - 1 live: the session that stopped dropped out (1 s interval)');
    Test::More::ok(main::seg_metric('live_total', 'seen') >= 10, 'TEST 8 - live figures count the segments');
    Test::More::ok(Engagement::Test::wait_until(sub { main::live_of('v8') == 0 }, 5),
                   'TEST 8 - 0 live after both stopped');

=== TEST 9: tokens in cookies; the token from the page's $engagement_token
--- request
GET /page?v=v9&s=s9
--- response_body_like chomp
^1\.\d+\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{43}$
--- post_check
    my $t = $main::Body;
    main::seg('v9', $_, 's9', $t) for 0, 1;
    Test::More::is(main::counts('v9'), '1/0', "TEST 9 - the page's token: a view at 8 s");
    my $t2 = main::tok('v10', 's10');
    my @st = map { (http_request(nginx_port(), 'GET', "/cookie/hls/v10/seg$_.ts", undef,
                                 Cookie => "es=s10; et=$t2"))[0] } 0 .. 3;
    Test::More::is("@st", '200 200 200 200', 'TEST 9 - segments served with cookies');
    Test::More::is(main::counts('v10'), '1/1', 'TEST 9 - cookies: a view and an engaged view');

=== TEST 10: the README's HLS location: the playlist carries the session and token into its segment URLs
--- config eval
"    location ~ ^/hls/(?<vid>[A-Za-z0-9_-]+)/ {
        root $main::Media;
        engagement_segments on content=\$vid duration=4s;
        location ~ \\.m3u8\$ {
            sub_filter_types application/vnd.apple.mpegurl;
            sub_filter_once off;
            sub_filter '.ts\\n' '.ts?es=\$arg_es&et=\$arg_et\\n';
        }
    }
    location /engagement/summary { engagement summary; }
    location = /status { engagement status; }
"
--- request
GET /engagement/summary/v11
--- response_body
{"contentId":"v11","views":0,"engagedViews":0,"replays":0}
--- post_check
    my $t = main::tok('v11', 's11');
    my ($st, $pl) = http_request(nginx_port(), 'GET', "/hls/v11/index.m3u8?es=s11&et=$t");
    my @uris = $pl =~ /^(seg\d\.ts\?\S+)$/mg;
    Test::More::is(scalar @uris, 6, 'TEST 10 - six segment URLs, each with the session and token');
    for my $u (@uris[0 .. 3]) {
        http_request(nginx_port(), 'GET', "/hls/v11/$u");
    }
    Test::More::is(main::counts('v11'), '1/1', 'TEST 10 - the URLs of the playlist credit: a view and an engaged view');

=== TEST 11: a full segments zone credits nothing for new sessions (counted, logged), and still credits the sessions it holds
--- http_config eval
$main::HttpConfig . "    engagement_segments_zone 128k;\n"
--- request
GET /engagement/summary/v12
--- response_body
{"contentId":"v12","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}
--- no_error_log
[error]
[alert]
--- post_check
    my ($room) = Engagement::Test::error_log_text() =~ /segments zone "engagement_segments": room for (\d+) sessions/;
    Test::More::ok($room && $room > 100 && $room < 1000, "TEST 11 - the zone has room for $room sessions");
    my $n = $room + 200;
    my %t;
    for my $i (1 .. $n) {
        $t{$i} = main::tok('v12', "f$i");
        main::seg('v12', 0, "f$i", $t{$i});
    }
    my $cr = main::seg_metric('segments_total', 'credited');
    my $full = main::seg_metric('segments_total', 'full');
    Test::More::ok($full > 0, "TEST 11 - $full segments found the zone full");
    Test::More::is($cr + $full, $n, "TEST 11 - each of the $n sessions is credited ($cr) or counted full");
    Test::More::ok($cr <= $room, 'TEST 11 - never more sessions than the room');
    Test::More::is(main::seg_metric('sessions_total'), $cr, 'TEST 11 - sessions are the credited ones');
    Test::More::like(Engagement::Test::error_log_text(),
        qr/segments zone "engagement_segments" is full: segments are not credited/,
        'TEST 11 - the full zone is logged');
    # every session's second segment: those held reach the view, the others
    # (refused again, or now taking an entry: 4 s) do not
    main::seg('v12', 1, "f$_", $t{$_}) for 1 .. $n;
    my ($v) = main::counts('v12') =~ m{^(\d+)/};
    Test::More::is($v, $cr, "TEST 11 - the $cr sessions held count their view at 8 s, no other session does");

=== TEST 12: MP4 byte ranges: each part of the file credits once, at bitrate=; a whole file, tiny ranges, multipart and other files credit nothing
--- request
GET /engagement/summary/v13
--- response_body
{"contentId":"v13","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}
--- post_check
    my $t = main::tok('v13', 's13');
    my $S = $main::Size;
    my $r = sub {
        my ($range) = @_;
        my ($st, $b) = http_request(nginx_port(), 'GET', "/hls/v13/movie.mp4?es=s13&et=$t", undef,
                                    Range => "bytes=$range");
        return $st;
    };
    my $q = int($S / 4);
    # the whole file (200), a multipart range, tiny ranges: nothing
    my @st = (main::seg('v13', 'movie.mp4', 's13', $t));
    push @st, $r->('0-99,200-299');
    push @st, $r->(($_ * 100) . '-' . ($_ * 100 + 99)) for 0 .. 9;
    Test::More::is("@st", '200 206 ' . join(' ', ('206') x 10), 'TEST 12 - served');
    Test::More::is(main::credited_ms(), 0, 'TEST 12 - a whole file, a multipart range, ranges of 100 bytes: nothing');
    # the first quarter (~6 s): no view; the second (~12 s): the view
    $r->('0-' . ($q - 1));
    my $ms1 = main::credited_ms();
    Test::More::ok($ms1 > 5000 && $ms1 <= 6000, "TEST 12 - a quarter of 24 s: $ms1 ms");
    Test::More::is(main::counts('v13'), '0/0', 'TEST 12 - no view yet');
    $r->($q . '-' . (2 * $q - 1));
    Test::More::is(main::counts('v13'), '1/0', 'TEST 12 - half the file (~12 s): the view');
    # the same ranges again, and ranges inside them: nothing new
    my $ms2 = main::credited_ms();
    $r->('0-' . ($q - 1));
    $r->($q . '-' . (2 * $q - 1));
    $r->('1000-' . ($q - 5000));
    Test::More::is(main::credited_ms(), $ms2, 'TEST 12 - bytes served before earn nothing');
    # an overlapping range credits only its new part; the rest of the file
    $r->($q . '-' . (3 * $q - 1));
    my $ms3 = main::credited_ms();
    Test::More::ok($ms3 - $ms2 > 5000 && $ms3 - $ms2 <= 6000, 'TEST 12 - an overlapping range: its new quarter only (' . ($ms3 - $ms2) . ' ms)');
    Test::More::is(main::counts('v13'), '1/1', 'TEST 12 - three quarters (~18 s): the engaged view');
    $r->((3 * $q) . '-');
    my $all = main::credited_ms();
    Test::More::ok($all > 23000 && $all <= 24000, "TEST 12 - the whole file in ranges: $all ms of 24 s");
    # files of another kind are not looked at
    open my $fh, '>', "$main::Media/hls/v1/notes.txt"; print $fh 'x' x 50; close $fh;
    main::seg('v13', 'notes.txt', 's13', $t);
    Test::More::is(main::seg_metric('requests_total', 'not_served'), 2, 'TEST 12 - not served: the whole file and the multipart range');

=== TEST 13: status: the segments figures, in JSON too
--- request
GET /status?format=json
--- response_body_like chomp
"segments":\{"segments":0,"notServed":0,"playlists":0,"credited":0,"replayed":0,"full":0,"bots":0,"optedOut":0,"anonymous":0,"sessions":0,"tokenMissing":0,"tokenMalformed":0,"tokenExpired":0,"tokenWrongContent":0,"tokenBadSignature":0,"invalidIds":0,"views":0,"engaged":0,"duplicates":0,"unavailable":0,"live":0,"liveFull":0,"creditedSeconds":0\.000\}

=== TEST 25: bots and opted-out viewers: a bot's segments credit nothing; Sec-GPC is anonymous by default, nothing under engagement_opt_out drop
--- config eval
$main::Loc . "    location ~ ^/drop/hls/(?<dvid>[A-Za-z0-9_-]+)/ {
        root $main::Media;
        rewrite ^/drop(/.*)\$ \$1 break;
        engagement_opt_out drop;
        engagement_segments on content=\$dvid duration=4s;
    }
"
--- request
GET /engagement/summary/v26
--- response_body
{"contentId":"v26","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}
--- post_check
    my $t = main::tok('v26', 's26');
    main::seg('v26', $_, 's26', $t, headers => { 'User-Agent' => 'Mozilla/5.0 (compatible; Googlebot/2.1)' }) for 0 .. 4;
    Test::More::is(main::counts('v26'), '0/0', 'TEST 25 - a bot: no view');
    Test::More::is(main::seg_metric('segments_total', 'bot'), 5, 'TEST 25 - five bot segments counted');
    my $t2 = main::tok('v27', 's27');
    main::seg('v27', $_, 's27', $t2, prefix => '/drop', headers => { 'Sec-GPC' => '1' }) for 0 .. 4;
    Test::More::is(main::counts('v27'), '0/0', 'TEST 25 - Sec-GPC under drop: no view');
    Test::More::is(main::seg_metric('segments_total', 'opted_out'), 5, 'TEST 25 - five opted-out segments counted');
    my $t3 = main::tok('v28', 's28');
    main::seg('v28', $_, 's28', $t3, headers => { 'Sec-GPC' => '1' }) for 0 .. 1;
    Test::More::is(main::counts('v28'), '1/0', 'TEST 25 - Sec-GPC under anonymous (the default): counted');
    Test::More::is(main::seg_metric('anonymous_total'), 2, 'TEST 25 - as anonymous');
    my ($st, $b) = post_view(nginx_port(), '{"contentId":"v28","sessionId":"s28","durationMs":9000}', undef);
    ($st, $b) = http_request(nginx_port(), 'POST', '/engagement/view',
        '{"contentId":"v28","sessionId":"s28","durationMs":9000}',
        'Content-Type' => 'application/json', 'Sec-GPC' => '1');
    Test::More::like("$st $b", qr/^200 \{"counted":false,"reason":"duplicate"/,
                     "TEST 25 - the opted-out session's beacon is a duplicate of its segments");

=== TEST 26: a session idle longer than idle= starts over; a reload keeps the credit
--- config eval
$main::Loc . "    location ~ ^/idle/hls/(?<ivid>[A-Za-z0-9_-]+)/ {
        root $main::Media;
        rewrite ^/idle(/.*)\$ \$1 break;
        engagement_segments on content=\$ivid duration=4s idle=1s;
    }
"
--- request
GET /engagement/summary/v29
--- response_body
{"contentId":"v29","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}
--- post_check
    my $t = main::tok('v29', 's29');
    main::seg('v29', 0, 's29', $t, prefix => '/idle');
    sleep 1.3;
    main::seg('v29', 1, 's29', $t, prefix => '/idle');
    Test::More::is(main::counts('v29'), '0/0', 'TEST 26 - 4 s, then 1.3 s idle, then 4 s: started over, no view');
    main::seg('v29', 0, 's29', $t, prefix => '/idle');
    Test::More::is(main::counts('v29'), '1/0', 'TEST 26 - and seg0 again is new to it: 8 s, the view');
    # a reload (same zone size) keeps what sessions were credited
    my $t2 = main::tok('v30', 's30');
    main::seg('v30', 0, 's30', $t2);
    Test::More::ok(Engagement::Test::reload_nginx(1), 'TEST 26 - reloaded');
    main::seg('v30', 0, 's30', $t2);
    Test::More::is(main::counts('v30'), '0/0', 'TEST 26 - after the reload, seg0 is still a replay');
    main::seg('v30', 1, 's30', $t2);
    Test::More::is(main::counts('v30'), '1/0', 'TEST 26 - and seg1 makes 8 s: the view');

=== TEST 14: no content=
--- config
    location /hls/ { engagement_segments on duration=4s; }
--- must_die
--- error_log
"engagement_segments on" needs content=: the content id of the media the location serves

=== TEST 15: no duration=
--- config
    location /hls/ { engagement_segments on content=v1; }
--- must_die
--- error_log
"engagement_segments on" needs duration=

=== TEST 16: a bad duration
--- config
    location /hls/ { engagement_segments on content=v1 duration=soon; }
--- must_die
--- error_log
invalid "duration=soon" of "engagement_segments": must be a positive time such as 4s or 1500ms, at most 7d

=== TEST 17: an unknown parameter
--- config
    location /hls/ { engagement_segments on content=v1 duration=4s speed=2; }
--- must_die
--- error_log
invalid parameter "speed=2" of "engagement_segments": expected content=, session=, token=, duration=, bitrate=, idle=, zone= or dedupe=

=== TEST 18: neither on nor off
--- config
    location /hls/ { engagement_segments yes; }
--- must_die
--- error_log
invalid value "yes" of "engagement_segments": must be on or off

=== TEST 19: off takes no parameters
--- config
    location /hls/ { engagement_segments off duration=4s; }
--- must_die
--- error_log
"engagement_segments off" takes no parameters

=== TEST 20: no token secret
--- http_config
    engagement_zone engagement:1m;
--- config
    location /hls/ { engagement_segments on content=v1 duration=4s; }
--- must_die
--- error_log
"engagement_segments" needs "engagement_token_secret"

=== TEST 21: more segments to the engaged level than a session remembers
--- config
    location /hls/ {
        engagement_engaged_after 200s;
        engagement_segments on content=v1 duration=4s;
    }
--- must_die
--- error_log
"engagement_segments": "engagement_engaged_after" (200000 ms) takes 50 segments of duration=4000ms, more than the 32 a session remembers

=== TEST 22: not in an endpoint's location
--- config
    location /engagement/view {
        engagement view;
        engagement_segments on content=v1 duration=4s;
    }
--- must_die
--- error_log
"engagement_segments" is for a location that serves media, not an "engagement" endpoint

=== TEST 23: a zone size too small
--- http_config eval
$main::HttpConfig . "    engagement_segments_zone 4k;\n"
--- must_die
--- error_log
invalid size "4k" of "engagement_segments_zone"

=== TEST 24: the durable writer gets a line for each policy decision from segments, as for a beacon (real ClickHouse)
--- skip_eval: 6: !Engagement::ClickHouse::ch_bin()
--- http_config eval
$main::HttpConfig . "    engagement_writer http://127.0.0.1:\$TEST_NGINX_CH_PORT/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=50 interval=100ms spool=\$TEST_NGINX_SPOOL;\n    engagement_edge_id seg-edge;\n"
--- request
GET /engagement/summary/v25
--- response_body
{"contentId":"v25","views":0,"engagedViews":0,"replays":0,"live":0,"peak":0}
--- post_check
    $main::Ch = ch_start(fresh => 1);
    ch_schema();
    my $t = main::tok('v25', 's25');
    main::seg('v25', $_, 's25', $t) for 0 .. 5;
    main::view('v25', 's25', 9000);                  # a duplicate beacon
    my $rows = '';
    Engagement::Test::wait_until(sub {
        $rows = ch("SELECT type, content_id, session_id, duration_ms, counted, views, engaged, reason, edge "
                   . "FROM eng.events WHERE content_id = 'v25' ORDER BY duration_ms FORMAT TSV");
        ($rows =~ tr/\n//) >= 2;
    }, 10);
    Test::More::is($rows,
        "view\tv25\ts25\t8000\t1\t1\t0\t\tseg-edge\n"
        . "view\tv25\ts25\t9000\t0\t0\t0\tduplicate\tseg-edge\n"
        . "view\tv25\ts25\t16000\t1\t0\t1\t\tseg-edge",
        'TEST 24 - rows: the view at 8 s and the engaged view at 16 s from segments, the beacon a duplicate');
    Test::More::is(main::counts('v25'), '1/1', 'TEST 24 - counted once each');
    ch_stop($main::Ch);

=== TEST 27: another zone with the segments zone's name
--- http_config eval
$main::HttpConfig . "    engagement_limit_zone engagement_segments:1m;\n"
--- must_die
--- error_log
zone name "engagement_segments" is reserved for the module's segments zone; give the zone another name
