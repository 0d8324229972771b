#!/usr/bin/python3
"""live_sites.py - mode sites counters read live while 4 threads churn (sites_prog live).

  live_sites.py LEAKSCOPE AGENT SITES_PROG

Takes `leakscope snapshot PID` several times under load: each snapshot must load (the reader
checks every record: never negative, live_blocks <= allocs, ...), and each site's figures stay in
what the program can possibly hold at any instant (every thread frees its own blocks, so each
thread holds between 15 and 16 blocks per site once its ring is full) and never go back from one
snapshot to the next. Then the threads park at known counts: that snapshot must be exact, and so
must the exit snapshot once they have freed everything.
"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_sites import by_functions, check_expect, sites_of  # noqa: E402

LT, LR = 4, 32                     # sites_prog.c: threads, ring slots per thread
MIN_SIZE, MAX_SIZE = 16, 16 + 28 + (LT - 1) * 8  # live_size()
LOADED = 6                         # snapshots under load


def main(leakscope, agent, prog):
    bad = 0
    with tempfile.TemporaryDirectory(prefix="ls-live-sites-") as d:
        xdg = os.path.join(d, "xdg")
        os.mkdir(xdg, 0o700)
        env = dict(os.environ, XDG_RUNTIME_DIR=xdg, LD_PRELOAD=agent,
                   LEAKSCOPE_OPTIONS=f"mode=sites:summary=0:output={d}/exit.lsnap")
        env.pop("LEAKSCOPE_CONTROL_DIR", None)
        cli_env = dict(env)
        del cli_env["LD_PRELOAD"], cli_env["LEAKSCOPE_OPTIONS"]
        exp = os.path.join(d, "s.exp")
        p = subprocess.Popen([prog, "live", exp], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             env=env, text=True)
        try:
            line = p.stdout.readline()
            if not line.startswith("ready "):
                print("FAIL: no ready line:", repr(line))
                return 1
            pid = line.split()[1]

            def snapshot(name):
                path = os.path.join(d, name)
                subprocess.run([leakscope, "snapshot", pid, "-o", path], check=True, env=cli_env,
                               timeout=30, stdout=subprocess.DEVNULL)
                return path

            loaded = []
            for k in range(LOADED):  # taken under load, read once the threads are parked
                loaded.append(snapshot(f"load{k}.lsnap"))
                time.sleep(0.05)
            p.stdin.write("park\n")
            p.stdin.flush()
            line = p.stdout.readline()
            if line != "parked\n":
                print("FAIL: not parked:", repr(line))
                return 1
            parked = snapshot("parked.lsnap")
            p.stdin.write("finish\n")
            p.stdin.close()
            rc = p.wait(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        if rc != 0:
            print("FAIL: sites_prog live exited with", rc)
            return 1
        prev = {}
        for k, path in enumerate(loaded + [parked]):
            got = by_functions(sites_of(leakscope, path), 1)
            for fn in ("site_a", "site_g"):
                lb, lk, al, by = got.get(fn, [0, 0, 0, 0])
                lo, hi = LT * (LR // 2 - 1), LT * LR // 2  # each counter is read on its own
                ok = (lo <= lk <= hi and lo * MIN_SIZE <= lb <= hi * MAX_SIZE and lk <= al and
                      lb <= by)
                old = prev.get(fn, [0, 0, 0, 0])
                if not ok or al < old[2] or by < old[3]:
                    print(f"FAIL {os.path.basename(path)} {fn}: live {lb} bytes in {lk} blocks, "
                          f"{al} allocations of {by} bytes (before: {old[2]} of {old[3]})")
                    bad += 1
                prev[fn] = [lb, lk, al, by]
        bad += check_expect(leakscope, parked, exp)
        bad += check_expect(leakscope, os.path.join(d, "exit.lsnap"), exp + ".exit")
    print(f"{'FAIL' if bad else 'ok'}: {LOADED} snapshots under load, parked and exit exact")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
