#!/usr/bin/python3
"""check_leaks.py - run one leaky test program under leakscope (and valgrind) and check the verdict.

Usage:
    check_leaks.py --source SRC [--leakscope BIN] [--agent LIB] [--mode both|leakscope|valgrind]
                   [--valgrind PATH] [--keep] -- PROGRAM [ARGS...]

The expectations live in the program's source, as `//` comment lines starting with a keyword:

    // EXPECT <constraint>...          the leak summary of the program's report
    // EXPECT_CHILD <constraint>...    the summary of every forked child's report
    // JSON_CHILD <n>                  exactly n forked children write a report (FILE.<pid>)
    // EXPECT_FUNC <function> [<kind>[<op><bytes>/<blocks>]] [leakscope_only]
    // EXPECT_CHILD_FUNC ...           the same, for every child's report
    // ARGS <arg>...                   program arguments (shlex split; used when none are given)
    // EXIT <n>                        expected exit status of the program (default 0)
    // SIGNAL <n>                      the program is expected to die of signal n
    // ERROR_EXITCODE <n>              run leakscope with --error-exitcode n: it must exit n when
    //                                 definitely + indirectly lost (after suppressions) is non-zero
    // SUPPRESS <line>                 a line of the leakscope suppressions file (leak:PATTERN)
    // VG_SUPPRESS <frame>             a frame line of an equivalent valgrind suppression, e.g.
    //                                 fun:noisy_* or obj:*/prog (default: fun:PATTERN of each
    //                                 SUPPRESS leak:PATTERN)
    // LEAKSCOPE_ARGS <arg>...         extra options for `leakscope run`
    // VALGRIND_ARGS <arg>...          extra options for valgrind
    // NO_VALGRIND <reason>            never run this program under valgrind
    // TIMEOUT <seconds>               per run (default 120 for leakscope, 300 for valgrind)

A constraint is  <kind><op><bytes>[/<blocks>]  with kind one of definitely_lost,
indirectly_lost, possibly_lost, still_reachable, suppressed; op one of = >= <=; bytes and blocks
are integers or * (anything). Several constraints on one kind are all checked.

EXPECT_FUNC <function> alone asserts that some leak record has a frame in <function>; with a kind,
some record of that kind; with a kind and a constraint, the bytes/blocks summed over the records of
that kind whose stack has <function> (for definitely lost records: their own bytes, not the
indirect ones they carry). Function names match exactly, or as the name of a C++ function with
its parameter list or namespace (`make_node` matches `make_node(int)` and `ns::make_node()`).

What is checked:
  leakscope: `leakscope run --json FILE ...` in a scratch directory; the JSON summary against
      EXPECT, the exit status (or the signal: death by it, or exit 128+sig), the exit_status field,
      the children's FILE.<pid> reports, and EXPECT_FUNC.
  valgrind (if installed and not NO_VALGRIND): `valgrind --leak-check=full --show-leak-kinds=all
      --errors-for-leak-kinds=none --log-file=DIR/vg.%p ...`, its LEAK SUMMARY against EXPECT
      (so a wrong EXPECT line is caught), its loss records against EXPECT_FUNC (unless marked
      leakscope_only), its exit status, and its definitely and indirectly lost numbers against
      leakscope's.

Environment: LEAKSCOPE_TEST_MODE=both|leakscope|valgrind overrides --mode; LEAKSCOPE_TEST_KEEP=1
keeps the scratch directory. Exit status: 0 pass, 1 fail, 2 usage error, 77 nothing to run.

Python 3 standard library only.
"""

import argparse
import glob
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

KINDS = ("definitely_lost", "indirectly_lost", "possibly_lost", "still_reachable", "suppressed")
LEAK_KINDS = KINDS[:4]
SKIP = 77

KEYWORDS = {
    "EXPECT", "EXPECT_CHILD", "JSON_CHILD", "EXPECT_FUNC", "EXPECT_CHILD_FUNC", "ARGS", "EXIT",
    "SIGNAL", "ERROR_EXITCODE", "SUPPRESS", "VG_SUPPRESS", "LEAKSCOPE_ARGS", "VALGRIND_ARGS",
    "NO_VALGRIND", "TIMEOUT",
    # read by tests/progs/CMakeLists.txt, ignored here
    "CFLAGS", "CXXFLAGS", "LIBS", "SOURCES", "DEPENDS", "LABELS",
}

CONSTRAINT_RE = re.compile(
    r"^(?P<kind>[a-z_]+)(?P<op>>=|<=|=)(?P<bytes>\*|\d+)(?:/(?P<blocks>\*|\d+))?$")


class UsageError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Parsing the source's directives
# ---------------------------------------------------------------------------------------------

class Constraint:
    def __init__(self, kind, op, nbytes, nblocks, text):
        self.kind, self.op, self.bytes, self.blocks, self.text = kind, op, nbytes, nblocks, text

    @staticmethod
    def parse(token, where):
        m = CONSTRAINT_RE.match(token)
        if not m or m.group("kind") not in KINDS:
            raise UsageError("%s: bad constraint %r (want KIND=BYTES/BLOCKS, KIND one of %s)"
                             % (where, token, ", ".join(KINDS)))
        conv = lambda s: None if s in (None, "*") else int(s)
        return Constraint(m.group("kind"), m.group("op"), conv(m.group("bytes")),
                          conv(m.group("blocks")), token)

    def exact(self):
        return self.op == "=" and self.bytes is not None and self.blocks is not None

    def holds(self, pair):
        b, n = pair
        return _cmp(b, self.op, self.bytes) and _cmp(n, self.op, self.blocks)


def _cmp(value, op, want):
    if want is None:
        return True
    if op == "=":
        return value == want
    if op == ">=":
        return value >= want
    return value <= want


class FuncExpect:
    def __init__(self, func, kind, constraint, leakscope_only, text):
        self.func, self.kind, self.constraint = func, kind, constraint
        self.leakscope_only, self.text = leakscope_only, text

    @staticmethod
    def parse(rest, where):
        toks = rest.split()
        leakscope_only = "leakscope_only" in toks
        toks = [t for t in toks if t != "leakscope_only"]
        if not toks or len(toks) > 2:
            raise UsageError("%s: EXPECT_FUNC wants FUNCTION [KIND[OP BYTES/BLOCKS]]" % where)
        func, kind, constraint = toks[0], None, None
        if len(toks) == 2:
            if toks[1] in KINDS:
                kind = toks[1]
            else:
                constraint = Constraint.parse(toks[1], where)
                kind = constraint.kind
        return FuncExpect(func, kind, constraint, leakscope_only, rest.strip())


class Spec:
    def __init__(self, path):
        self.path = path
        self.expect, self.expect_child = [], []
        self.funcs, self.child_funcs = [], []
        self.json_child = 0
        self.args = None
        self.exit = 0
        self.signal = None
        self.error_exitcode = None
        self.suppress, self.vg_suppress = [], []
        self.leakscope_args, self.valgrind_args = [], []
        self.no_valgrind = None
        self.timeout = None
        self._parse()

    def _parse(self):
        with open(self.path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        seen_expect = False
        for no, line in enumerate(lines, 1):
            m = re.match(r"^\s*//\s*([A-Z][A-Z_]*[A-Z])\b\s*(.*)$", line)
            if not m or m.group(1) not in KEYWORDS:
                if m and m.group(1).startswith("EXPECT"):
                    raise UsageError("%s:%d: unknown directive %s" % (self.path, no, m.group(1)))
                continue
            key, rest = m.group(1), m.group(2).strip()
            where = "%s:%d" % (self.path, no)
            if key == "EXPECT":
                seen_expect = True
                self.expect += [Constraint.parse(t, where) for t in rest.split()]
            elif key == "EXPECT_CHILD":
                self.expect_child += [Constraint.parse(t, where) for t in rest.split()]
            elif key == "EXPECT_FUNC":
                self.funcs.append(FuncExpect.parse(rest, where))
            elif key == "EXPECT_CHILD_FUNC":
                self.child_funcs.append(FuncExpect.parse(rest, where))
            elif key == "JSON_CHILD":
                self.json_child = int(rest)
            elif key == "ARGS":
                self.args = shlex.split(rest)
            elif key == "EXIT":
                self.exit = int(rest)
            elif key == "SIGNAL":
                self.signal = int(rest)
            elif key == "ERROR_EXITCODE":
                self.error_exitcode = int(rest)
            elif key == "SUPPRESS":
                if not rest.startswith("leak:"):
                    raise UsageError("%s: SUPPRESS lines are leak:PATTERN" % where)
                self.suppress.append(rest)
            elif key == "VG_SUPPRESS":
                self.vg_suppress.append(rest)
            elif key == "LEAKSCOPE_ARGS":
                self.leakscope_args += shlex.split(rest)
            elif key == "VALGRIND_ARGS":
                self.valgrind_args += shlex.split(rest)
            elif key == "NO_VALGRIND":
                if not rest:
                    raise UsageError("%s: NO_VALGRIND needs a reason" % where)
                self.no_valgrind = rest
            elif key == "TIMEOUT":
                self.timeout = float(rest)
        if not seen_expect:
            raise UsageError("%s: no // EXPECT line" % self.path)
        if self.expect_child and not self.json_child:
            raise UsageError("%s: EXPECT_CHILD without JSON_CHILD" % self.path)
        if self.json_child and not self.expect_child:
            raise UsageError("%s: JSON_CHILD without EXPECT_CHILD" % self.path)
        if not self.vg_suppress:
            self.vg_suppress = ["fun:" + s[len("leak:"):] for s in self.suppress]

    def exact(self, kind, constraints):
        """The (bytes, blocks) pinned by an exact '=' constraint on kind, or None."""
        for c in constraints:
            if c.kind == kind and c.exact():
                return (c.bytes, c.blocks)
        return None


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------

class Report:
    """One process's verdict: summary {kind: (bytes, blocks)} and records [(kind, bytes, blocks,
    [function names])]."""

    def __init__(self, origin, pid, summary, records, exit_status=None):
        self.origin, self.pid, self.summary, self.records = origin, pid, summary, records
        self.exit_status = exit_status


def load_json_report(path, problems):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        problems.append("cannot read leakscope JSON %s: %s" % (path, e))
        return None
    where = os.path.basename(path)
    if not isinstance(doc, dict):
        problems.append("%s: top level is not an object" % where)
        return None
    if doc.get("version") != 1:
        problems.append("%s: version is %r, want 1" % (where, doc.get("version")))
    for key in ("program", "pid", "exit_status", "summary", "leaks"):
        if key not in doc:
            problems.append("%s: missing key %r" % (where, key))
    summary = {}
    raw = doc.get("summary") if isinstance(doc.get("summary"), dict) else {}
    for kind in KINDS:
        ent = raw.get(kind)
        if not isinstance(ent, dict) or not isinstance(ent.get("bytes"), int) \
                or not isinstance(ent.get("blocks"), int):
            problems.append("%s: summary.%s is %r, want {bytes: int, blocks: int}"
                            % (where, kind, ent))
            summary[kind] = (-1, -1)
        else:
            summary[kind] = (ent["bytes"], ent["blocks"])
    records = []
    leaks = doc.get("leaks") if isinstance(doc.get("leaks"), list) else []
    for i, rec in enumerate(leaks):
        if not isinstance(rec, dict) or rec.get("kind") not in LEAK_KINDS + ("suppressed",):
            problems.append("%s: leaks[%d] has no valid kind: %r" % (where, i, rec))
            continue
        stack = rec.get("stack") if isinstance(rec.get("stack"), list) else []
        funcs = [fr.get("function") or "" for fr in stack if isinstance(fr, dict)]
        records.append((rec["kind"], rec.get("bytes", 0), rec.get("blocks", 0), funcs))
    pid = doc.get("pid") if isinstance(doc.get("pid"), int) else None
    status = doc.get("exit_status") if isinstance(doc.get("exit_status"), int) else None
    return Report("leakscope", pid, summary, records, status)


VG_SUMMARY_RE = re.compile(
    r"^==(\d+)==\s+(definitely lost|indirectly lost|possibly lost|still reachable|suppressed):"
    r"\s+([\d,]+) bytes in ([\d,]+) blocks")
VG_RECORD_RE = re.compile(
    r"^==\d+== ([\d,]+)(?: \(([\d,]+) direct, ([\d,]+) indirect\))? bytes in ([\d,]+) blocks are "
    r"(definitely lost|indirectly lost|possibly lost|still reachable) in loss record")
VG_FRAME_RE = re.compile(r"^==\d+==\s+(?:at|by) 0x[0-9A-Fa-f]+: (.*?)(?: \((?:in |[^()]*:\d+).*\))?$")


def _num(s):
    return int(s.replace(",", ""))


def load_valgrind_log(path, pid):
    """Parse a valgrind text log; returns a Report or None when it has no leak check."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    summary, records, all_freed = {}, [], False
    cur = None
    for line in lines:
        if "All heap blocks were freed -- no leaks are possible" in line:
            all_freed = True
        m = VG_SUMMARY_RE.match(line)
        if m:
            summary[m.group(2).replace(" ", "_")] = (_num(m.group(3)), _num(m.group(4)))
            cur = None
            continue
        m = VG_RECORD_RE.match(line)
        if m:
            kind = m.group(5).replace(" ", "_")
            nbytes = _num(m.group(2)) if m.group(2) else _num(m.group(1))
            cur = [kind, nbytes, _num(m.group(4)), []]
            records.append(cur)
            continue
        if cur is not None:
            m = VG_FRAME_RE.match(line)
            if m:
                cur[3].append(m.group(1))
            else:
                cur = None
    if not summary and not all_freed:
        return None
    for kind in KINDS:
        summary.setdefault(kind, (0, 0))
    return Report("valgrind", pid, summary, [tuple(r) for r in records])


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

def func_matches(frame, want):
    """frame: a symbolized function name (plain C, demangled or mangled C++); want: a bare name."""
    if frame == want:
        return True
    if frame.startswith("_Z"):  # mangled: _Z9make_nodev, _ZN2ns9make_nodeEv
        return re.search(r"(?<![0-9])%d%s" % (len(want), re.escape(want)), frame) is not None
    # demangled: make_node(int), ns::make_node(), Foo::make_node(int) const, make_node<int>(...)
    return re.search(r"(^|::|\s)%s(\(|<|$)" % re.escape(want), frame) is not None


def fmt_pair(pair):
    return "%d/%d" % pair


def fmt_constraints(constraints, kind):
    cs = [c.text[len(kind):] for c in constraints if c.kind == kind]
    return " ".join(cs) if cs else "(any)"


def check_summary(report, constraints, label, problems):
    for c in constraints:
        got = report.summary.get(c.kind, (0, 0))
        if not c.holds(got):
            problems.append("%s: %s is %s, expected %s" % (label, c.kind, fmt_pair(got), c.text))


def check_funcs(report, funcs, label, problems):
    for fe in funcs:
        if report.origin == "valgrind" and fe.leakscope_only:
            continue
        hits = [r for r in report.records
                if (fe.kind is None or r[0] == fe.kind) and any(func_matches(f, fe.func) for f in r[3])]
        if fe.constraint is None:
            if not hits:
                problems.append("%s: no %s record has a frame in %s (EXPECT_FUNC %s)"
                                % (label, fe.kind or "leak", fe.func, fe.text))
        else:
            total = (sum(r[1] for r in hits), sum(r[2] for r in hits))
            if not fe.constraint.holds(total):
                problems.append("%s: %s records with %s in the stack total %s, expected %s"
                                % (label, fe.kind, fe.func, fmt_pair(total), fe.constraint.text))


def summary_table(constraints, columns):
    """columns: [(title, Report or None)]."""
    rows = [("kind", "expected") + tuple(t for t, _ in columns)]
    for kind in KINDS:
        row = [kind, fmt_constraints(constraints, kind)]
        for _, rep in columns:
            row.append(fmt_pair(rep.summary[kind]) if rep else "-")
        ok = all(rep is None or c.holds(rep.summary[kind]) for _, rep in columns
                 for c in constraints if c.kind == kind)
        rows.append(tuple(row) + (("" if ok else "<-- mismatch"),))
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        out.append("  " + "  ".join(r[i].ljust(widths[i]) if i < len(widths) else r[i]
                                    for i in range(len(r))).rstrip())
    return "\n".join(out)


def describe_status(rc):
    if rc is None:
        return "timeout"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = "?"
        return "killed by signal %d (%s)" % (-rc, name)
    return "exit %d" % rc


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------

def _preexec():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # abort/SIGSEGV tests: no core files


def run_cmd(cmd, cwd, env, timeout, log_path):
    """Runs cmd in its own session; returns its returncode (None on timeout)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=_preexec,
                                start_new_session=True)
        try:
            return proc.wait(timeout=timeout), proc.pid
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            return None, proc.pid


def tail(path, n=40):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "  (no output)"
    if len(lines) > n:
        lines = ["... (%d lines omitted)" % (len(lines) - n)] + lines[-n:]
    return "\n".join("  | " + l for l in lines)


def clean_env():
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    for k in list(env):
        if k.startswith("LEAKSCOPE_") and k not in ("LEAKSCOPE_OPTIONS",):
            env.pop(k)
    return env


def run_valgrind(spec, vg, program, args, work, problems, notes):
    vdir = os.path.join(work, "valgrind")
    os.makedirs(vdir)
    cmd = [vg, "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=all",
           "--errors-for-leak-kinds=none", "--num-callers=50",
           "--log-file=" + os.path.join(vdir, "vg.%p")]
    if spec.vg_suppress:
        supp = os.path.join(work, "valgrind.supp")
        with open(supp, "w") as f:
            for i, frame in enumerate(spec.vg_suppress):
                f.write("{\n   lt_supp_%d\n   Memcheck:Leak\n   match-leak-kinds: all\n"
                        "   ...\n   %s\n   ...\n}\n" % (i, frame))
        cmd.append("--suppressions=" + supp)
    cmd += spec.valgrind_args + [program] + args
    env = clean_env()
    env.pop("LEAKSCOPE_OPTIONS", None)
    timeout = spec.timeout or 300
    out = os.path.join(work, "valgrind.out")
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    rc, pid = run_cmd(cmd, work, env, timeout, out)
    label = "valgrind"
    status_ok = True
    if rc is None:
        problems.append("%s: timed out after %ss" % (label, timeout))
        return None, []
    if spec.signal is not None:
        if rc != -spec.signal:
            status_ok = False
            problems.append("%s: program %s, expected death by signal %d"
                            % (label, describe_status(rc), spec.signal))
    elif rc != spec.exit:
        status_ok = False
        problems.append("%s: program %s, expected exit %d" % (label, describe_status(rc), spec.exit))
    main, children = None, []
    for path in sorted(glob.glob(os.path.join(vdir, "vg.*"))):
        try:
            p = int(path.rsplit(".", 1)[1])
        except ValueError:
            continue
        rep = load_valgrind_log(path, p)
        if p == pid:
            main = rep
            if rep is None:
                problems.append("%s: no leak summary in %s" % (label, path))
        elif rep is not None:
            children.append(rep)
    if main is None and not any(p.startswith(label + ": no leak summary") for p in problems):
        problems.append("%s: no log for pid %d" % (label, pid))
    if main is None or not status_ok:
        print("valgrind output (tail):\n" + tail(out), flush=True)
        for path in sorted(glob.glob(os.path.join(vdir, "vg.*"))):
            print("%s (tail):\n%s" % (path, tail(path, 60)))
    return main, children


def run_leakscope(spec, leakscope, program, args, work, problems):
    ldir = os.path.join(work, "leakscope")
    os.makedirs(ldir)
    json_path = os.path.join(ldir, "report.json")
    cmd = [leakscope, "run", "--json", json_path]
    if spec.suppress:
        supp = os.path.join(work, "leakscope.supp")
        with open(supp, "w") as f:
            f.write("# generated from %s\n" % os.path.basename(spec.path))
            for line in spec.suppress:
                f.write(line + "\n")
        cmd += ["--suppressions", supp]
    if spec.error_exitcode is not None:
        cmd += ["--error-exitcode", str(spec.error_exitcode)]
    wants_reachable = any(fe.kind == "still_reachable" for fe in spec.funcs + spec.child_funcs)
    if wants_reachable and "--show-reachable" not in spec.leakscope_args:
        cmd.append("--show-reachable")
    cmd += spec.leakscope_args + ["--", program] + args
    timeout = spec.timeout or 120
    out = os.path.join(work, "leakscope.out")
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    rc, _ = run_cmd(cmd, ldir, clean_env(), timeout, out)
    label = "leakscope"
    bad = len(problems)
    if rc is None:
        problems.append("%s: timed out after %ss" % (label, timeout))
        print("leakscope output (tail):\n" + tail(out), flush=True)
        return None, [], None
    main = None
    if not os.path.exists(json_path):
        problems.append("%s: no JSON report at %s (%s)" % (label, json_path, describe_status(rc)))
    else:
        main = load_json_report(json_path, problems)
    children = []
    for path in sorted(glob.glob(json_path + ".*")):
        suffix = path[len(json_path) + 1:]
        if not suffix.isdigit():
            problems.append("%s: unexpected file %s" % (label, os.path.basename(path)))
            continue
        rep = load_json_report(path, problems)
        if rep is None:
            continue
        if rep.pid != int(suffix):
            problems.append("%s: %s has pid %r, want %s" % (label, os.path.basename(path),
                                                            rep.pid, suffix))
        children.append(rep)
    if main is not None and any(main.pid == c.pid for c in children):
        problems.append("%s: a child report has the parent's pid %r" % (label, main.pid))
    if len(problems) > bad or rc is None:
        print("leakscope output (tail):\n" + tail(out), flush=True)
    return main, children, rc


def check_leakscope_status(spec, rc, main, problems):
    label = "leakscope"
    if spec.signal is not None:
        if rc not in (-spec.signal, 128 + spec.signal):
            problems.append("%s: %s, expected death by signal %d (or exit %d)"
                            % (label, describe_status(rc), spec.signal, 128 + spec.signal))
        return
    want = spec.exit
    if spec.error_exitcode is not None:
        d = spec.exact("definitely_lost", spec.expect)
        i = spec.exact("indirectly_lost", spec.expect)
        if d is not None and i is not None:
            leaked = d[1] + i[1] > 0
        elif main is not None:
            leaked = main.summary["definitely_lost"][1] + main.summary["indirectly_lost"][1] > 0
        else:
            leaked = False
        if leaked:
            want = spec.error_exitcode
    if rc != want:
        problems.append("%s: %s, expected exit %d" % (label, describe_status(rc), want))
    if main is not None and main.exit_status != spec.exit:
        problems.append("%s: JSON exit_status is %r, expected %d (the program's own status)"
                        % (label, main.exit_status, spec.exit))


def compare_lost(ls, vg, spec, constraints, label, problems):
    """valgrind's definitely/indirectly lost must equal leakscope's (where EXPECT pins them or
    leaves them unconstrained; ranges are compared against EXPECT only)."""
    for kind in ("definitely_lost", "indirectly_lost"):
        ranged = any(c.kind == kind and not c.exact() for c in constraints)
        if ranged:
            continue
        if ls.summary[kind] != vg.summary[kind]:
            problems.append("%s: %s differs: leakscope %s, valgrind %s"
                            % (label, kind, fmt_pair(ls.summary[kind]), fmt_pair(vg.summary[kind])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", required=True, help="the program's source (for the directives)")
    ap.add_argument("--leakscope", help="the leakscope CLI")
    ap.add_argument("--agent", help="libleakscope.so (checked to exist; the CLI finds it itself)")
    ap.add_argument("--valgrind", default=None, help="valgrind binary (default: from PATH)")
    ap.add_argument("--mode", choices=("both", "leakscope", "valgrind"), default="both")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("program", nargs=argparse.REMAINDER)
    opts = ap.parse_args()
    cmdline = opts.program[1:] if opts.program[:1] == ["--"] else opts.program
    if not cmdline:
        ap.error("no PROGRAM given (after --)")
    mode = os.environ.get("LEAKSCOPE_TEST_MODE") or opts.mode
    if mode not in ("both", "leakscope", "valgrind"):
        ap.error("LEAKSCOPE_TEST_MODE must be both, leakscope or valgrind")
    keep = opts.keep or os.environ.get("LEAKSCOPE_TEST_KEEP") == "1"

    try:
        spec = Spec(opts.source)
    except (UsageError, ValueError, OSError) as e:
        print("check_leaks: %s" % e, file=sys.stderr)
        return 2
    program = os.path.abspath(cmdline[0])
    if opts.leakscope:
        opts.leakscope = os.path.abspath(opts.leakscope)
    args = cmdline[1:] if len(cmdline) > 1 else (spec.args or [])
    name = os.path.basename(program)
    if not os.access(program, os.X_OK):
        print("check_leaks: program %s is not executable (not built?)" % program, file=sys.stderr)
        return 2

    problems, notes = [], []
    run_ls = mode in ("both", "leakscope")
    vg = opts.valgrind or shutil.which("valgrind")
    run_vg = mode in ("both", "valgrind")
    if run_vg and spec.no_valgrind:
        notes.append("valgrind not run: NO_VALGRIND (%s)" % spec.no_valgrind)
        run_vg = False
    elif run_vg and not vg:
        notes.append("valgrind not run: not found on PATH")
        run_vg = False
    if run_ls:
        if not opts.leakscope:
            print("check_leaks: --leakscope is required in mode %s" % mode, file=sys.stderr)
            return 2
        if not os.access(opts.leakscope, os.X_OK):
            problems.append("leakscope binary %s does not exist or is not executable "
                            "(build target leakscope)" % opts.leakscope)
            run_ls = False
        if opts.agent and not os.path.exists(opts.agent):
            problems.append("agent %s does not exist (build target leakscope_agent)" % opts.agent)
    if not run_ls and not run_vg and not problems:
        print("%s: nothing to run (%s)" % (name, "; ".join(notes) or "mode " + mode))
        return SKIP

    work = tempfile.mkdtemp(prefix="lt_%s." % name)
    ls_main = vg_main = None
    ls_children, vg_children = [], []
    try:
        if run_vg:
            vg_main, vg_children = run_valgrind(spec, vg, program, args, work, problems, notes)
            if vg_main is not None:
                check_summary(vg_main, spec.expect, "valgrind", problems)
                check_funcs(vg_main, spec.funcs, "valgrind", problems)
            if spec.json_child or vg_children:
                if len(vg_children) != spec.json_child:
                    problems.append("valgrind: %d child leak reports, expected %d"
                                    % (len(vg_children), spec.json_child))
                for c in vg_children:
                    check_summary(c, spec.expect_child, "valgrind child %d" % c.pid, problems)
                    check_funcs(c, spec.child_funcs, "valgrind child %d" % c.pid, problems)
        if run_ls:
            ls_main, ls_children, rc = run_leakscope(spec, opts.leakscope, program, args, work,
                                                     problems)
            if rc is not None:
                check_leakscope_status(spec, rc, ls_main, problems)
            if ls_main is not None:
                check_summary(ls_main, spec.expect, "leakscope", problems)
                check_funcs(ls_main, spec.funcs, "leakscope", problems)
            if rc is not None and (spec.json_child or ls_children):
                if len(ls_children) != spec.json_child:
                    problems.append("leakscope: %d child JSON reports (FILE.<pid>), expected %d"
                                    % (len(ls_children), spec.json_child))
                for c in ls_children:
                    check_summary(c, spec.expect_child, "leakscope child %s" % c.pid, problems)
                    check_funcs(c, spec.child_funcs, "leakscope child %s" % c.pid, problems)
        if ls_main is not None and vg_main is not None:
            compare_lost(ls_main, vg_main, spec, spec.expect, "leakscope vs valgrind", problems)

        print("\n%s (%s)" % (name, " ".join(shlex.quote(a) for a in args) or "no args"))
        print(summary_table(spec.expect, [("leakscope", ls_main) if run_ls else ("leakscope", None),
                                          ("valgrind", vg_main)]))
        if spec.json_child:
            for c in ls_children:
                print("leakscope child %s:" % c.pid)
                print(summary_table(spec.expect_child, [("leakscope", c)]))
            for c in vg_children:
                print("valgrind child %s:" % c.pid)
                print(summary_table(spec.expect_child, [("valgrind", c)]))
        for n in notes:
            print("note: " + n)
        if problems:
            print("\nFAIL: %s: %d problem(s):" % (name, len(problems)))
            for p in problems:
                print("  - " + p)
            return 1
        print("PASS: %s" % name)
        return 0
    finally:
        if keep:
            print("scratch directory kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
