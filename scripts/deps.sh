#!/bin/sh
# deps.sh - install the Debian packages Parley needs to build, run and test, idempotently.
# Usage: scripts/deps.sh [build|test|bench]
#   test adds the third-party peers the tests use; bench adds the servers bench/compare
#   measures Parley against (Prosody, ejabberd) and the profilers (perf, valgrind).
set -eu

BUILD_PKGS="make cmake pkg-config clang libclang-rt-14-dev gcc libc6-dev libssl-dev openssl
libexpat1-dev libsqlite3-dev sqlite3 libidn-dev libpq-dev libsqlcipher-dev libncurses-dev
libhttp-parser-dev libmagic-dev"
TEST_PKGS="libcmocka-dev python3 python3-slixmpp python3-aiohttp python3-pytest procps iproute2 prosody postgresql tmux python3-openssl python3-cryptography
python3-omemo python3-twomemo python3-oldmemo python3-x3dh python3-doubleratchet python3-xeddsa python3-nacl
python3-protobuf python3-pydantic python3-typing-extensions python3-xmlschema"

BENCH_PKGS="prosody lua-sec lua-event ejabberd erlang-base linux-perf valgrind python3 procps openssl postgresql"

want="$BUILD_PKGS"
[ "${1:-build}" = test ] && want="$want $TEST_PKGS"
[ "${1:-build}" = bench ] && want="$want $BENCH_PKGS"

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
