#!/usr/bin/env bash
# Starts pgbouncer in transaction pooling mode in front of the local Postgres (127.0.0.1:5432),
# for the pooler runs of the test suite:
#   - Debian's package (1.18 on Debian 12) on 127.0.0.1:6432, which needs
#     `Pooler::TransactionLegacy` (no prepared-statement support in transaction mode);
#   - pgbouncer 1.25.2, built from ../shared/vendor when that directory exists, on 127.0.0.1:6433
#     with `max_prepared_statements = 200`, which works with `Pooler::Transaction`.
# `start` prints one line per running pooler: "<url> <pooler mode>"; `stop` stops them.
# Installs what it lacks (apt-get, root). State lives in target/poolers/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/target/poolers"
builder="$root/../shared/tools/build-pgbouncer"

stop_all() {
    for pidfile in "$state"/*/pgbouncer.pid; do
        [ -f "$pidfile" ] || continue
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    sleep 0.5
    # A test database whose pooler still held server connections when its test ended could
    # not be dropped by `#[sqlx::test]`; drop those now (a database in use is left alone).
    local names
    names=$(psql "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -qAtc \
        "SELECT db_name FROM _sqlx_test.databases" 2>/dev/null || true)
    for name in $names; do
        psql "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -qAt \
            -c "DROP DATABASE IF EXISTS \"$name\"" \
            -c "DELETE FROM _sqlx_test.databases WHERE db_name = '$name'" >/dev/null 2>&1 || true
    done
}

# start NAME BINARY PORT EXTRA_SETTINGS
start_one() {
    local name=$1 bin=$2 port=$3 extra=$4 dir="$state/$1"
    mkdir -p "$dir"
    chmod 777 "$dir" # pgbouncer drops to user postgres, which writes its pid and log here
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=5432 user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 500
; Every test has its own database, hence its own pool here: keep them small and let idle
; server connections go at once, or the tests' databases exhaust Postgres' max_connections
; and cannot be dropped when their tests end.
default_pool_size = 10
max_user_connections = 40
server_idle_timeout = 1
ignore_startup_parameters = extra_float_digits
server_reset_query =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
$extra
EOF
    if [ -f "$dir/pgbouncer.pid" ] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; then
        kill "$(cat "$dir/pgbouncer.pid")" && sleep 0.5
    fi
    if [ "$(id -u)" = 0 ]; then
        "$bin" -d -u postgres "$dir/pgbouncer.ini"
    else
        "$bin" -d "$dir/pgbouncer.ini"
    fi
    for _ in $(seq 1 50); do
        psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtc 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "pgbouncer $name did not come up on port $port; see $dir/pgbouncer.log" >&2
    return 1
}

case "${1:-start}" in
stop)
    stop_all
    ;;
start)
    if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >&2
        # The package starts a system instance on 6432; ours takes that port.
        service pgbouncer stop >/dev/null 2>&1 || pkill -x pgbouncer || true
    fi
    debian_bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
    start_one debian "$debian_bin" 6432 ""
    echo "postgres://postgres@127.0.0.1:6432 transaction-legacy"
    if [ -x "$builder" ]; then
        "$builder" "$state/pgbouncer-1.25" >&2
        start_one current "$state/pgbouncer-1.25/bin/pgbouncer" 6433 "max_prepared_statements = 200"
        echo "postgres://postgres@127.0.0.1:6433 transaction"
    else
        echo "skipping pgbouncer 1.25 (no $builder): only the legacy pooler run" >&2
    fi
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
