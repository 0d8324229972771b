#!/usr/bin/python3
"""check_sites.py - compares what sites_prog expects with the counters of a snapshot.

  check_sites.py LEAKSCOPE SNAPSHOT EXPECT_FILE          expectations (sites_prog.c)
  check_sites.py LEAKSCOPE --each DIR N                  DIR/PID.exp against DIR/s.PID.lsnap, for
                                                         exactly N processes (fork: the agent's
                                                         output=DIR/s.%p.lsnap)
  check_sites.py LEAKSCOPE --same FULL_SNAP SITES_SNAP   every site's live bytes and blocks equal
                                                         between a mode full and a mode sites run

Sites are named by the functions of their innermost frames ("f0" or "f0<-f1"); the comparison of
two runs keys them by object and offset of the innermost frame (the runs load at other addresses).
"""
import json
import os
import subprocess
import sys


def sites_of(leakscope, snap):
    out = subprocess.run([leakscope, "sites", snap, "--format", "json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def by_functions(doc, depth):
    acc = {}
    for s in doc["sites"]:
        key = "<-".join((f.get("function") or "?") for f in s["frames"][:depth])
        a = acc.setdefault(key, [0, 0, 0, 0])
        a[0] += s["live_bytes"]
        a[1] += s["live_blocks"]
        a[2] += s["allocs"] or 0
        a[3] += s["bytes"] or 0
    return acc


def check_expect(leakscope, snap, expect):
    doc = sites_of(leakscope, snap)
    if doc["mode"] != "sites" or not doc["exact"]:
        print("FAIL: not an exact sites snapshot:", doc["mode"])
        return 1
    bad = 0
    for line in open(expect):
        name, *vals = line.split()
        got = by_functions(doc, name.count("<-") + 1).get(name, [0, 0, 0, 0])
        for label, w, g in zip(("live_bytes", "live_blocks", "allocs", "bytes"), vals, got):
            lo, _, hi = w.partition("..")  # "N", "-1" (not checked) or "LO..HI"
            lo, hi = int(lo), int(hi or lo)
            if w != "-1" and not lo <= g <= hi:
                print(f"FAIL {name}: {label} {g}, expected {w}")
                bad += 1
        if got[0] < 0 or got[1] < 0:
            print(f"FAIL {name}: negative live counters {got[:2]}")
            bad += 1
    print(f"{'FAIL' if bad else 'ok'}: {snap} against {expect}")
    return 1 if bad else 0


def by_offset(doc):
    acc = {}
    for s in doc["sites"]:
        f = s["frames"][0] if s["frames"] else {"object": "(none)", "offset": "0"}
        key = (f.get("object"), f.get("offset"))
        a = acc.setdefault(key, [0, 0, f.get("function")])
        a[0] += s["live_bytes"]
        a[1] += s["live_blocks"]
    return {k: v for k, v in acc.items() if v[0] or v[1]}


def check_same(leakscope, full, sites):
    a = by_offset(sites_of(leakscope, full))
    b = by_offset(sites_of(leakscope, sites))
    bad = 0
    for k in sorted(set(a) | set(b), key=str):
        va, vb = a.get(k, [0, 0, None]), b.get(k, [0, 0, None])
        if va[:2] != vb[:2]:
            print(f"FAIL {k} ({va[2] or vb[2]}): full {va[:2]}, sites {vb[:2]}")
            bad += 1
    print(f"{'FAIL' if bad else 'ok'}: {len(a)} live sites in mode full, {len(b)} in mode sites")
    return 1 if bad or not a else 0


def check_each(leakscope, d, n):
    exps = sorted(f for f in os.listdir(d) if f.endswith(".exp"))
    snaps = sorted(f for f in os.listdir(d) if f.endswith(".lsnap"))
    if len(exps) != n or len(snaps) != n:
        print(f"FAIL: expected {n} processes, found expectations {exps} and snapshots {snaps}")
        return 1
    bad = 0
    for e in exps:
        bad += check_expect(leakscope, os.path.join(d, "s." + e[:-4] + ".lsnap"),
                            os.path.join(d, e))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[2] == "--each":
        sys.exit(check_each(sys.argv[1], sys.argv[3], int(sys.argv[4])))
    if len(sys.argv) == 5 and sys.argv[2] == "--same":
        sys.exit(check_same(sys.argv[1], sys.argv[3], sys.argv[4]))
    if len(sys.argv) == 4:
        sys.exit(check_expect(*sys.argv[1:]))
    print(__doc__)
    sys.exit(2)
