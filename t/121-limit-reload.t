# Guards rate limit zones over `nginx -s reload` (HUP): a zone of the same
# name and size keeps its buckets (a limited client stays limited), a
# resized one starts empty, and nothing alerts or crashes on the way.
# The reloads happen between requests (add_response_body_check): the
# configuration is rewritten, the master gets HUP, and the next request
# is sent once the new configuration answers and the old workers are gone.
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";    # after Test::Nginx::Socket: the real one wins
use Engagement::Block;

repeat_each(1);
master_on();    # the real runner's default is master_process off: no reloads
no_shuffle();
no_long_string();
log_level('info');

sub view { return qq(POST /engagement/view\n{"contentId":"rl","sessionId":"$_[0]"}) }

our @OldWorkers;

# the reloads of TEST 1: after the second view (same zone), after the third
# (zone resized); after the last, the old workers' exits
add_response_body_check(sub {
    my ($block, $body, $i) = @_;
    return unless $block->name =~ /\bTEST 1:/;    # the real runner prefixes $0
    my $name = $block->name;
    reload_reset() if $i == 0;
    if ($i == 1 || $i == 2) {
        my ($size, $probe) = $i == 1 ? ('1m', 'a') : ('2m', 'b');
        my ($served, $gone, $old) = reload(block => $name, edit => sub {
            my $c = shift;
            $c =~ s/engagement_limit_zone per_ip:1m;/engagement_limit_zone per_ip:$size;/ or die;
            $c =~ s{# probe}{location = /$probe { return 200; }} or die;
            return $c;
        }, probe => "/$probe");
        push @OldWorkers, @$old;
        Test::More::ok($served, $i == 1 ? "$name - a reload with the same zone serves"
                                        : "$name - a reload that resizes the zone serves");
        Test::More::ok($gone, "$name - the workers from before reload $i are gone");
    }
    if ($i == 4) {
        my $log = '';
        my $all = wait_until(sub {
            $log = error_log_text(0);
            return !grep { $log !~ /worker process $_ exited with code 0/ } @OldWorkers;
        });
        Test::More::ok(@OldWorkers && $all,
            "$name - the old workers of both reloads exited with code 0 (@OldWorkers)");
    }
});

run_tests();

__DATA__

=== TEST 1: a reload keeps the buckets of a zone of the same size; a resized zone starts empty
--- http_config
    engagement_limit_zone per_ip:1m;
--- config
    location = /engagement/view {
        engagement view;
        engagement_limit zone=per_ip key=$binary_remote_addr rate=1r/m;
    }
    # probe
--- more_headers
Content-Type: application/json
--- request eval
[ main::view('s1'), main::view('s2'), main::view('s3'), main::view('s4'), main::view('s5') ]
--- error_code eval
[ 202, 429, 429, 202, 429 ]
--- response_body_like eval
[ qr/"counted":true/, qr/"error":"rate_limited"/, qr/"error":"rate_limited"/,
  qr/"counted":true/, qr/"error":"rate_limited"/ ]
--- no_error_log
[alert]
[emerg]
exited on signal
AddressSanitizer
runtime error
