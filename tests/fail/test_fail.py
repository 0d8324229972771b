#!/usr/bin/python3
"""test_fail.py - fault injection (leakscope run --fail) on fail_prog.c, in modes full and sites.

  test_fail.py SCENARIO LEAKSCOPE AGENT FAIL_PROG FAIL_PROG_TAGS FAIL_PROG_SOURCE FAIL_PLUGIN

Each scenario runs fail_prog under `leakscope run --fail ...` and checks, exactly: the program's
own output and exit status (it took its error path), the injected failures the report lists
(text and JSON: counts, matching calls, the spec, the stack's functions) and, in mode full, the
leak check of the error path. Lines are found by their "FAIL-LINE: name" markers in the source.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SCENARIO, LEAKSCOPE, AGENT, PROG, PROG_TAGS, SOURCE, PLUGIN = sys.argv[1:8]
MODES = ("full", "sites")
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what)
    return cond


def line_of(name):
    for i, text in enumerate(open(SOURCE), 1):
        if "FAIL-LINE: " + name + " " in text + " ":
            return i
    raise SystemExit("no FAIL-LINE marker for " + name)


TMP = tempfile.mkdtemp(prefix="test_fail.")


def run(mode, fails, args, prog=PROG, extra=()):
    """leakscope run in mode with --fail specs; returns (rc, stdout, stderr, faults, report)
    where faults is the JSON report's "faults" and report the whole JSON document."""
    snap = os.path.join(TMP, "s.lsnap")
    js = os.path.join(TMP, "r.json")
    for p in (snap, js):
        if os.path.exists(p):
            os.unlink(p)
    cmd = [LEAKSCOPE, "run", "--mode", mode, "--output", snap]
    if mode == "full":
        cmd += ["--json", js]
    for f in fails:
        cmd += ["--fail", f]
    cmd += list(extra) + ["--", prog] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True)
    doc = None
    if mode == "full" and os.path.exists(js):
        doc = json.load(open(js))
    elif os.path.exists(snap):
        out = subprocess.run([LEAKSCOPE, "report", snap, "--format", "json"], capture_output=True,
                             text=True)
        doc = json.loads(out.stdout) if out.returncode == 0 else None
    faults = doc.get("faults") if doc else None
    return p.returncode, p.stdout, p.stderr, faults, doc


def functions(stack):
    return [f.get("function") for f in stack]


def expect_faults(faults, calls, injected, specs, tag):
    """faults has these totals and one rule per spec; returns the rules."""
    if not check(faults is not None, f"{tag}: the report has no faults section"):
        return []
    check(faults["calls"] == calls, f"{tag}: {faults['calls']} matching calls, expected {calls}")
    check(faults["injected"] == injected,
          f"{tag}: {faults['injected']} failures injected, expected {injected}")
    check(faults["unrecorded"] == 0, f"{tag}: {faults['unrecorded']} failures unrecorded")
    rules = faults["rules"]
    check([r["spec"] for r in rules] == specs, f"{tag}: rules {[r['spec'] for r in rules]}")
    check(sum(r["injected"] for r in rules) == injected, f"{tag}: the rules' failures add up")
    for r in rules:
        check(sum(s["count"] for s in r["stacks"]) == r["injected"],
              f"{tag}: rule {r['rule']}: its stacks add up")
    return rules


def header_line(stderr, injected, calls):
    want = "injected %d allocation failure%s (%d matching call%s)" % (
        injected, "" if injected == 1 else "s", calls, "" if calls == 1 else "s")
    return want in stderr.replace(",", "")


def leaks(doc):
    s = doc["summary"]
    return s["definitely_lost"]["bytes"], s["definitely_lost"]["blocks"]


def sites_allocs(snap_fn):
    """allocs per innermost function of a mode sites snapshot."""
    out = subprocess.run([LEAKSCOPE, "sites", os.path.join(TMP, "s.lsnap"), "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    acc = {}
    for s in json.loads(out)["sites"]:
        fn = s["frames"][0].get("function") if s.get("frames") else None
        acc[fn] = acc.get(fn, 0) + (s["allocs"] or 0)
    return acc.get(snap_fn, 0)


# ---- scenarios -------------------------------------------------------------------------------

def scenario_line():
    """FILE:LINE with nth: the 2nd record's malloc fails; the error path frees everything."""
    spec = "fail_prog.c:%d,nth=2" % line_of("new_record")
    for mode in MODES:
        rc, out, err, faults, doc = run(mode, [spec], ["load", "5"])
        tag = f"line/{mode}"
        check(rc == 1, f"{tag}: exit status {rc}, expected 1\n{err}")
        check(out == "load failed at record 2 in new_record: Cannot allocate memory\n",
              f"{tag}: program output {out!r}")
        check(header_line(err, 1, 2), f"{tag}: no header line in\n{err}")
        check(re.search(r"rule 1: fail_prog\.c:\d+,nth=2: 1 failure\n    1 failure at:\n"
                        r"      at 0x[0-9A-F]+: new_record \(fail_prog\.c:\d+\) \[fail_prog\+0x",
                        err), f"{tag}: text section\n{err}")
        rules = expect_faults(faults, 2, 1, [spec], tag)
        if rules:
            st = rules[0]["stacks"]
            check(len(st) == 1 and functions(st[0]["stack"])[:3] == ["new_record", "load", "main"],
                  f"{tag}: stack {functions(st[0]['stack']) if st else None}")
        if mode == "full":
            check(leaks(doc) == (0, 0), f"{tag}: the error path leaked {leaks(doc)}")
        else:
            check(sites_allocs("new_record") == 1,
                  f"{tag}: new_record counted {sites_allocs('new_record')} allocations, expected "
                  "1 (a failed call allocates nothing)")


def scenario_function():
    """FUNCTION with every=N on a site that keeps going after failures."""
    for mode in MODES:
        rc, out, err, faults, doc = run(mode, ["draw_alloc,every=3"], ["draws", "10"])
        tag = f"function/{mode}"
        check(rc == 0, f"{tag}: exit status {rc}\n{err}")
        check(out == "draws: 3 of 10 failed: 3 6 9\n", f"{tag}: program output {out!r}")
        check(header_line(err, 3, 10), f"{tag}: header line\n{err}")
        rules = expect_faults(faults, 10, 3, ["draw_alloc,every=3"], tag)
        if rules:
            st = rules[0]["stacks"]
            check(len(st) == 1 and st[0]["count"] == 3 and
                  functions(st[0]["stack"])[0] == "draw_alloc", f"{tag}: stacks {st}")
        # grow_table's realloc: the 3rd record's table growth fails, its record is freed
        rc, out, err, faults, doc = run(mode, ["grow_table,nth=3"], ["load", "4"])
        check(out == "load failed at record 3 in grow_table: Cannot allocate memory\n",
              f"{tag}: realloc failure output {out!r}")
        expect_faults(faults, 3, 1, ["grow_table,nth=3"], tag + "/realloc")
        if mode == "full":
            check(leaks(doc) == (0, 0), f"{tag}: the realloc error path leaked {leaks(doc)}")


def scenario_module():
    """MODULE+0xOFF exactly as the report prints a frame, and MODULE+0xLO-0xHI."""
    rc, out, err, faults, doc = run("full", ["fail_prog.c:%d" % line_of("new_record")],
                                    ["load", "1"])
    frame = faults["rules"][0]["stacks"][0]["stack"][0] if faults else {}
    check(frame.get("function") == "new_record", f"module: first run's frame {frame}")
    obj, off = frame.get("object", "?"), frame.get("offset", "0x0")
    printed = re.search(r"new_record \(fail_prog\.c:\d+\) \[(fail_prog\+0x[0-9a-f]+)\]", err)
    check(printed and printed.group(1) == "fail_prog+" + off,
          f"module: the text prints {printed and printed.group(1)}, JSON fail_prog+{off}")
    nm = subprocess.run(["nm", "-S", PROG], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^([0-9a-f]+) ([0-9a-f]+) [tT] draw_alloc$", nm, re.M)
    lo, size = int(m.group(1), 16), int(m.group(2), 16)
    for mode in MODES:
        tag = f"module/{mode}"
        for where in ("fail_prog+" + off, obj + "+" + off):  # basename and the path as printed
            rc, out, err, faults, doc = run(mode, [where + ",nth=3"], ["load", "5"])
            check(out == "load failed at record 3 in new_record: Cannot allocate memory\n",
                  f"{tag}: {where}: program output {out!r}\n{err}")
            expect_faults(faults, 3, 1, [where + ",nth=3"], f"{tag}: {where}")
        spec = "fail_prog+0x%x-0x%x,every=2" % (lo, lo + size)
        rc, out, err, faults, doc = run(mode, [spec], ["draws", "6"])
        check(out == "draws: 3 of 6 failed: 2 4 6\n", f"{tag}: range: output {out!r}\n{err}")
        expect_faults(faults, 6, 3, [spec], f"{tag}: range")


def scenario_library():
    """A function of a library (libc's strdup), and inject + leak check: a buggy error path."""
    for mode in MODES:
        tag = f"library/{mode}"
        rc, out, err, faults, doc = run(mode, ["strdup,nth=2"], ["leaky", "5"],
                                        extra=["--error-exitcode", "9"] if mode == "full" else [])
        check(out == "load failed at record 2 in dup_name: Cannot allocate memory\n",
              f"{tag}: program output {out!r}\n{err}")
        rules = expect_faults(faults, 2, 1, ["strdup,nth=2"], tag)
        if rules:
            st = rules[0]["stacks"][0]["stack"]
            check("libc.so" in st[0].get("object", "") and functions(st)[1:3] == ["dup_name", "load"],
                  f"{tag}: stack {[(f.get('function'), f.get('object')) for f in st[:3]]}")
        if mode == "full":
            # the record dup_name's error path forgets: found, with its allocation stack
            check(rc == 9, f"{tag}: --error-exitcode: exit status {rc}, expected 9")
            check(leaks(doc) == (24, 1), f"{tag}: leaks {leaks(doc)}, expected (24, 1)")
            lk = [r for r in doc["leaks"] if r["kind"] == "definitely_lost"]
            check(lk and functions(lk[0]["stack"])[:2] == ["new_record", "load"],
                  f"{tag}: the leak's stack {lk and functions(lk[0]['stack'])}")
            rc, out, err, faults, doc = run(mode, ["strdup,nth=2"], ["load", "5"],
                                            extra=["--error-exitcode", "9"])
            check(rc == 1 and leaks(doc) == (0, 0),
                  f"{tag}: the correct error path: exit {rc}, leaks {leaks(doc)}")


def nm_range(path, fn):
    nm = subprocess.run(["nm", "-S", path], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^([0-9a-f]+) ([0-9a-f]+) [tT] %s$" % fn, nm, re.M)
    return int(m.group(1), 16), int(m.group(1), 16) + int(m.group(2), 16)


def scenario_plugin():
    """A rule on code loaded later (dlopen): matched once loaded, again after dlclose and a
    second dlopen; the schedule counts across both."""
    lo, hi = nm_range(PLUGIN, "plugin_alloc")
    so = os.path.basename(PLUGIN)
    spec = "%s+0x%x-0x%x,every=2" % (so, lo, hi)
    for mode in MODES:
        tag = f"plugin/{mode}"
        rc, out, err, faults, doc = run(mode, [spec], ["plugin", PLUGIN, "4"])
        check(rc == 0 and out == "plugin: 4 of 8 failed: 2 4 6 8\n",
              f"{tag}: exit {rc}, output {out!r}\n{err}")
        check("note: --fail %s: %s is not among" % (spec, so) in err, f"{tag}: no note\n{err}")
        rules = expect_faults(faults, 8, 4, [spec], tag)
        if rules:
            # the library is gone at exit: its frame is still named (MODULES keeps it)
            fns = functions(rules[0]["stacks"][0]["stack"])
            check(fns[:3] == ["plugin_alloc", "plugin", "main"], f"{tag}: stack {fns}")
        if mode == "full":
            check(leaks(doc) == (0, 0), f"{tag}: leaks {leaks(doc)}")
    # a FUNCTION or line of such code cannot be resolved before the run
    rc, out, err, faults, doc = run("full", ["plugin_alloc"], ["plugin", PLUGIN, "1"])
    check(rc == 2 and "no function plugin_alloc in" in err, f"plugin: by name: {rc} {err!r}")


def scenario_probability():
    """probability with a seed: the same failures on every run, in both modes; the default seed
    is 1."""
    seen = {}
    for mode in MODES:
        for spec in ("draw_alloc,probability=0.3,seed=7", "draw_alloc,probability=0.3,seed=7",
                     "draw_alloc,probability=0.3", "draw_alloc,probability=0.3,seed=1"):
            rc, out, err, faults, doc = run(mode, [spec], ["draws", "200"])
            tag = f"probability/{mode}/{spec}"
            m = re.match(r"draws: (\d+) of 200 failed:(.*)\n$", out)
            if not check(m, f"{tag}: output {out!r}\n{err}"):
                continue
            n = int(m.group(1))
            check(30 <= n <= 90, f"{tag}: {n} failures of 200 at p=0.3")
            expect_faults(faults, 200, n, [spec], tag)
            seen.setdefault(spec.replace(",seed=1", ""), set()).add(m.group(2))
    for spec, outs in seen.items():
        check(len(outs) == 1, f"probability: {spec}: runs differ: {outs}")
    check(seen["draw_alloc,probability=0.3,seed=7"] != seen["draw_alloc,probability=0.3"],
          "probability: seeds 7 and 1 gave the same failures")


def scenario_threads():
    """every=1 on a site called from 4 threads: every call fails, counted exactly; nth across
    threads fails exactly one."""
    for mode in MODES:
        tag = f"threads/{mode}"
        rc, out, err, faults, doc = run(mode, ["thread_alloc,every=1"], ["threads", "4", "1000"])
        check(out == "threads: 4000 of 4000 failed\n", f"{tag}: output {out!r}\n{err}")
        check(header_line(err, 4000, 4000), f"{tag}: header line\n{err}")
        expect_faults(faults, 4000, 4000, ["thread_alloc,every=1"], tag)
        rc, out, err, faults, doc = run(mode, ["thread_alloc,nth=2500"], ["threads", "4", "1000"])
        check(out == "threads: 1 of 4000 failed\n", f"{tag}: nth: output {out!r}")
        expect_faults(faults, 4000, 1, ["thread_alloc,nth=2500"], tag + "/nth")


FAMILY = ["calloc", "aligned_alloc", "memalign", "valloc", "posix_memalign", "realloc",
          "reallocarray"]


def scenario_family():
    """Every kind of allocating call fails by its own contract; realloc(p, 0) never fails."""
    specs = ["family_" + k for k in FAMILY]
    want = "".join(f"{k}: failed (contract kept)\n" for k in FAMILY[:6]) + "realloc0: freed\n" + \
        "reallocarray: failed (contract kept)\n"
    for mode in MODES:
        tag = f"family/{mode}"
        rc, out, err, faults, doc = run(mode, specs, ["family"])
        check(rc == 0 and out == want, f"{tag}: exit {rc}, output\n{out}\n{err}")
        # 7 matching calls: family_realloc's realloc(p, 0) frees and is not one of them
        rules = expect_faults(faults, 7, 7, specs, tag)
        for r in rules:
            check(r["injected"] == 1 and functions(r["stacks"][0]["stack"])[0] == r["spec"],
                  f"{tag}: rule {r['spec']}: {r['injected']} failures")
        if mode == "full":
            check(leaks(doc) == (0, 0), f"{tag}: leaks {leaks(doc)}")


def scenario_bad_specs():
    """Wrong specs: exit 2 with a message naming them, before the program starts."""
    cases = [
        (["nosuchfunction"], "--fail nosuchfunction: no function nosuchfunction in"),
        (["fail_prog.c:99999"], "--fail fail_prog.c:99999: no code for this line in"),
        (["draw_alloc,nth=0"], "--fail 'draw_alloc,nth=0': nth wants a whole number >= 1"),
        (["draw_alloc,every=x"], "every wants a whole number >= 1, not 'x'"),
        (["draw_alloc,nth=2,every=3"], "give one of nth=, every= and probability=, not several"),
        (["draw_alloc,probability=2"], "probability wants a number P with 0 < P <= 1"),
        (["draw_alloc,probability=0"], "probability wants a number P with 0 < P <= 1"),
        (["draw_alloc,seed=3"], "seed= applies to probability= only"),
        (["draw_alloc,bogus=1"], "unknown option 'bogus=1' (nth=N, every=N, probability=P"),
        (["fail_prog+0xzz"], "want MODULE+0xOFFSET or MODULE+0xLO-0xHI"),
        (["fail_prog+0x20-0x10"], "the range 0x20-0x10 is empty"),
        (["fail_prog.c:0"], "want FILE:LINE with a line number >= 1"),
        ([",nth=2"], "no FILE:LINE, FUNCTION or MODULE+0xOFFSET before the options"),
        (["draw_alloc,nth"], "'nth' wants a value"),
    ]
    for fails, msg in cases:
        for mode in MODES:
            rc, out, err, faults, doc = run(mode, fails, ["load", "1"])
            check(rc == 2 and out == "" and msg in err,
                  f"bad spec {fails} ({mode}): exit {rc}, stdout {out!r}, stderr {err!r}")
    rc, out, err, faults, doc = run("sample", ["draw_alloc"], ["load", "1"])
    check(rc == 2 and out == "" and "--fail works in modes full and sites, not in mode sample"
          in err, f"bad spec in mode sample: exit {rc}, {err!r}")


def scenario_tags():
    """A program built with compile-time tags: FILE:LINE and FUNCTION match its tagged calls in
    mode sites (by tag) and in mode full (by address, through the header's inline wrappers)."""
    for mode in MODES:
        tag = f"tags/{mode}"
        spec = "fail_prog.c:%d,nth=2" % line_of("new_record")
        rc, out, err, faults, doc = run(mode, [spec], ["load", "5"], prog=PROG_TAGS)
        check(out == "load failed at record 2 in new_record: Cannot allocate memory\n",
              f"{tag}: output {out!r}\n{err}")
        check("warning" not in err, f"{tag}: unexpected warning\n{err}")
        rules = expect_faults(faults, 2, 1, [spec], tag)
        if rules:
            fns = functions(rules[0]["stacks"][0]["stack"])
            check("new_record" in fns[:2] and "load" in fns[:3], f"{tag}: stack {fns}")
        rc, out, err, faults, doc = run(mode, ["draw_alloc,every=4"], ["draws", "10"],
                                        prog=PROG_TAGS)
        check(out == "draws: 2 of 10 failed: 4 8\n", f"{tag}: function: output {out!r}\n{err}")
        expect_faults(faults, 10, 2, ["draw_alloc,every=4"], tag + "/function")


def agent_run(options, args):
    env = dict(os.environ, LD_PRELOAD=AGENT,
               LEAKSCOPE_OPTIONS="summary=0:control=0:output=%s:%s" % (
                   os.path.join(TMP, "a.lsnap"), options))
    return subprocess.run([PROG] + args, capture_output=True, text=True, env=env)


def scenario_agent():
    """The agent's fail option by hand: good rules work, bad ones are refused (the program runs
    untouched), mode sample ignores them."""
    nm = subprocess.run(["nm", "-S", PROG], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^([0-9a-f]+) ([0-9a-f]+) [tT] draw_alloc$", nm, re.M)
    lo, hi = int(m.group(1), 16), int(m.group(1), 16) + int(m.group(2), 16)
    p = agent_run("fail=fail_prog+0x%x-0x%x,nth=2" % (lo, hi), ["draws", "4"])
    check(p.stdout == "draws: 1 of 4 failed: 2\n", f"agent: by hand: {p.stdout!r} {p.stderr!r}")
    # the rules from a file (how run passes rules longer than the option's 511 bytes)
    rules = os.path.join(TMP, "rules")
    with open(rules, "w") as f:
        f.write("|".join("nosuch%d.so+0x10-0x20" % i for i in range(40)) +
                "|fail_prog+0x%x-0x%x,every=2\n" % (lo, hi))
    p = agent_run("fail=@" + rules, ["draws", "4"])
    check(p.stdout == "draws: 2 of 4 failed: 2 4\n", f"agent: @FILE: {p.stdout!r} {p.stderr!r}")
    for bad, why in (("fail_prog+0x10", "nth and every"), ("x", "want MODULE+0xOFFSET")):
        p = agent_run("fail=%s,nth=0" % bad if bad.startswith("fail_prog") else "fail=" + bad,
                      ["draws", "4"])
        check(p.stdout == "draws: 0 of 4 failed:\n" and "fail: rule 1" in p.stderr and
              "no fault injection" in p.stderr and why in p.stderr,
              f"agent: bad rule {bad}: {p.stdout!r} {p.stderr!r}")
    p = agent_run("mode=sample:fail=fail_prog+0x%x-0x%x" % (lo, hi), ["draws", "4"])
    check(p.stdout == "draws: 0 of 4 failed:\n" and p.stderr.count("not sample") == 1,
          f"agent: mode sample: {p.stdout!r} {p.stderr!r}")


try:
    globals()["scenario_" + SCENARIO]()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
print(f"{'FAIL' if failures else 'ok'}: fail.{SCENARIO}, {failures} failed checks")
sys.exit(1 if failures else 0)
