#!/usr/bin/env bash
# Starts a private PostgreSQL for the tests and prints the line that points them at it.
#
#   eval "$(bash .ci/start-postgres.sh)"      # start (idempotent), export AI_METERING_TEST_POSTGRES_URL
#   bash .ci/start-postgres.sh stop           # stop it (by the pid in its data directory)
#
# It listens on 127.0.0.1 only, at $AI_METERING_PG_PORT (default 54329), with its own socket
# directory and data directory under $AI_METERING_PG_DIR (default /tmp/ai-metering-pg-PORT),
# fsync off (test data only). As root it runs the server as the `postgres` user through
# runuser; otherwise as the current user. Installs PostgreSQL with apt when it is missing.
# Everything but the export line goes to stderr.
set -euo pipefail

PORT="${AI_METERING_PG_PORT:-54329}"
BASE="${AI_METERING_PG_DIR:-/tmp/ai-metering-pg-$PORT}"
DB="${AI_METERING_PG_DB:-ai_metering_test}"
DATA="$BASE/data"
SOCKET="$BASE/socket"
LOG="$BASE/server.log"

log() { echo "start-postgres: $*" >&2; }

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_server_user() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

stop() {
    local bin
    bin="$(find_bin)"
    if [ -f "$DATA/postmaster.pid" ]; then
        local pid
        pid="$(head -n 1 "$DATA/postmaster.pid")"
        log "stopping PostgreSQL (pid $pid)"
        if [ -n "$bin" ]; then
            as_server_user "$bin/pg_ctl" -D "$DATA" -m fast -w stop >&2 || kill -INT "$pid" 2>/dev/null || true
        else
            kill -INT "$pid" 2>/dev/null || true
        fi
    else
        log "not running"
    fi
}

start() {
    local bin
    bin="$(find_bin)"
    if [ -z "$bin" ]; then
        log "installing PostgreSQL with apt"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update >&2
        apt-get install -y --no-install-recommends postgresql >&2
        bin="$(find_bin)"
    fi
    if [ -z "$bin" ]; then
        log "no PostgreSQL binaries under /usr/lib/postgresql/*/bin"
        exit 1
    fi

    mkdir -p "$SOCKET"
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres:postgres "$BASE"
    fi

    if [ ! -f "$DATA/PG_VERSION" ]; then
        log "initdb in $DATA"
        as_server_user "$bin/initdb" -D "$DATA" -U postgres --auth=trust \
            --encoding=UTF8 --locale=C >&2
    fi

    if as_server_user "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        log "already running on port $PORT"
    else
        log "starting on 127.0.0.1:$PORT (log: $LOG)"
        as_server_user "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCKET -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
            start >&2
    fi

    local psql=("$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -tAq)
    if [ "$(as_server_user "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
        log "creating database $DB"
        as_server_user "${psql[@]}" -c "CREATE DATABASE $DB" >&2
    fi
    echo "export AI_METERING_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$PORT/$DB"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) log "usage: $0 [start|stop]"; exit 2 ;;
esac
