#!/bin/sh
# bench/run.sh - Parley's first benchmark: resident memory of parleyd per idle TLS
# session, and the message rate and latency of one sender to one receiver over TLS.
#
#   sh bench/run.sh [BUILD_DIR]        (make bench runs it with BUILD_DIR=build)
#
# It creates a throw-away server directory (parleyctl init on free loopback ports),
# provisions the users, starts parleyd, drives it with parley-loadgen processes of at most
# BENCH_PER_PROCESS sessions each, and stops everything it started (by pid) on exit.
# Environment (all optional):
#   BENCH_SESSIONS=10000      idle TLS sessions
#   BENCH_PER_PROCESS=5000    sessions per loadgen process (fd limit: 20000 per process)
#   BENCH_CONNECT_RATE=2000   new connections per second, all processes together
#   BENCH_MAX_PENDING=100     logins in progress at once, per loadgen process
#   BENCH_CHAT_SECONDS=10     duration of the one-to-one chat
#   BENCH_WINDOW=16           outstanding messages in the chat
#   BENCH_TIMEOUT=600         bound on every wait, in seconds
#   BENCH_KEEP=1              keep the temporary directory (logs, outputs)
set -eu

BUILD=${1:-build}
N=${BENCH_SESSIONS:-10000}
PER_PROC=${BENCH_PER_PROCESS:-5000}
CONNECT_RATE=${BENCH_CONNECT_RATE:-2000}
MAX_PENDING=${BENCH_MAX_PENDING:-100}
CHAT_SECONDS=${BENCH_CHAT_SECONDS:-10}
WINDOW=${BENCH_WINDOW:-16}
TIMEOUT=${BENCH_TIMEOUT:-600}
PASSWORD=bench-password
DOMAIN=localhost

say() { printf '%s\n' "bench: $*" >&2; }
fail() { say "error: $*"; exit 1; }

for v in "$N" "$PER_PROC" "$CONNECT_RATE" "$MAX_PENDING" "$CHAT_SECONDS" "$WINDOW" "$TIMEOUT"; do
    case $v in '' | *[!0-9]*) fail "BENCH_* settings must be positive integers (got '$v')" ;; esac
done
if [ "$N" -lt 1 ] || [ "$PER_PROC" -lt 1 ] || [ "$PER_PROC" -gt 19000 ]; then
    fail "BENCH_SESSIONS must be >= 1 and BENCH_PER_PROCESS within 1..19000"
fi
for b in parleyd parleyctl parley-loadgen; do
    [ -x "$BUILD/$b" ] || fail "$BUILD/$b is not built (cmake --build $BUILD)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/parley-bench.XXXXXX")
D=$TMP/server
PARLEYD_PID=
LOADGEN_PIDS=

# Wait until process $1 is gone, at most $2 seconds. Returns 1 if it is still there.
wait_gone() {
    _n=0
    while kill -0 "$1" 2>/dev/null; do
        [ "$_n" -ge "$(($2 * 10))" ] && return 1
        sleep 0.1
        _n=$((_n + 1))
    done
    wait "$1" 2>/dev/null || true
    return 0
}

# TERM, a bounded wait, then KILL: never a process this script did not start.
stop_pid() {
    kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
    kill -TERM "$1" 2>/dev/null || true
    if ! wait_gone "$1" "$2"; then
        say "pid $1 ignored SIGTERM for $2 s; killing it"
        kill -KILL "$1" 2>/dev/null || true
        wait_gone "$1" 5 || true
    fi
}

cleanup() {
    _rc=$?
    trap - EXIT INT TERM
    for p in $LOADGEN_PIDS; do stop_pid "$p" 10; done
    if [ -n "$PARLEYD_PID" ]; then stop_pid "$PARLEYD_PID" 20; fi
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$_rc" -ne 0 ]; then
        say "outputs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$_rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A loopback TCP port nobody uses now (in any state), below the ephemeral range so the
# loadgen's own connections cannot take it.
port_in_use() {
    _hex=$(printf '%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v h=":$_hex" '
        NR > 1 && substr($2, length($2) - 4) == h { found = 1 } END { exit !found }'
}
pick_port() {
    _i=0
    while [ "$_i" -lt 200 ]; do
        _r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
        _p=$((20000 + _r % 12000))
        if [ "$_p" != "${1:-}" ] && ! port_in_use "$_p"; then echo "$_p"; return 0; fi
        _i=$((_i + 1))
    done
    fail "no free port found"
}
is_listening() {
    _hex=$(printf '%04X' "$1")
    awk -v h=":$_hex" 'NR > 1 && substr($2, length($2) - 4) == h && $4 == "0A" { found = 1 }
        END { exit !found }' /proc/net/tcp
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$PARLEYD_PID/status"; }
fd_count() { find "/proc/$PARLEYD_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l | tr -d ' '; }
# utime + stime of parleyd, in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$PARLEYD_PID/stat"; }
TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)

# First numeric value of "KEY": in the line of FILE whose "event" is EVENT (JSON output of
# parley-loadgen; nested objects are in a fixed order, see bench/README.md).
jget() {
    awk -v ev="\"event\":\"$2\"" -v key="\"$3\":" '
        index($0, ev) { i = index($0, key); if (i) { s = substr($0, i + length(key));
                        match(s, /^-?[0-9.]+/); print substr(s, 1, RLENGTH); exit } }' "$1"
}
alive() { kill -0 "$PARLEYD_PID" 2>/dev/null || { say "parleyd died; log tail:"; tail -n 20 "$D/parleyd.log" >&2; fail "parleyd is not running"; }; }

# ---------------------------------------------------------------- server directory
C2S_PORT=$(pick_port)
TLS_PORT=$(pick_port "$C2S_PORT")
"$BUILD/parleyctl" init --dir "$D" --domain "$DOMAIN" --c2s-port "$C2S_PORT" \
    --tls-port "$TLS_PORT" --https-port 0 >"$TMP/init.log" 2>&1 || { cat "$TMP/init.log" >&2; fail "parleyctl init failed"; }
CONF=$D/parleyd.conf
# The generated file already sets these keys and the parser rejects a key given twice,
# so an existing line is replaced and a missing one appended.
set_key() {
    if grep -q "^[[:space:]]*$1[[:space:]]*=" "$CONF"; then
        sed "s|^[[:space:]]*$1[[:space:]]*=.*|$1 = $2|" "$CONF" >"$CONF.new" && mv "$CONF.new" "$CONF"
    else
        printf '%s = %s\n' "$1" "$2" >>"$CONF"
    fi
    chmod 600 "$CONF"
}
set_key max_connections 19500
set_key log_level warn

# ---------------------------------------------------------------- users
USERS=$N
[ "$USERS" -lt 2 ] && USERS=2
say "creating $USERS users bench0..bench$((USERS - 1))@$DOMAIN (SCRAM derivation: about 5 ms each)"
T0=$(date +%s)
if "$BUILD/parleyctl" help 2>/dev/null | grep -q 'user import'; then
    awk -v n="$USERS" -v d="$DOMAIN" -v p="$PASSWORD" 'BEGIN { for (i = 0; i < n; i++) printf "bench%d@%s %s\n", i, d, p }' |
        "$BUILD/parleyctl" -c "$CONF" user import >"$TMP/import.log" 2>&1 || { tail -n 5 "$TMP/import.log" >&2; fail "user import failed"; }
else
    say "parleyctl has no 'user import': falling back to one 'user add' per user (slow)"
    printf '%s\n' "$PASSWORD" >"$TMP/pw"
    chmod 600 "$TMP/pw"
    i=0
    while [ "$i" -lt "$USERS" ]; do
        "$BUILD/parleyctl" -c "$CONF" user add "bench$i@$DOMAIN" --password-file "$TMP/pw" >/dev/null ||
            fail "user add bench$i failed"
        i=$((i + 1))
    done
fi
say "users created in $(($(date +%s) - T0)) s"

# ---------------------------------------------------------------- parleyd
# max_connections 19500 needs the 20000-descriptor limit (dash and bash both know -n).
# shellcheck disable=SC3045
ulimit -n 20000 2>/dev/null || true
"$BUILD/parleyd" -c "$CONF" >"$D/parleyd.log" 2>&1 &
PARLEYD_PID=$!
i=0
until is_listening "$TLS_PORT" && is_listening "$C2S_PORT"; do
    alive
    [ "$i" -ge 100 ] && fail "parleyd not listening on $TLS_PORT/$C2S_PORT after 10 s"
    sleep 0.1
    i=$((i + 1))
done
say "parleyd pid $PARLEYD_PID on 127.0.0.1 ports $C2S_PORT (STARTTLS) and $TLS_PORT (direct TLS)"
sleep 1
RSS0=$(rss_kib)
FD0=$(fd_count)

LG="$BUILD/parley-loadgen --server 127.0.0.1:$TLS_PORT --direct-tls --ca $D/ca.crt --domain $DOMAIN
    --users bench --password $PASSWORD --timeout $TIMEOUT --json"

# ---------------------------------------------------------------- scenario 1: idle
NPROC=$(((N + PER_PROC - 1) / PER_PROC))
RATE_PER_PROC=$(((CONNECT_RATE + NPROC - 1) / NPROC))
say "idle: $N sessions from $NPROC loadgen process(es), $RATE_PER_PROC connections/s each"
CPU0=$(cpu_ticks)
k=0
first=0
while [ "$first" -lt "$N" ]; do
    count=$PER_PROC
    [ $((first + count)) -gt "$N" ] && count=$((N - first))
    # --hold is only a backstop: the script ends the hold with SIGTERM after measuring.
    # shellcheck disable=SC2086
    $LG --mode idle --first "$first" --count "$count" --hold "$TIMEOUT" \
        --connect-rate "$RATE_PER_PROC" --max-pending "$MAX_PENDING" >"$TMP/idle.$k.out" 2>"$TMP/idle.$k.err" &
    LOADGEN_PIDS="$LOADGEN_PIDS $!"
    eval "IDLE_PID_$k=$!"
    first=$((first + count))
    k=$((k + 1))
done

# Every process prints a "ready" line once all its sessions are established or failed.
T0=$(date +%s)
while :; do
    ready=0
    j=0
    while [ "$j" -lt "$NPROC" ]; do
        eval "p=\$IDLE_PID_$j"
        if grep -q '"event":"ready"' "$TMP/idle.$j.out" 2>/dev/null || ! kill -0 "$p" 2>/dev/null; then
            ready=$((ready + 1))
        fi
        j=$((j + 1))
    done
    [ "$ready" -eq "$NPROC" ] && break
    alive
    [ $(($(date +%s) - T0)) -ge "$TIMEOUT" ] && fail "idle sessions not ready after $TIMEOUT s"
    sleep 0.2
done
CPU1=$(cpu_ticks)
sleep 2 # let the last presences and session tickets settle
alive
RSS1=$(rss_kib)
FD1=$(fd_count)

for p in $LOADGEN_PIDS; do kill -TERM "$p" 2>/dev/null || true; done
for p in $LOADGEN_PIDS; do wait_gone "$p" 60 || stop_pid "$p" 5; done
LOADGEN_PIDS=

EST=0 FAILED=0 LOGIN_S=0 P50=0 P99=0 LG_CPU=0
j=0
while [ "$j" -lt "$NPROC" ]; do
    f=$TMP/idle.$j.out
    grep -q '"event":"result"' "$f" || { cat "$TMP/idle.$j.err" >&2; fail "loadgen $j printed no result"; }
    EST=$((EST + $(jget "$f" result established)))
    FAILED=$((FAILED + $(jget "$f" result failed)))
    LOGIN_S=$(awk -v a="$LOGIN_S" -v b="$(jget "$f" result login_s)" 'BEGIN { print (b > a ? b : a) }')
    P50=$(awk -v a="$P50" -v b="$(jget "$f" result p50)" 'BEGIN { print (b > a ? b : a) }')
    P99=$(awk -v a="$P99" -v b="$(jget "$f" result p99)" 'BEGIN { print (b > a ? b : a) }')
    LG_CPU=$(awk -v a="$LG_CPU" -v b="$(jget "$f" result cpu_s)" 'BEGIN { print a + b }')
    if [ -s "$TMP/idle.$j.err" ]; then sed "s/^/  loadgen $j: /" "$TMP/idle.$j.err" | head -n 5 >&2; fi
    j=$((j + 1))
done
PER_SESSION=$(awk -v a="$RSS0" -v b="$RSS1" -v n="$EST" 'BEGIN { if (n > 0) printf "%.2f", (b - a) / n; else print "n/a" }')
LOGIN_RATE=$(awk -v n="$EST" -v s="$LOGIN_S" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "n/a" }')
CPU_PER_LOGIN=$(awk -v t="$((CPU1 - CPU0))" -v hz="$TICKS" -v n="$EST" 'BEGIN { if (n > 0) printf "%.2f", t * 1000 / hz / n; else print "n/a" }')
echo "idle: $EST sessions, RSS before $RSS0 KiB, after $RSS1 KiB, $PER_SESSION KiB per session"
[ "$FAILED" -gt 0 ] && say "idle: $FAILED sessions failed (see $TMP/idle.*.err)"

# The sessions must be gone before the chat reuses bench0/bench1.
i=0
while [ "$(fd_count)" -gt $((FD0 + 2)) ] && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
alive
sleep 1
RSS2=$(rss_kib)
FD2=$(fd_count)

# ---------------------------------------------------------------- scenario 2: chat
say "chat: bench0 -> bench1 over TLS for $CHAT_SECONDS s, window $WINDOW"
CPU2=$(cpu_ticks)
# shellcheck disable=SC2086
$LG --mode chat --first 0 --count 2 --pairs 1 --duration "$CHAT_SECONDS" --window "$WINDOW" \
    >"$TMP/chat.out" 2>"$TMP/chat.err" &
LOADGEN_PIDS=$!
wait_gone "$LOADGEN_PIDS" $((CHAT_SECONDS + 120)) || fail "chat loadgen did not finish"
LOADGEN_PIDS=
CPU3=$(cpu_ticks)
alive
f=$TMP/chat.out
grep -q '"event":"result"' "$f" || { cat "$TMP/chat.err" >&2; fail "chat loadgen printed no result"; }
[ -s "$TMP/chat.err" ] && sed 's/^/  chat loadgen: /' "$TMP/chat.err" | head -n 5 >&2
MPS=$(jget "$f" result msgs_per_s)
SENT=$(jget "$f" result sent)
RECV=$(jget "$f" result received)
LOST=$(jget "$f" result lost)
CHAT_S=$(jget "$f" result duration_s)
# latency_us is the first histogram of the chat result
L50=$(jget "$f" result p50) L90=$(jget "$f" result p90) L99=$(jget "$f" result p99)
L999=$(jget "$f" result p999) LMAX=$(jget "$f" result max)
CHAT_LG_CPU=$(jget "$f" result cpu_s)
SRV_CPU_PCT=$(awk -v t="$((CPU3 - CPU2))" -v hz="$TICKS" -v s="$CHAT_S" 'BEGIN { if (s > 0) printf "%.0f", t / hz / s * 100; else print "n/a" }')
LG_CPU_PCT=$(awk -v c="$CHAT_LG_CPU" -v s="$CHAT_S" 'BEGIN { if (s > 0) printf "%.0f", c / s * 100; else print "n/a" }')
echo "chat: 1 sender -> 1 receiver, $MPS msgs/s, latency us p50 $L50 p90 $L90 p99 $L99 p99.9 $L999 max $LMAX"

# ---------------------------------------------------------------- summary
cat <<EOF

Parley benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc 2>/dev/null || echo ?) CPUs, parleyd from $BUILD)
----------------------------------------------------------------------------------
idle TLS sessions       established / requested          $EST / $N ($FAILED failed)
                        loadgen processes                $NPROC x <= $PER_PROC sessions
                        login rate                       $LOGIN_RATE sessions/s (all in $LOGIN_S s)
                        login latency p50 / p99          $P50 / $P99 us (worst process)
                        parleyd CPU per login            $CPU_PER_LOGIN ms (loadgens: $LG_CPU s CPU)
                        parleyd RSS, 0 sessions          $RSS0 KiB ($FD0 fds)
                        parleyd RSS, all held            $RSS1 KiB ($FD1 fds)
                        RSS per idle TLS session         $PER_SESSION KiB
                        parleyd RSS after all closed     $RSS2 KiB ($FD2 fds)
one-to-one chat (TLS)   messages received / sent         $RECV / $SENT (lost $LOST) in $CHAT_S s
                        throughput                       $MPS msgs/s (window $WINDOW)
                        latency p50 / p90 / p99          $L50 / $L90 / $L99 us
                        latency p99.9 / max              $L999 / $LMAX us
                        CPU: parleyd / loadgen           $SRV_CPU_PCT% / $LG_CPU_PCT% of a core
EOF
