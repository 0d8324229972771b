#!/bin/sh
# The agent's unwinders end to end (ctest unwind.agent): libunwind is not mapped into the host
# unless unwinder=libunwind asks for it (then the agent's constructor dlopen()s it), and the
# stacks it gives equal the fast unwinder's, in mode full (leak report) and in mode sample (whose
# fast unwinder reads the unwind tables from the files). Addresses differ run to run (ASLR):
# reports are compared with them masked, function names and lines kept.
# Usage: test_agent_unwinders.sh LEAKSCOPE AGENT PROGRAM
set -u
ls=$1 agent=$2 prog=$3
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}
maps() {
    LD_PRELOAD=$agent LEAKSCOPE_OPTIONS="$1:control=0:summary=0:output=/dev/null" cat /proc/self/maps
}
maps mode=full | grep -q libunwind && fail "libunwind mapped in mode full, unwinder=fast"
maps mode=sample | grep -q libunwind && fail "libunwind mapped in mode sample"
maps mode=full:unwinder=libunwind | grep -q 'libunwind\.so' || fail "unwinder=libunwind: not mapped"

for mode in full sample; do
    for u in fast libunwind; do
        LD_PRELOAD=$agent LEAKSCOPE_OPTIONS="mode=$mode:sample_rate=1:sample_seed=1:unwinder=$u:control=0:summary=0:output=$d/$mode-$u.lsnap" \
            "$prog" >/dev/null 2>"$d/$mode-$u.err" || fail "$mode/$u: the program failed"
        grep -q 'cannot load' "$d/$mode-$u.err" && fail "$mode/$u: $(cat "$d/$mode-$u.err")"
        "$ls" report "$d/$mode-$u.lsnap" | sed -E 's/0x[0-9A-Fa-f]+/ADDR/g; s/pid [0-9]+/pid N/' \
            >"$d/$mode-$u.txt" || fail "$mode/$u: report"
    done
    grep -q 'by ADDR: main ' "$d/$mode-fast.txt" || fail "$mode: no stacks through main"
    diff "$d/$mode-fast.txt" "$d/$mode-libunwind.txt" || fail "$mode: stacks differ"
    echo "ok   $mode: fast and libunwind agree ($(grep -c 'by ADDR' "$d/$mode-fast.txt") frames)"
done
