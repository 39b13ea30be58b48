package Engagement::Edges;
# Edges for the multi-edge tests (t/199 in the edge scope; in the global
# dedupe scope t/202 on a Redis Cluster, t/203 on one redis-server):
# every edge runs the same http{} but its edge id and spool, shares the
# secret file (global scope), one Redis (or cluster) and one ClickHouse (the durable writer with check= and
# id_param=). The test's own nginx is edge "a"; start_edge() starts the
# others from private prefixes, as our children, stopped by pid
# (stop_edges).
#
#   edges_setup(redis => '127.0.0.1:6379', secret => $file, ch => $port);
#   my $p = start_edge('b', 210);
use strict;
use warnings;
use Exporter 'import';
use Engagement::Test qw(new_prefix write_conf free_ports start_nginx stop_nginx
                        http_request scratch_dir);

our @EXPORT = qw(%Edge %Prefix %Master @Pids edges_setup edges_secret edges_blocks
                 edge_http start_edge stop_edges edges_ready status_of metric
                 drained view same_viewers);

our (%Edge, %Prefix, %Master, @Pids);
my %cfg;

# redis => the engagement_redis directive's address part (one host:port or
# "cluster host:port ..."), secret => the shared secret file (without it:
# the edge scope), ch => the ClickHouse HTTP port, loc => the locations of
# every edge, tag => the prefixes' and spools' names
sub edges_setup { %cfg = @_ }

# the secret file every edge shares: 32 random bytes in a scratch
# directory of $name
sub edges_secret {
    my ($name) = @_;
    my $f = scratch_dir($name) . "/secret";
    open my $fh, '>', $f or die "$f: $!";
    print $fh join('', map { chr(int(rand(256))) } 1 .. 32);
    close $fh;
    return $f;
}

# the test's nginx is edge "a" (spool $spool), with two workers: the
# blocks with a post_check get what they leave out: its http{} and
# locations, GET /status, the timeout, and no alert, crash or sanitizer
# report in its log
sub edges_blocks {
    my ($spool, $timeout) = @_;
    main::master_on();
    main::workers(2);
    main::log_level('info');
    main::no_shuffle();
    main::timeout(10);
    main::add_response_body_check(Engagement::Test::post_check_hook());
    my %def = (
        http_config => sub { edge_http('edge-a', $spool) },
        config => sub { $cfg{loc} },
        request => sub { 'GET /status' },
        response_body_like => sub { '\nnginx_engagement_global_dedupe_waiting \d+\n' },
        timeout => sub { $timeout },
        no_error_log => sub { "[alert]\nexited on signal\nAddressSanitizer\nruntime error" },
    );
    main::add_block_preprocessor(sub {
        my ($block) = @_;
        return unless defined $block->{post_check};
        for my $k (sort keys %def) {
            $block->set_value($k, $def{$k}->()) unless defined $block->{$k};
        }
    });
}

# what every edge runs, but its edge id and spool
sub edge_http {
    my ($id, $spool) = @_;
    my ($redis, $secret, $chp) = @cfg{qw(redis secret ch)};
    my $scope = defined $secret ? "engagement_dedupe_scope global secret=$secret;" : '';
    return <<"EOC";
    engagement_zone engagement:2m;
    engagement_dedupe_zone engagement_dedupe:2m;
    engagement_edge_id $id;
    $scope
    engagement_dimension country \$http_x_country;
    engagement_redis $redis timeout=1s connect_timeout=1s backoff=50ms:300ms buckets=0 uniques=0;
    engagement_flush_interval 100ms;
    engagement_writer http://127.0.0.1:$chp/?query=INSERT%20INTO%20eng.events%20FORMAT%20JSONEachRow batch=100 interval=100ms
        connect_timeout=300ms timeout=10s retry=200ms spool=$spool
        check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D id_param=query_id;
EOC
}

# edge $name started on a free port from free_ports($offset, 20, 1)
sub start_edge {
    my ($name, $offset) = @_;
    my $tag = $cfg{tag} // 'global';
    my $prefix = new_prefix("$tag-$name");
    my $p = free_ports($offset, 20, 1);
    write_conf($prefix, port => $p, workers => 2,
               http => edge_http("edge-$name", scratch_dir("spool-$tag-$name")),
               server => $cfg{loc});
    my $pid = start_nginx($prefix, $p) or die "edge $name did not start";
    push @Pids, $pid;
    $Edge{$name} = $p;
    $Prefix{$name} = $prefix;
    $Master{$name} = $pid;
    return $p;
}

# every edge at @ports with both workers ready for Redis (one check)
sub edges_ready {
    my ($what, @ports) = @_;
    Test::More::ok(Engagement::Test::wait_until(sub {
        !grep { status_of($_) !~ /^nginx_engagement_redis_ready_workers\{zone="engagement"\} 2$/m } @ports
    }, 10), "the edges are connected to $what");
}

sub stop_edges {
    stop_nginx($_) for @Pids;
    @Pids = ();
}

sub status_of {
    my ($p) = @_;
    return (http_request($p, 'GET', '/status'))[1] // '';
}

sub metric {
    my ($p, $re) = @_;
    return status_of($p) =~ /^$re (\d+)$/m ? $1 : undef;
}

# nothing waits for Redis or the writer on the edge at $p (nor for
# Redis's decision in the global scope)
sub drained {
    my ($p) = @_;
    my $t = status_of($p);
    return $t !~ /^nginx_engagement_global_dedupe_waiting [1-9]/m
        && $t =~ /^nginx_engagement_pending_contents\{zone="engagement"\} 0$/m
        && $t =~ /^nginx_engagement_inflight_contents\{zone="engagement"\} 0$/m
        && $t =~ /^nginx_engagement_writer_queued_events 0$/m
        && $t =~ /^nginx_engagement_writer_inflight_events 0$/m
        && $t =~ /^nginx_engagement_writer_spool_files 0$/m
        && $t =~ /^nginx_engagement_series_rows_pending 0$/m;
}

sub view {
    my ($p, $c, $s, $country) = @_;
    my ($st, $b) = http_request($p, 'POST', '/engagement/view',
        qq({"contentId":"$c","sessionId":"$s"}),
        'Content-Type' => 'application/json', 'X-Country' => $country // 'US');
    return ($st // 0, $b // '');
}

# the same $n viewers of content $c on every edge of @ports: the answers
# by kind (pending, duplicate, or the status and body)
sub same_viewers {
    my ($c, $n, @ports) = @_;
    my %ans;
    for my $j (1 .. $n) {
        for my $p (@ports) {
            my ($st, $b) = view($p, $c, "$c-v$j", 'DE');
            my $k = $st == 202 && $b =~ /"counted":false,"reason":"pending"/ ? 'pending'
                  : $st == 200 && $b =~ /"reason":"duplicate"/ ? 'duplicate' : "$st $b";
            $ans{$k}++;
        }
    }
    return \%ans;
}

1;
