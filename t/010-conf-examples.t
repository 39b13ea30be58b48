# Guards conf-examples/: every nginx configuration there must pass
# `nginx -t` with the module built by this tree.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Engagement::Test;

my @confs = glob(root_dir() . "/conf-examples/*.conf");
ok(scalar(@confs) >= 1, "conf-examples has configurations");

for my $conf (@confs) {
    (my $name = $conf) =~ s{.*/}{};
    my $prefix = new_prefix("conf-examples-$name");
    symlink(root_dir() . "/conf-examples/html", "$prefix/html-src");
    local $ENV{LD_PRELOAD} = $ENV{TEST_NGINX_PRELOAD} if $ENV{TEST_NGINX_PRELOAD};
    my $out = `'${\ nginx_bin()}' -t -p '$prefix/' -c '$conf' 2>&1`;
    is($?, 0, "nginx -t accepts $name") or diag($out);
    like($out, qr/test is successful/, "$name: test is successful");
}

done_testing();
