#!/bin/sh
# Mode sample from the outside: leakscope run --mode sample (options, usage errors), and every
# way a sample profile is taken - at exit, on the snapshot signal, every N seconds, through the
# control socket (leakscope snapshot PID) - each checked by sample_sites check.
# Usage: test_sample_cli.sh LEAKSCOPE AGENT SAMPLE_SITES
set -u
ls=$1 agent=$2 prog=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# expect STATUS PATTERN -- command...: exit status and a stderr pattern
expect() {
    want=$1 pat=$2
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    if [ "$got" -ne "$want" ]; then bad "$* exited $got, wanted $want"; sed 's/^/  /' "$tmp/err" | head -5; return; fi
    if [ -n "$pat" ] && ! grep -q -- "$pat" "$tmp/err"; then bad "$*: stderr lacks '$pat'"; sed 's/^/  /' "$tmp/err" | head -5; return; fi
    ok
}
# check FILE RATE: a sample profile of sample_sites with the right estimates
check() {
    if [ ! -f "$1" ]; then bad "no snapshot $1"; return; fi
    if "$prog" check "$1" "$2" >"$tmp/check" 2>&1; then ok; else bad "check $1"; sed 's/^/  /' "$tmp/check"; fi
}
# wait_for FILE: up to 20 s
wait_for() {
    i=0
    while [ ! -e "$1" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    [ -e "$1" ]
}

# ---- usage errors
for r in 0 -1 abc 12x 1e3 "" 1099511627777; do
    expect 2 "sample-rate wants a number of bytes" -- "$ls" run --mode sample --sample-rate "$r" -- /bin/true
done
expect 2 "sample-rate needs --mode sample" -- "$ls" run --sample-rate 4096 -- /bin/true
expect 2 "mode wants full, sample or sites" -- "$ls" run --mode fast -- /bin/true

# ---- leakscope run --mode sample: the exit profile, kept with --output, readable by report
mkdir "$tmp/h1" && touch "$tmp/h1/stop"
expect 0 "" -- env LEAKSCOPE_OPTIONS=sample_seed=3 "$ls" run --mode sample --sample-rate 4096 \
    --output "$tmp/run.lsnap" -- "$prog" hold "$tmp/h1"
check "$tmp/run.lsnap" 4096
expect 0 "" -- "$ls" report "$tmp/run.lsnap"
# the default rate reaches the agent too
expect 0 "" -- "$ls" run --mode sample --output "$tmp/run-default.lsnap" -- /bin/true
if "$prog" meta-rate "$tmp/run-default.lsnap" 2>/dev/null | grep -qx 524288; then ok; else bad "default sample_rate"; fi

# ---- signal and control socket, then exit, on one process. The control thread is lazy in mode
# sample: none until the first request, created at the process's next allocation.
nthreads() { ls /proc/$1/task 2>/dev/null | wc -l; }
mkdir "$tmp/h2" && mkdir -m 700 "$tmp/ctl"
LD_PRELOAD=$agent LEAKSCOPE_OPTIONS="mode=sample:sample_rate=8192:sample_seed=5:summary=0:control_dir=$tmp/ctl:snapshot_signal=12:snapshot_output=$tmp/h2/sig.%n.lsnap:output=$tmp/h2/exit.lsnap" \
    "$prog" hold-busy "$tmp/h2" &
pid=$!
if wait_for "$tmp/h2/ready"; then
    if [ "$(nthreads $pid)" = 1 ]; then ok; else bad "lazy control: $(nthreads $pid) threads before any request"; fi
    kill -USR2 $pid
    if wait_for "$tmp/h2/sig.1.lsnap"; then sleep 0.2; check "$tmp/h2/sig.1.lsnap" 8192; else bad "no signal snapshot"; fi
    if [ "$(nthreads $pid)" = 2 ]; then ok; else bad "lazy control: $(nthreads $pid) threads after the signal"; fi
    expect 0 "" -- env LEAKSCOPE_CONTROL_DIR="$tmp/ctl" "$ls" snapshot $pid -o "$tmp/h2/ctl.lsnap"
    check "$tmp/h2/ctl.lsnap" 8192
    expect 1 "no leak check in mode sample" -- env LEAKSCOPE_CONTROL_DIR="$tmp/ctl" "$ls" snapshot $pid --leak-check -o "$tmp/h2/lc.lsnap"
else
    bad "hold never got ready"
fi
touch "$tmp/h2/stop"
wait $pid || bad "hold exited $?"
check "$tmp/h2/exit.lsnap" 8192

# the first request is a connection (the kernel's O_ASYNC signal wakes the agent); an idle
# process (no allocation at all) is served with control_lazy=0
for lazy in 1 0; do
    d="$tmp/h2-$lazy" && mkdir "$d"
    LD_PRELOAD=$agent LEAKSCOPE_OPTIONS="mode=sample:sample_rate=8192:summary=0:control_dir=$tmp/ctl:control_lazy=$lazy:output=/dev/null" \
        "$prog" $([ $lazy = 1 ] && echo hold-busy || echo hold) "$d" &
    pid=$!
    if wait_for "$d/ready"; then
        want=$([ $lazy = 1 ] && echo 1 || echo 2)
        if [ "$(nthreads $pid)" = $want ]; then ok; else bad "control_lazy=$lazy: $(nthreads $pid) threads at start"; fi
        expect 0 "" -- env LEAKSCOPE_CONTROL_DIR="$tmp/ctl" "$ls" snapshot $pid -o "$d/ctl.lsnap"
        check "$d/ctl.lsnap" 8192
    else
        bad "hold never got ready"
    fi
    touch "$d/stop"
    wait $pid || bad "hold exited $?"
done

# ---- interval snapshots
mkdir "$tmp/h3"
LD_PRELOAD=$agent LEAKSCOPE_OPTIONS="mode=sample:sample_rate=8192:summary=0:control=0:snapshot_interval=1:snapshot_output=$tmp/h3/int.%n.lsnap:output=/dev/null" \
    "$prog" hold "$tmp/h3" &
pid=$!
if wait_for "$tmp/h3/ready"; then
    n=0
    while [ $n -lt 200 ] && [ "$(ls "$tmp/h3" | grep -c '^int\..*\.lsnap$')" -lt 2 ]; do sleep 0.1; n=$((n + 1)); done
    last=$(ls "$tmp/h3" | grep '^int\..*\.lsnap$' | sort -t. -k2 -n | tail -1)
    if [ -n "$last" ]; then check "$tmp/h3/$last" 8192; else bad "no interval snapshot"; fi
else
    bad "hold never got ready"
fi
touch "$tmp/h3/stop"
wait $pid || bad "interval hold exited $?"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
