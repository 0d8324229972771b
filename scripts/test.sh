#!/bin/sh
# The whole test suite, as CI runs it (after scripts/install-deps.sh):
#  1. gcc, -Werror: every test (unit, format, CLI, fuzz driver, the leak programs with their
#     exact verdicts, cross-checked against valgrind where it is installed, stress).
#  2. clang, -Werror: the same tree must build warnings-free with the second compiler.
#  3. ASan+UBSan on the CLI and the format reader (never on the injected agent): CLI, format, run,
#     e2e (live inspection), refs, sites, tags, fault injection
#     and fuzz tests, and the leak programs rendered through the sanitized CLI.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

echo "== gcc build and all tests"
cmake -S "$root" -B "$root/build" -DLS_WERROR=ON >/dev/null
cmake --build "$root/build" -j"$jobs"
ctest --test-dir "$root/build" -j"$jobs" --output-on-failure

echo "== clang build (warnings are errors)"
CC=clang CXX=clang++ cmake -S "$root" -B "$root/build-clang" -DLS_WERROR=ON >/dev/null
cmake --build "$root/build-clang" -j"$jobs"

echo "== ASan+UBSan CLI"
cmake -S "$root" -B "$root/build-asan" -DLS_WERROR=ON -DLS_SANITIZE=ON >/dev/null
cmake --build "$root/build-asan" -j"$jobs"
LEAKSCOPE_TEST_MODE=leakscope ASAN_OPTIONS=detect_leaks=0 \
    ctest --test-dir "$root/build-asan" -j"$jobs" --output-on-failure -R '^(cli|format|fuzz|leak|run|e2e|refs|glib|sites|tags|fail)\.'
