#!/usr/bin/python3
"""test_go_pprof.py - leakscope's pprof output read by Go's own pprof tool.

pprof_prog has allocation sites with known figures (see pprof_prog.c). Under the agent:
  full mode     `pprof -top` must show each site's exact in-use bytes and objects; the alloc
                views must not exist; re-symbolized by pprof itself from the binaries
                (-symbolize=force: addresses and mapping offsets put to the test) the sites and
                their lines must be the ones leakscope wrote;
  sample mode   (fixed sample_seed) every site within 10% of the truth, in use and allocated;
  diff          `leakscope diff OLD NEW --format pprof` must show what `pprof -base OLD NEW`
                computes from the two profiles, function by function.

usage: test_go_pprof.py LEAKSCOPE AGENT PROG PPROF WORKDIR
"""
import os
import re
import subprocess
import sys

LEAKSCOPE, AGENT, PROG, PPROF, WORK = sys.argv[1:6]
KIB = 1024
TRUTH_INUSE = {"big_site": (32, 4 * KIB * KIB), "medium_site": (16384, 4 * KIB * KIB),
               "small_site": (131072, 2 * KIB * KIB)}
TRUTH_ALLOC_CHURN = (100000, 100000 * KIB)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def run(cmd, env=None, ok=True):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if ok and p.returncode != 0:
        print("command failed (%d): %s\n%s%s" % (p.returncode, " ".join(cmd), p.stdout, p.stderr))
        sys.exit(1)
    return p


def profile(name, options):
    """Runs PROG under the agent with LEAKSCOPE_OPTIONS, returns the snapshot's path."""
    snap = os.path.join(WORK, name + ".lsnap")
    env = dict(os.environ, LD_PRELOAD=AGENT,
               LEAKSCOPE_OPTIONS="summary=0:control=0:output=%s%s" % (snap, options))
    run([PROG], env=env)
    return snap


def to_pprof(snap):
    out = snap + ".pb.gz"
    run([LEAKSCOPE, "report", snap, "--format", "pprof", "-o", out])
    return out


def pprof_env():
    return dict(os.environ, HOME=WORK, PPROF_TMPDIR=WORK)


def top(args):
    """pprof -top (exact units, no node dropped): {function[ file:line]: flat} and the text."""
    p = run([PPROF, "-top", "-unit=B", "-nodefraction=0"] + args, env=pprof_env())
    rows = {}
    for line in p.stdout.splitlines():
        m = re.match(r"\s*(-?\d+)B?\s+-?[\d.]+%\s+-?[\d.]+%\s+-?\d+B?\s+-?[\d.]+%\s+(.+?)\s*$", line)
        if m:
            rows[m.group(2)] = rows.get(m.group(2), 0) + int(m.group(1))
    return rows, p.stdout


def within(est, truth, tol=0.10):
    return abs(est - truth) <= tol * truth


# ---- full mode: exact ---------------------------------------------------------------------------
full = to_pprof(profile("full", ""))
rows, text = top(["-sample_index=inuse_space", full])
print(text)
check("Type: inuse_space" in text, "full: type line")
for fn, (objects, space) in TRUTH_INUSE.items():
    check(rows.get(fn) == space, "full: %s inuse_space %s, expected %d" % (fn, rows.get(fn), space))
flat = [f for f, v in rows.items() if v]
check(sorted(flat) == sorted(TRUTH_INUSE), "full: sites with flat bytes: %s" % flat)
rows, text = top(["-sample_index=inuse_objects", full])
for fn, (objects, space) in TRUTH_INUSE.items():
    check(rows.get(fn) == objects, "full: %s inuse_objects %s, expected %d" % (fn, rows.get(fn),
                                                                             objects))
p = run([PPROF, "-top", "-sample_index=alloc_space", full], env=pprof_env(), ok=False)
check(p.returncode != 0 and "inuse_objects inuse_space" in p.stderr,
      "full: alloc_space must not exist (rc %d, %s)" % (p.returncode, p.stderr.strip()))

# Our symbols against pprof's own (addr2line on the binaries, through our mappings): the same
# functions at the same lines, and the same bytes.
ours, _ = top(["-lines", "-sample_index=inuse_space", full])
theirs, text = top(["-lines", "-symbolize=force", "-sample_index=inuse_space", full])
mine = {k: v for k, v in ours.items() if v and "pprof_prog.c" in k}
again = {k: v for k, v in theirs.items() if v and "pprof_prog.c" in k}
print("leakscope's lines: %s\npprof's lines:     %s" % (mine, again))
check(len(mine) == 3 and mine == again, "full: re-symbolized by pprof: %s vs %s" % (mine, again))

# ---- sample mode: estimates ---------------------------------------------------------------------
sample_opts = ":mode=sample:sample_rate=1024:sample_seed=%d"
s1 = to_pprof(profile("sample1", sample_opts % 7))
rows, text = top(["-sample_index=inuse_space", s1])
print(text)
for fn, (objects, space) in TRUTH_INUSE.items():
    got = rows.get(fn, 0)
    check(within(got, space), "sample: %s inuse_space %d, truth %d" % (fn, got, space))
rows, _ = top(["-sample_index=inuse_objects", s1])
for fn, (objects, space) in TRUTH_INUSE.items():
    got = rows.get(fn, 0)
    check(within(got, objects), "sample: %s inuse_objects %d, truth %d" % (fn, got, objects))
rows, text = top(["-sample_index=alloc_space", s1])
print(text)
check(within(rows.get("churn_site", 0), TRUTH_ALLOC_CHURN[1]),
      "sample: churn_site alloc_space %s, truth %d" % (rows.get("churn_site"),
                                                      TRUTH_ALLOC_CHURN[1]))
rows, _ = top(["-sample_index=alloc_objects", s1])
check(within(rows.get("churn_site", 0), TRUTH_ALLOC_CHURN[0]),
      "sample: churn_site alloc_objects %s, truth %d" % (rows.get("churn_site"),
                                                        TRUTH_ALLOC_CHURN[0]))

# ---- diff: ours is pprof's -base ----------------------------------------------------------------
old_snap, new_snap = os.path.join(WORK, "sample1.lsnap"), profile("sample2", sample_opts % 8)
s2 = to_pprof(new_snap)
d = os.path.join(WORK, "diff.pb.gz")
run([LEAKSCOPE, "diff", old_snap, new_snap, "--format", "pprof", "-o", d])
for index in ("inuse_space", "alloc_objects"):
    ours, text = top(["-sample_index=" + index, d])
    base, _ = top(["-sample_index=" + index, "-base", s1, s2])
    ours = {k: v for k, v in ours.items() if v}
    base = {k: v for k, v in base.items() if v}
    print("diff %s: leakscope %s\n          pprof -base %s" % (index, ours, base))
    check(ours == base and len(ours) > 0, "diff %s: leakscope diff != pprof -base" % index)

if failures:
    print("%d failure(s)" % len(failures))
    sys.exit(1)
print("go pprof: all checks passed")
