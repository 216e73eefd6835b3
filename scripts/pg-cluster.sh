#!/bin/sh
# pg-cluster.sh - a throwaway PostgreSQL cluster on loopback for the tests.
#
#   scripts/pg-cluster.sh start DIR PORT   create (initdb) and start a cluster in DIR listening
#                                          on 127.0.0.1:PORT, create the database parley_test,
#                                          print its URI on stdout; PORT "auto" takes the first
#                                          free port from 55432 up (test runs side by side)
#   scripts/pg-cluster.sh stop DIR         stop it (pg_ctl -m fast) and remove DIR
#   scripts/pg-cluster.sh pause DIR        stop the server but keep DIR (connection-loss tests)
#   scripts/pg-cluster.sh resume DIR       start a paused cluster again
#   scripts/pg-cluster.sh uri DIR          print the URI of the cluster in DIR
#
# Every command is idempotent: start on a running cluster prints its URI, stop on a missing
# DIR does nothing. Trust authentication, but only for 127.0.0.1 and for the Unix socket,
# which lives in DIR (mode 0700): nothing outside this machine (or outside the cluster's
# owner and root) can connect. PostgreSQL refuses to run as root, so under root the cluster
# belongs to an unprivileged user: `parley-pg` if it exists, else `postgres` (from the
# Debian package), else a new system user `parley-pg`.
#
# Binaries: $PG_BINDIR if set, else the newest /usr/lib/postgresql/*/bin, else PATH.
set -eu

PG_SUPERUSER=parley          # the cluster's superuser role, the user part of the URI
PG_DATABASE=parley_test
WAIT_SECONDS=${PG_WAIT_SECONDS:-60}
MARKER=.parley-pg-cluster    # only a DIR holding this file is ever removed

die() {
    echo "pg-cluster: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start DIR PORT | stop DIR | pause DIR | resume DIR | uri DIR" >&2
    exit 2
}

find_bindir() {
    if [ -n "${PG_BINDIR:-}" ]; then
        [ -x "$PG_BINDIR/initdb" ] || die "PG_BINDIR=$PG_BINDIR has no initdb"
        echo "$PG_BINDIR"
        return
    fi
    best=""
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && best="$best$d
"
    done
    if [ -n "$best" ]; then
        # Newest major version: sort on the version directory numerically.
        printf '%s' "$best" | sort -t/ -k5,5n | tail -n 1
        return
    fi
    initdb_path=$(command -v initdb 2>/dev/null || true)
    [ -n "$initdb_path" ] || die "no PostgreSQL server binaries found (install the Debian package 'postgresql')"
    dirname "$initdb_path"
}

# The unprivileged account the server runs as (empty: the current user, when not root).
pick_user() {
    if [ "$(id -u)" -ne 0 ]; then
        echo ""
        return
    fi
    if id parley-pg >/dev/null 2>&1; then
        echo parley-pg
    elif id postgres >/dev/null 2>&1; then
        echo postgres
    else
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            parley-pg >/dev/null || die "cannot create the system user parley-pg"
        echo parley-pg
    fi
}

# Run a command as the cluster's owner.
as_owner() {
    if [ -n "$OWNER" ]; then
        runuser -u "$OWNER" -- "$@"
    else
        "$@"
    fi
}

is_running() {
    [ -f "$DATA/PG_VERSION" ] && as_owner "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

uri_of() {
    port=$(cat "$DIR/port")
    echo "postgresql://$PG_SUPERUSER@127.0.0.1:$port/$PG_DATABASE"
}

# Start on the port recorded in DIR/port; -w with a bounded wait, so a cluster that cannot
# start fails here, not in a test. Returns non-zero (log kept) if it did not start.
try_start() {
    as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t "$WAIT_SECONDS" \
        -o "-p $(cat "$DIR/port")" start >/dev/null
}

start_server() {
    if ! try_start; then
        tail -n 20 "$DIR/server.log" >&2 2>/dev/null || true
        die "the server in $DIR did not start"
    fi
}

port_busy() {
    command -v ss >/dev/null 2>&1 || return 1
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# "auto": free ports from 55432 up, retrying when another run takes one first.
start_auto() {
    p=55432
    while [ "$p" -lt 55532 ]; do
        if ! port_busy "$p"; then
            echo "$p" >"$DIR/port"
            try_start && return 0
        fi
        p=$((p + 1))
    done
    tail -n 20 "$DIR/server.log" >&2 2>/dev/null || true
    die "no free port in 55432-55531 for the server in $DIR"
}

stop_server() {
    if is_running; then
        as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast -w -t "$WAIT_SECONDS" stop >/dev/null \
            || die "the server in $DIR did not stop"
    fi
}

cmd_start() {
    port=$1
    case $port in
        auto) ;;
        '' | *[!0-9]*) die "bad port '$port'" ;;
        *)
            if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
                die "bad port '$port'"
            fi
            ;;
    esac

    if [ -f "$DIR/$MARKER" ] && [ -f "$DATA/PG_VERSION" ]; then
        [ "$port" = auto ] || [ "$(cat "$DIR/port")" = "$port" ] \
            || die "$DIR already holds a cluster on port $(cat "$DIR/port")"
        is_running || start_server
        uri_of
        return
    fi
    if [ -f "$DIR/$MARKER" ]; then
        # A start that failed half-way (initdb or the first start): begin again.
        stop_server
        rm -rf "$DIR"
    elif [ -e "$DIR" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
        die "$DIR exists and is not empty"
    fi

    mkdir -p "$DIR"
    chmod 0700 "$DIR"
    : >"$DIR/$MARKER"
    [ "$port" = auto ] || echo "$port" >"$DIR/port"
    if [ -n "$OWNER" ]; then
        chown -R "$OWNER" "$DIR"
        # Every directory above DIR must let the owner through.
        as_owner test -w "$DIR" \
            || die "$OWNER cannot reach $DIR (a parent directory is not searchable); use a directory under /tmp"
    fi

    as_owner "$BINDIR/initdb" -D "$DATA" -U "$PG_SUPERUSER" -A trust -E UTF8 --locale=C \
        >"$DIR/initdb.log" 2>&1 || {
        cat "$DIR/initdb.log" >&2
        die "initdb failed"
    }
    # Loopback and the private socket only. The files belong to the owner: write as it.
    # shellcheck disable=SC2016 # $1 is expanded by the inner sh
    as_owner sh -c 'cat >"$1"' sh "$DATA/pg_hba.conf" <<EOF
# pg-cluster.sh: a throwaway test cluster; trust, but only on this machine.
local all all trust
host  all all 127.0.0.1/32 trust
EOF
    # shellcheck disable=SC2016 # $1 is expanded by the inner sh
    as_owner sh -c 'cat >>"$1"' sh "$DATA/postgresql.conf" <<EOF

# pg-cluster.sh (the port is given to pg_ctl at each start, from DIR/port)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
unix_socket_permissions = 0700
fsync = on
max_connections = 100
shared_buffers = 32MB
EOF
    if [ "$port" = auto ]; then
        start_auto
    else
        start_server
    fi
    port=$(cat "$DIR/port")
    as_owner "$BINDIR/createdb" -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" "$PG_DATABASE" \
        || die "createdb $PG_DATABASE failed"
    uri_of
}

cmd_stop() {
    [ -e "$DIR" ] || return 0
    [ -f "$DIR/$MARKER" ] || die "$DIR is not a pg-cluster.sh directory; not removing it"
    stop_server
    rm -rf "$DIR"
}

[ $# -ge 2 ] || usage
CMD=$1
DIR=$2
case $DIR in
    /*) ;;
    *) DIR=$(pwd)/$DIR ;;
esac
DATA=$DIR/data
BINDIR=$(find_bindir)
OWNER=$(pick_user)

case $CMD in
    start)
        [ $# -eq 3 ] || usage
        cmd_start "$3"
        ;;
    stop)
        [ $# -eq 2 ] || usage
        cmd_stop
        ;;
    pause)
        [ $# -eq 2 ] || usage
        [ -f "$DIR/$MARKER" ] || die "no cluster in $DIR"
        stop_server
        ;;
    resume)
        [ $# -eq 2 ] || usage
        [ -f "$DIR/$MARKER" ] || die "no cluster in $DIR"
        is_running || start_server
        ;;
    uri)
        [ $# -eq 2 ] || usage
        [ -f "$DIR/$MARKER" ] || die "no cluster in $DIR"
        uri_of
        ;;
    *) usage ;;
esac
