#!/bin/sh
# run.sh - the whole suite: a sanitizer build with -Werror, the cmocka unit tests and the
# bounded libFuzzer run (ctest), then the integration tests against real parleyd processes
# with real third-party clients (pytest). Ends with one line: "N passed, N failed".
set -u
BUILD=${1:-build-test}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2

CC=clang
command -v clang >/dev/null 2>&1 || CC=cc
FUZZ=ON
[ "$CC" = clang ] || FUZZ=OFF

echo "== build ($BUILD, $CC, ASan+UBSan, -Wall -Wextra -Werror)"
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=$CC -DPARLEY_SANITIZE=ON -DPARLEY_FUZZ=$FUZZ \
      -DPARLEY_TESTS=ON -DCMAKE_BUILD_TYPE=Debug >"$BUILD.cmake.log" 2>&1 \
    || { cat "$BUILD.cmake.log"; echo "0 passed, 1 failed"; exit 1; }
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" || { echo "0 passed, 1 failed"; exit 1; }

# make run and make install build with the system compiler: it must stay warning-free too.
if [ "$CC" != cc ] && command -v gcc >/dev/null 2>&1; then
    echo "== build (build-gcc, gcc, -Wall -Wextra -Werror)"
    cmake -S . -B build-gcc -DCMAKE_C_COMPILER=gcc -DPARLEY_TESTS=ON >build-gcc.cmake.log 2>&1 &&
        cmake --build build-gcc -j "$(nproc 2>/dev/null || echo 2)" >build-gcc.log 2>&1 ||
        { tail -30 build-gcc.log; echo "0 passed, 1 failed"; exit 1; }
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== PostgreSQL test cluster (scripts/pg-cluster.sh)"
# Under /tmp: the unprivileged server user cannot enter root's directories.
PG_DIR=$(mktemp -d /tmp/parley-pg-XXXXXX)
trap 'sh scripts/pg-cluster.sh stop "$PG_DIR" >/dev/null 2>&1' EXIT
trap 'exit 130' INT TERM
if ! PARLEY_TEST_PG_URI=$(sh scripts/pg-cluster.sh start "$PG_DIR" auto); then
    echo "could not start a PostgreSQL cluster (is the 'postgresql' package installed?)"
    echo "0 passed, 1 failed"
    exit 1
fi
export PARLEY_TEST_PG_URI

echo "== unit and fuzz tests (ctest)"
ctest --test-dir "$BUILD" --output-on-failure -j 2 >"$BUILD/ctest.log" 2>&1
cat "$BUILD/ctest.log"
unit_total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$BUILD/ctest.log")
unit_failed=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1/p' "$BUILD/ctest.log")
unit_total=${unit_total:-0}
unit_failed=${unit_failed:-1}

echo "== integration tests (pytest, slixmpp against parleyd)"
PARLEY_BUILD="$ROOT/$BUILD" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration tests/client \
    -o junit_family=xunit2 --junitxml="$BUILD/integration.xml" 2>&1 | tee "$BUILD/pytest.log"
it_passed=$(/usr/bin/python3 - "$BUILD/integration.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 1); sys.exit()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
sk = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - sk, f, sk)
PY
)
set -- $it_passed
it_ok=$1; it_failed=$2; it_skipped=${3:-0}

passed=$((unit_total - unit_failed + it_ok))
failed=$((unit_failed + it_failed))
if [ "$it_skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $it_skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
