#!/bin/sh
# leakscope run: usage errors, bad input files and options, and the public API.
# Usage: test_run_cli.sh LEAKSCOPE API_PROG LEAKY_PROG
set -u
ls=$1 api=$2 leaky=$3
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

expect 2 "no program given" -- "$ls" run
expect 2 "unknown or incomplete option" -- "$ls" run --bogus -- /bin/true
expect 2 "error-exitcode wants 1-255" -- "$ls" run --error-exitcode 0 -- /bin/true
expect 2 "error-exitcode wants 1-255" -- "$ls" run --error-exitcode abc -- /bin/true
expect 2 "mode wants full, sample or sites" -- "$ls" run --mode fast -- /bin/true
expect 2 "site-frames needs --mode sites" -- "$ls" run --site-frames 2 -- /bin/true
expect 2 "site-frames wants 1-16" -- "$ls" run --mode sites --site-frames 17 -- /bin/true
expect 2 "max-frames wants 1-256" -- "$ls" run --max-frames 0 -- /bin/true
expect 2 "unwinder wants" -- "$ls" run --unwinder magic -- /bin/true
expect 127 "cannot run" -- "$ls" run -- "$tmp/does-not-exist"
expect 2 "unknown command" -- "$ls" frobnicate
printf 'leak:ok\nrace:foo\n' >"$tmp/bad.supp"
expect 2 "bad.supp:2" -- "$ls" run --suppressions "$tmp/bad.supp" -- /bin/true
expect 2 "cannot open\|No such file" -- "$ls" run --suppressions "$tmp/none.supp" -- /bin/true
# the program's exit status passes through; --error-exitcode only when it leaked
expect 0 "" -- "$ls" run -- /bin/true
expect 1 "" -- "$ls" run -- /bin/false
expect 0 "definitely lost" -- "$ls" run -- "$leaky"
expect 42 "definitely lost" -- "$ls" run --error-exitcode 42 -- "$leaky"
expect 0 "" -- "$ls" run --error-exitcode 42 -- /bin/true
# bad LEAKSCOPE_OPTIONS: reported, ignored, the program still runs normally
LEAKSCOPE_OPTIONS='nonsense=1:max_frames=abc' expect 0 "unknown option 'nonsense=1'" -- "$ls" run -- /bin/true
LEAKSCOPE_OPTIONS='max_frames=abc' expect 0 "bad value in 'max_frames=abc'" -- "$ls" run -- /bin/true
# --output keeps a snapshot that report can read again; a JSON report is written
expect 0 "" -- "$ls" run --output "$tmp/s.lsnap" --json "$tmp/r.json" -- "$leaky"
expect 0 "" -- "$ls" report "$tmp/s.lsnap"
grep -q '"definitely_lost"' "$tmp/r.json" && ok || bad "no JSON summary"
# the API: a mid-run check writes its own snapshot; ignored blocks are never reported
expect 0 "" -- "$ls" run --json "$tmp/api.json" -- "$api" check "$tmp/mid.lsnap"
grep -q "mid-run check: 1[0-9][0-9] bytes lost" "$tmp/out" && ok || bad "mid-run check output: $(cat "$tmp/out")"
"$ls" report --format json "$tmp/mid.lsnap" >"$tmp/mid.json" 2>&1 && grep -q '"reason":.*"live"' "$tmp/mid.json" && ok || bad "mid-run snapshot not readable as live"
python3 - "$tmp/api.json" <<'PY' && ok || bad "API JSON verdict"
import json, sys
r = json.load(open(sys.argv[1]))
d = r["summary"]["definitely_lost"]
assert d["bytes"] == 100 and d["blocks"] == 1, d   # the ignored 200-byte block is not lost
PY
expect 0 "" -- "$api" absent
# /dev/null as a destination keeps nothing and stays a device (a rename as root would replace it)
expect 0 "" -- "$ls" run --output /dev/null --json /dev/null -- "$leaky"
[ -c /dev/null ] && ok || bad "/dev/null is no longer a character device"
# the live-inspection options: bad values are usage errors
expect 2 "not a usable signal" -- "$ls" run --snapshot-signal NOSUCH -- /bin/true
expect 2 "whole seconds" -- "$ls" run --snapshot-interval 0 -- /bin/true
expect 2 "contains ':'" -- "$ls" run --snapshot-output a:b -- /bin/true
expect 0 "" -- "$ls" run --snapshot-signal USR2 --snapshot-interval 60 --no-control -- /bin/true
expect 2 "not a process id" -- "$ls" snapshot abc
expect 2 "expected one PID" -- "$ls" snapshot
expect 2 "expected PID and LABEL" -- "$ls" mark 1
expect 1 "no process" -- "$ls" mark 999999999 x
expect 0 "" -- "$ls" ps
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
