#!/usr/bin/perl
# POSTs N view events with dimensions on one keep-alive connection, one at
# a time: 50 contents, 7 channels, 5 categories, 4 sources and devices
# (700 distinct tuples). Prints how many were counted (202).
use strict;
use warnings;
use IO::Socket::INET;

my ($port, $n) = @ARGV;
my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die "connect: $!";
my @src = qw(feed search profile external);
my @dev = qw(mobile desktop tv tablet);
my $ok = 0;
for my $i (1 .. $n) {
    my $b = qq({"contentId":"c) . ($i % 50) . qq(","sessionId":"s$i","viewerId":"u$i",)
          . qq("channelId":"ch) . ($i % 7) . qq(","category":"cat) . ($i % 5)
          . qq(","source":"$src[$i % 4]","device":"$dev[$i % 4]"});
    print $s "POST /engagement/view HTTP/1.1\r\nHost: x\r\n"
           . "Content-Type: application/json\r\nContent-Length: " . length($b)
           . "\r\n\r\n$b";
    my $head = '';
    while (<$s>) { $head .= $_; last if $_ eq "\r\n" }
    my ($len) = $head =~ /Content-Length: (\d+)/i;
    my $body = '';
    read($s, $body, $len) if $len;
    $ok++ if $head =~ m{^HTTP/1\.1 202};
}
print "$ok\n";
