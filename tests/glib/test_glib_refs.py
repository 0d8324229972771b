#!/usr/bin/python3
"""`leakscope run --refs` on unmodified programs (src/agent/ls_hook.c): entry hooks on a real
GLib program's g_object_ref/g_object_unref, on GObject loaded late with threads running, on
hand-written prologues, and the CLI side (--refs errors, G_SLICE).

Usage: test_glib_refs.py LEAKSCOPE SCENARIO PROGRAM
  refs      PROGRAM is glib_refs (or its non-PIE build): 3 objects leak one reference each,
            taken by cache_lookup for remember_last; everything else is released correctly
  dlopen    PROGRAM is glib_dlopen: 2 objects leak the reference forget_ref takes
  prologues PROGRAM is hook_prologues: wrapped functions still compute right, 3 are refused
  cli       PROGRAM is glib_refs: usage errors, G_SLICE set unless the user set it
Assertions read `leakscope report SNAPSHOT --format json` (its "refs" section)."""
import json
import os
import subprocess
import sys
import tempfile

cli, scenario, prog = sys.argv[1], sys.argv[2], sys.argv[3]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def funcs(frames):
    return [f.get("function") for f in frames or []]


def run(tmp, refs, args=(), env=None):
    snap = os.path.join(tmp, "exit.lsnap")
    cmd = [cli, "run", "--output", snap, "--json", os.path.join(tmp, "leaks.json")]
    for r in refs:
        cmd += ["--refs", r]
    p = subprocess.run(cmd + ["--", prog, *args], capture_output=True, text=True, timeout=60,
                       env=env)
    return snap, p


def refs_report(snap):
    p = subprocess.run([cli, "report", snap, "--format", "json"], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        sys.exit("report failed (%d):\n%s" % (p.returncode, p.stderr))
    return json.loads(p.stdout).get("refs")


def no_errors(refs):
    check(refs["errors"] == 0, "no reference errors, got %s: %s"
          % (refs["errors"], [(f["kind"], f.get("count")) for f in refs["findings"]]))
    for kind in ("double_put", "use_after_put"):
        bad = [f for f in refs["findings"] if f["kind"] == kind]
        check(not bad, "no %s findings, got %s" % (kind, bad))


def leaks_of(refs, type_name):
    return [g for g in refs["leaks"] if g["type"] == type_name]


def check_leak(refs, type_name, objects, function, culprit=None, message=None):
    """The open references of type_name: `objects` objects with one each, all taken in
    `function` (frame 0 of the get stack) and blamed on `culprit`. Groups are per get stack, so
    one leak may come as several groups (a loop unrolled into two call sites)."""
    groups = leaks_of(refs, type_name)
    desc = [(g["type"], g["message"], g["objects"], g["references"]) for g in refs["leaks"]]
    check(groups, "no leak of type %s: %s" % (type_name, desc))
    check(sum(g["objects"] for g in groups) == objects and
          sum(g["references"] for g in groups) == objects,
          "type %s: %d objects with one open reference each: %s" % (type_name, objects, desc))
    for g in groups:
        fs = funcs(g["get_stack"])
        check(g["function"] == function and fs[:1] == [function],
              "type %s: taken in %s: %s / %s" % (type_name, function, g["function"], fs))
        if culprit:
            check(g["culprit"] == culprit and fs[:2] == [function, culprit],
                  "type %s: %s reached from %s: %s / %s" % (type_name, function, culprit,
                                                            g["culprit"], fs))
        if message:
            check(g["message"] == message, "type %s: message %s" % (type_name, g["message"]))


with tempfile.TemporaryDirectory() as tmp:
    if scenario == "refs":
        snap, p = run(tmp, ["g_object_ref:g_object_unref:GObject"])
        check(p.returncode == 0, "program status %d:\n%s" % (p.returncode, p.stderr))
        check("leaked 3" in p.stdout, "the program saw its 3 leaked objects: %s" % p.stdout)
        check("G_SLICE=always-malloc" in p.stdout, "run set G_SLICE: %s" % p.stdout)
        check(": error: " not in p.stderr, "no agent error:\n%s" % p.stderr)
        refs = refs_report(snap)
        check(refs is not None, "no refs section")
        if refs:
            check(refs["leaked_objects"] == 3, "3 leaked objects, got %s" % refs["leaked_objects"])
            no_errors(refs)
            check(all(g["type"] == "GObject" for g in refs["leaks"]), "only GObject leaks")
            check_leak(refs, "GObject", 3, "cache_lookup", "remember_last",
                       "get in cache_lookup reached from remember_last has no put")

    elif scenario == "dlopen":
        snap, p = run(tmp, ["g_object_ref:g_object_unref:GObject"])
        check(p.returncode == 0, "program status %d:\n%s" % (p.returncode, p.stderr))
        check(": error: " not in p.stderr, "no agent error:\n%s" % p.stderr)
        refs = refs_report(snap)
        check(refs is not None, "no refs section (the hooks were not installed at dlopen?)")
        if refs:
            check(refs["leaked_objects"] == 2, "2 leaked objects, got %s" % refs["leaked_objects"])
            no_errors(refs)
            check(all(g["type"] == "GObject" for g in refs["leaks"]), "only GObject leaks")
            check_leak(refs, "GObject", 2, "forget_ref")

    elif scenario == "prologues":
        specs = ["ref_rip:unref_thunk:A", "ref_jcc:unref_push:B", "ref_store:unref_push2:C",
                 "ref_args:unref_plain:G", "ref_call:unref_call:D", "ref_short:unref_short:E",
                 "ref_loop:unref_loop:F"]
        snap, p = run(tmp, specs)
        check(p.returncode == 0 and p.stdout.strip() == "ok",
              "the wrapped functions still compute right (status %d): %s\n%s"
              % (p.returncode, p.stdout, p.stderr))
        for msg in ("cannot wrap ref_call: byte 0xe8 at offset 0",
                    "cannot wrap ref_short: the function is shorter than 5 bytes",
                    "cannot wrap ref_loop: branch into the displaced bytes"):
            check(msg in p.stderr, "stderr says '%s':\n%s" % (msg, p.stderr))
        for name in ("ref_rip", "ref_jcc", "ref_store", "ref_args", "unref_thunk", "unref_push",
                     "unref_push2", "unref_plain"):
            check("cannot wrap %s" % name not in p.stderr, "%s wrapped" % name)
        refs = refs_report(snap)
        check(refs is not None, "no refs section")
        if refs:
            check(refs["leaked_objects"] == 4, "4 leaked objects, got %s" % refs["leaked_objects"])
            no_errors(refs)
            for t, fn in (("A", "leak_a"), ("B", "leak_b"), ("C", "leak_c"), ("G", "leak_g")):
                check_leak(refs, t, 1, fn)
            for t in "DEF":
                check(not leaks_of(refs, t), "refused type %s has no objects" % t)

    elif scenario == "cli":
        for bad, why in (("g_object_ref", "want REF:UNREF"),
                         ("g_object_ref:g_object_ref", "the same"),
                         ("g_object_ref:g-object-unref", "function names"),
                         ("a:b:c:d", "too many fields"),
                         ("a:b:", "TYPE must be"),
                         ("a:b:x,y", "TYPE may not contain")):
            p = subprocess.run([cli, "run", "--refs", bad, "--", prog, "1"],
                               capture_output=True, text=True, timeout=60)
            check(p.returncode == 2 and why in p.stderr and "--refs '%s'" % bad in p.stderr,
                  "--refs %s: usage error naming it (%d): %s" % (bad, p.returncode, p.stderr))
            check(p.stdout == "", "--refs %s: the program did not run" % bad)
        env = dict(os.environ)
        env.pop("G_SLICE", None)
        _, p = run(tmp, [], ["1"], env)
        check("G_SLICE=always-malloc" in p.stdout, "G_SLICE set by run: %s" % p.stdout)
        env["G_SLICE"] = "debug-blocks"
        _, p = run(tmp, [], ["1"], env)
        check("G_SLICE=debug-blocks" in p.stdout, "the user's G_SLICE kept: %s" % p.stdout)
        h = subprocess.run([cli, "run", "--help"], capture_output=True, text=True, timeout=60)
        check("--refs REF:UNREF[:TYPE]" in h.stdout and "G_SLICE=always-malloc" in h.stdout,
              "run --help documents --refs and G_SLICE")
    else:
        sys.exit("unknown scenario " + scenario)

if failures:
    print("FAILED (%s):\n  " % scenario + "\n  ".join(failures))
    sys.exit(1)
print("ok (%s)" % scenario)
