# Guards conf-examples/: every nginx configuration there must pass
# `nginx -t` with the module built by this tree. A block per file: its
# preprocessor runs `nginx -t` on the file in a temporary prefix (modules/
# has the module, html-src/ the demo pages) and hands the exit status and
# the output to the block as two user files; the block reads them back.
# After the blocks, every conf-examples/*.conf must have had a block.
use Test::Nginx::Socket 'no_plan';
use Cwd ();
use File::Path ();
use File::Temp ();
use FindBin;

repeat_each(1);
no_shuffle();
log_level('info');

our $Root = $ENV{ENGAGEMENT_ROOT} // Cwd::abs_path("$FindBin::Bin/..");
our $Module = (split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '')[0]
              // "$Root/build/ngx_http_engagement_module.so";
our %Tested;

# the exit status and the output of `nginx -t` for conf-examples/$name
sub nginx_t {
    my ($name) = @_;
    my $prefix = File::Temp->newdir('conf-examples-XXXXXX', TMPDIR => 1);
    File::Path::make_path(map { "$prefix/$_" } qw(conf logs temp html modules));
    symlink(Cwd::abs_path($Module), "$prefix/modules/ngx_http_engagement_module.so");
    symlink("$Root/conf-examples/html", "$prefix/html-src");
    local $ENV{LD_PRELOAD} = $ENV{TEST_NGINX_PRELOAD} if $ENV{TEST_NGINX_PRELOAD};
    my $nginx = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';
    my $out = `'$nginx' -t -p '$prefix/' -c '$Root/conf-examples/$name' 2>&1`;
    return ($? >> 8, $out);
}

add_block_preprocessor(sub {
    my $block = shift;
    my $name = $block->conf_example or return;
    $name =~ s/\s+\z//;
    $Tested{$name} = 1;
    my ($status, $out) = nginx_t($name);
    $block->set_value('user_files', [ [ 'nginx-t-status.txt', "$status\n" ],
                                      [ 'nginx-t-output.txt', $out ] ]);
});

run_tests();

my @confs = map { m{([^/]+)\z} } glob("$Root/conf-examples/*.conf");
ok(scalar(@confs) >= 1, 'conf-examples has configurations');
is_deeply([ sort keys %Tested ], [ sort @confs ],
          'every conf-examples/*.conf has a block here');

__DATA__

=== TEST 1: nginx -t accepts conf-examples/quickstart.conf
--- conf_example: quickstart.conf
--- config
--- request eval
[ "GET /nginx-t-status.txt", "GET /nginx-t-output.txt" ]
--- response_body_like eval
[ qr/\A0\n\z/, qr/test is successful/ ]



=== TEST 2: nginx -t accepts conf-examples/shm-only.conf
--- conf_example: shm-only.conf
--- config
--- request eval
[ "GET /nginx-t-status.txt", "GET /nginx-t-output.txt" ]
--- response_body_like eval
[ qr/\A0\n\z/, qr/test is successful/ ]



=== TEST 3: nginx -t accepts conf-examples/rate-limits.conf
--- conf_example: rate-limits.conf
--- config
--- request eval
[ "GET /nginx-t-status.txt", "GET /nginx-t-output.txt" ]
--- response_body_like eval
[ qr/\A0\n\z/, qr/test is successful/ ]



=== TEST 4: nginx -t accepts conf-examples/guarded.conf
--- conf_example: guarded.conf
--- config
--- request eval
[ "GET /nginx-t-status.txt", "GET /nginx-t-output.txt" ]
--- response_body_like eval
[ qr/\A0\n\z/, qr/test is successful/ ]



=== TEST 5: nginx -t accepts conf-examples/clickhouse.conf
--- conf_example: clickhouse.conf
--- config
--- request eval
[ "GET /nginx-t-status.txt", "GET /nginx-t-output.txt" ]
--- response_body_like eval
[ qr/\A0\n\z/, qr/test is successful/ ]



=== TEST 6: nginx -t accepts conf-examples/live.conf
--- conf_example: live.conf
--- config
--- request eval
[ "GET /nginx-t-status.txt", "GET /nginx-t-output.txt" ]
--- response_body_like eval
[ qr/\A0\n\z/, qr/test is successful/ ]
