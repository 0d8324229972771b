#!/usr/bin/python3
"""check_tags.py - checks `leakscope sites` of a tag-built program (tags_prog.c) exactly.

  check_tags.py LEAKSCOPE expect SNAPSHOT EXPECT_FILE
      every tag of EXPECT_FILE is one row (text and json) with exactly the expected figures,
      module, function and kind; tags never called are absent by default and present, all 0,
      with --all; no two rows share a tag (a plugin loaded twice is merged)
  check_tags.py LEAKSCOPE functions TAGGED_SNAP PLAIN_SNAP
      per function (t_*, lib_*, plug_*), the tagged run's tag rows and the untagged build's
      call-site rows (site_frames 2: the innermost frame in such a function) sum to the same
      live bytes, live blocks, allocations and bytes
  check_tags.py LEAKSCOPE diff SNAP_A SNAP_B
      `leakscope diff` of two runs of one program matches every tag row (nothing changed)
  check_tags.py LEAKSCOPE leak SNAPSHOT
      mode full: the 100-byte block of t_leak is definitely lost, its stack's innermost frame
      is t_leak (the program's function, not an agent entry point)
"""
import json
import os
import re
import subprocess
import sys

FUNC_RE = re.compile(r"^(t|lib|plug)_")


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print("FAIL: %s exited %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
        sys.exit(1)
    return p.stdout


def sites(leakscope, snap, *extra):
    return json.loads(run([leakscope, "sites", snap, "--format", "json"] + list(extra)))


def read_expect(path):
    rows = []
    for line in open(path):
        f, ln, mod, func, kind, *vals = line.split()
        rows.append({"file": f, "line": int(ln), "module": mod, "function": func, "kind": kind,
                     "figures": [int(v) for v in vals]})
    return rows


def figures(s):
    return [s["live_bytes"], s["live_blocks"], s["allocs"], s["bytes"]]


def tag_key(t):
    return (t["module"], t["file"], t["line"], t["function"])


def check_expect(leakscope, snap, expect):
    want = read_expect(expect)
    bad = []
    docs = {"default": sites(leakscope, snap), "all": sites(leakscope, snap, "--all")}
    text = run([leakscope, "sites", snap, "--all"])
    for name, doc in docs.items():
        if doc["mode"] != "sites" or not doc["exact"] or doc["all"] != (name == "all"):
            bad.append("%s: not an exact sites view: mode %s, all %s" % (name, doc["mode"],
                                                                         doc["all"]))
        rows = {}
        for s in doc["sites"]:
            if "tag" not in s:
                continue
            if s["frames"]:
                bad.append("%s: a tag row with frames: %s" % (name, s))
            k = tag_key(s["tag"])
            if k in rows:
                bad.append("%s: two rows for tag %s" % (name, k))
            rows[k] = s
        for w in want:
            k = (w["module"], w["file"], w["line"], w["function"])
            s = rows.get(k)
            never = not any(w["figures"])
            if never and name == "default":
                if s:
                    bad.append("default: tag %s never called but shown" % (k,))
                continue
            if not s:
                bad.append("%s: no row for tag %s (%s)" % (name, k, w["kind"]))
                continue
            if figures(s) != w["figures"]:
                bad.append("%s: tag %s: live_bytes/live_blocks/allocs/bytes %s, expected %s"
                           % (name, k, figures(s), w["figures"]))
            if s["tag"]["kind"] != w["kind"]:
                bad.append("%s: tag %s: kind %s, expected %s" % (name, k, s["tag"]["kind"],
                                                                 w["kind"]))
        known = {(w["module"], w["file"], w["line"], w["function"]) for w in want}
        for k in rows:  # other scenarios' tags, never called in this one
            if k not in known and (any(figures(rows[k])) or name == "default"):
                bad.append("%s: unexpected tag row %s: %s" % (name, k, figures(rows[k])))
        t = doc["totals"]
        sums = [sum(figures(s)[i] for s in doc["sites"]) for i in range(4)]
        if sums != [t["live_bytes"], t["live_blocks"], t["allocs"], t["bytes"]]:
            bad.append("%s: totals %s are not the sum of the rows %s" % (name, t, sums))
    # the allocinfo line: "bytes calls file:line [module] func:function allocs:N alloc_bytes:N"
    for w in want:
        tag = "%s:%d [%s] func:%s" % (os.path.basename(w["file"]), w["line"], w["module"],
                                      w["function"])
        line = "%d %d %s allocs:%d alloc_bytes:%d" % (w["figures"][0], w["figures"][1], tag,
                                                      w["figures"][2], w["figures"][3])
        got = [re.sub(r"\s+", " ", ln.strip()) for ln in text.splitlines() if tag + " " in ln]
        if got != [line]:
            bad.append("text --all: wanted the line '%s', got %s" % (line, got))
    for b in bad:
        print("FAIL", b)
    print("%s: %s against %s (%d tags)" % ("FAIL" if bad else "ok", snap, expect, len(want)))
    return 1 if bad else 0


def by_function_tagged(doc):
    acc = {}
    for s in doc["sites"]:
        if "tag" in s and FUNC_RE.match(s["tag"]["function"]):
            a = acc.setdefault(s["tag"]["function"], [0, 0, 0, 0])
            for i, v in enumerate(figures(s)):
                a[i] += v
    return acc


def by_function_plain(doc):
    acc, tagged = {}, 0
    for s in doc["sites"]:
        if "tag" in s:
            tagged += 1
            continue
        fn = next((f["function"] for f in s["frames"]
                   if f.get("function") and FUNC_RE.match(f["function"])), None)
        if fn:
            a = acc.setdefault(fn, [0, 0, 0, 0])
            for i, v in enumerate(figures(s)):
                a[i] += v
    return acc, tagged


def check_functions(leakscope, tagged_snap, plain_snap):
    a = by_function_tagged(sites(leakscope, tagged_snap))
    b, tagged = by_function_plain(sites(leakscope, plain_snap))
    bad = 0
    if tagged:
        print("FAIL: the untagged build has %d tag rows" % tagged)
        bad += 1
    for fn in sorted(set(a) | set(b)):
        if a.get(fn) != b.get(fn):
            print("FAIL %s: tags %s, call sites %s" % (fn, a.get(fn), b.get(fn)))
            bad += 1
    print("%s: %d functions, tags against call sites" % ("FAIL" if bad else "ok", len(a)))
    return 1 if bad or len(a) < 10 else 0


def check_diff(leakscope, a, b):
    doc = json.loads(run([leakscope, "diff", a, b, "--format", "json"]))
    changed = [s for s in doc["sites"] if "tag" in s]
    for s in changed:
        print("FAIL: tag changed between two runs:", s["tag"], s["old"], s["new"])
    ntags = sum(1 for s in sites(leakscope, a)["sites"] if "tag" in s)
    ok = not changed and ntags > 0 and doc["unchanged"] >= ntags
    print("%s: diff of two runs: %d tag rows, %d unchanged sites, %d changed tag rows"
          % ("ok" if ok else "FAIL", ntags, doc["unchanged"], len(changed)))
    return 0 if ok else 1


def check_leak(leakscope, snap):
    doc = json.loads(run([leakscope, "report", snap, "--format", "json"]))
    found, agent = [], []
    for leak in doc.get("leaks", []):
        frames = leak.get("stack") or []
        fn = frames[0].get("function") if frames else None
        found.append((leak.get("kind"), leak.get("bytes"), leak.get("blocks"), fn))
        agent += [f["function"] for f in frames if (f.get("function") or "").startswith("ls_")]
    ok = ("definitely_lost", 100, 1, "t_leak") in found
    print("%s: mode full leaks %s%s" % ("ok" if ok and not agent else "FAIL", found,
                                        ", agent frames %s" % agent if agent else ""))
    return 0 if ok and not agent else 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[2] == "expect":
        sys.exit(check_expect(sys.argv[1], sys.argv[3], sys.argv[4]))
    if len(sys.argv) == 5 and sys.argv[2] == "functions":
        sys.exit(check_functions(sys.argv[1], sys.argv[3], sys.argv[4]))
    if len(sys.argv) == 5 and sys.argv[2] == "diff":
        sys.exit(check_diff(sys.argv[1], sys.argv[3], sys.argv[4]))
    if len(sys.argv) == 4 and sys.argv[2] == "leak":
        sys.exit(check_leak(sys.argv[1], sys.argv[3]))
    print(__doc__)
    sys.exit(2)
