#!/usr/bin/perl
# leakscope bench workload: hash-heavy Perl. Deterministic (own LCG, no rand()), one summary
# line on stdout. $ARGV[0] = scale (default 1.0) multiplies the number of rounds. Each round
# builds nested hashes of strings and arrays, sorts, joins, deletes and rebuilds them.
use strict;
use warnings;

my $scale  = @ARGV ? $ARGV[0] : 1.0;
my $rounds = int(20 * $scale);
$rounds = 1 if $rounds < 1;

my $seed = 42;
sub lcg { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed; }

my $total = 0;
my %keep;
for my $r (1 .. $rounds) {
    my %h;
    for my $i (1 .. 20000) {
        my $k = sprintf("k%06d_%d", lcg() % 50000, $r);
        $h{$k} = { id => $i, name => "n" x ($i % 17), tags => [ map { "t$_" } 1 .. ($i % 5) ] };
    }
    my @keys = sort keys %h;
    $total += scalar @keys;
    for my $k (@keys[0 .. $#keys / 2]) { delete $h{$k}; }
    my %inv;
    while (my ($k, $v) = each %h) {
        push @{ $inv{ length $v->{name} } }, $k;
    }
    $total += scalar(keys %inv);
    my $s = join(",", map { "$_=" . scalar @{ $inv{$_} } } sort { $a <=> $b } keys %inv);
    $total += length $s;
    my @words = split /_/, join("_", @keys[0 .. 3000]);
    my %count;
    $count{$_}++ for @words;
    $total += scalar(keys %count);
    $keep{$r} = [ @keys[0 .. 50] ] if $r % 5 == 0;
}
print "rounds=$rounds total=$total kept=", scalar(keys %keep), "\n";
