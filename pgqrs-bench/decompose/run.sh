#!/usr/bin/env bash
# Where a claim's time goes, on the server alone. pgbench (one client, prepared statements)
# drains batches of 100 jobs with five statements, each adding one part of pgqrs's claim to
# the one before:
#
#   1_limit     the single-statement limit of pgqrs-bench (delete into the archive, no lease)
#   2_layout    the same over pgqrs's tables and archive row
#   3_lease     plus pgqrs's batch lease (a token, a lease row, the ack of the previous one)
#   4_wrapped   the same statement run by a PL/pgSQL function, as pgqrs runs its claim
#   5_function  pgqrs itself: `pgqrs.job_claim_batch`, as the library calls it (its ack and
#               the queue's controls in a first statement, then the claim)
#
# and times three calls that claim nothing (a round trip; the function's first statement on
# its own; the function asked for no job), and the enqueue of one job per call: the
# baseline's insert, the same insert into `pgqrs.jobs`, and pgqrs's statement without and
# with its wake-up. Every drain starts from freshly filled tables after a checkpoint; each
# is repeated REPS times, in turns, with synchronous commit on and then off, and the
# medians are printed as markdown tables with the WAL written per job.
#
#   pgqrs-bench/decompose/run.sh            # about 5 minutes
#   REPS=3 BATCHES=500 pgqrs-bench/decompose/run.sh
#
# It creates (and first drops) the database `pgqrs_decompose`; PGHOST, PGPORT and PGUSER
# choose the server (default: postgres on 127.0.0.1:5432).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
db=pgqrs_decompose
reps=${REPS:-5}
batches=${BATCHES:-1500}
calls=$((batches * 5))

sql() { psql -X -q -v ON_ERROR_STOP=1 -At -d "$db" "$@"; }

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
for migration in "$here"/../../migrations/*.sql; do
    sql -f "$migration" > /dev/null
done
sql -f "$here/setup.sql"
queue=$(sql -c "SELECT id FROM pgqrs.queues WHERE name = 'decompose'")
# Step 4 runs step 3's statement inside a PL/pgSQL function, as pgqrs runs its claim
# (`RETURN QUERY`, the rows through a tuplestore; a generic plan cached per connection).
statement=$(grep -v -e '^--' -e '^\\aset' "$here/3_lease.sql" | sed \
    -e 's/:q/$1/g' \
    -e 's/ARRAY(SELECT generate_series(:id - 99, :id)::bigint)/$2/' \
    -e 's/array_fill(:lease_token::bigint, ARRAY\[100\])/$3/')
sql > /dev/null <<SQL
CREATE FUNCTION public.lease_step(integer, bigint[], bigint[])
RETURNS TABLE (id bigint, payload text, priority smallint, attempts integer,
               enqueued_at timestamptz, lease_token bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS \$fn\$
#variable_conflict use_column
BEGIN
    RETURN QUERY $statement;
END
\$fn\$;
SQL

# Prints "ms-per-transaction wal-bytes-per-job" for one pgbench run of $1.
measure() {
    local script=$1 transactions=$2 jobs=$3 before out
    before=$(sql -c "SELECT pg_current_wal_insert_lsn()")
    out=$(pgbench -n -M prepared -c 1 -t "$transactions" -D q="$queue" -D id=0 -D lease_token=0 \
        -D payload="$payload" -f "$here/$script.sql" "$db" 2>&1) || { echo "$out" >&2; exit 1; }
    local ms
    ms=$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' <<< "$out")
    if [ "$jobs" -gt 0 ]; then
        sql -c "SELECT '$ms', round(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$before') / $jobs)"
    else
        echo "$ms|"
    fi
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

steps=(1_limit 2_layout 3_lease 4_wrapped 5_function)
probes=(p1_round_trip p2_controls p3_empty_call)
enqueues=(e1_insert e2_insert_pgqrs e3_enqueue e4_enqueue_wake)
# pgqrs-bench's payload (about 110 bytes of JSON), sent as a parameter, parsed on every call.
payload='{"n": 1, "pad": "0123456789abcdef0123456789abcdef0123456789", "task": "send_email", "to": "user-000001@example.com"}'
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for sync in on off; do
    export PGOPTIONS="-c synchronous_commit=$sync"
    for rep in $(seq "$reps"); do
        for step in "${steps[@]}"; do
            sql -v q="$queue" -v n=$((batches * 100 + 1000)) -f "$here/fill.sql" > /dev/null
            line=$(measure "$step" "$batches" $((batches * 100)))
            # The drain must have taken the common path, every ack whole: one lease left.
            if [ "$step" != 1_limit ] && [ "$step" != 2_layout ]; then
                left=$(sql -c "SELECT count(*) FROM pgqrs.leases")
                [ "$left" = 1 ] || { echo "$step left $left leases: an ack went astray" >&2; exit 1; }
            fi
            echo "$sync $step ${line/|/ }" >> "$results"
            echo "synchronous_commit=$sync rep $rep/$reps $step: ${line/|/ ms, } bytes of WAL per job" >&2
        done
        for probe in "${probes[@]}"; do
            line=$(measure "$probe" "$calls" 0)
            echo "$sync $probe ${line/|/ }" >> "$results"
        done
        for enqueue in "${enqueues[@]}"; do
            sql -v q="$queue" -v n=0 -f "$here/fill.sql" > /dev/null
            line=$(measure "$enqueue" "$calls" "$calls")
            echo "$sync $enqueue ${line/|/ }" >> "$results"
            echo "synchronous_commit=$sync rep $rep/$reps $enqueue: ${line/|/ ms, } bytes of WAL per job" >&2
        done
    done
done

col() { awk -v s="$1" -v k="$2" -v f="$3" '$1 == s && $2 == k { print $f }' "$results" | median; }
# Rows of $2.. against the baseline $1: time with synchronous commit on and off, WAL per job.
rows() {
    local base=$1 row
    shift
    for row in "$@"; do
        awk -v s="$row" -v on="$(col on "$row" 3)" -v off="$(col off "$row" 3)" \
            -v bon="$(col on "$base" 3)" -v boff="$(col off "$base" 3)" -v wal="$(col on "$row" 4)" \
            'BEGIN { printf "| %s | %.3f | %.2fx | %.3f | %.2fx | %d bytes |\n", s, on, bon / on, off, boff / off, wal }'
    done
}
echo "Run on $(date -u '+%Y-%m-%d %H:%M UTC') at commit $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores;"
echo "$(sql -c 'SELECT version()' | cut -d' ' -f1,2); medians of $reps drains of $batches batches each, and of $reps runs of $calls calls for the other rows."
echo
echo "| statement | ms per batch of 100, synchronous commit on | vs the limit | ms, synchronous commit off | vs the limit | WAL per job |"
echo "|---|---|---|---|---|---|"
rows 1_limit "${steps[@]}"
for probe in "${probes[@]}"; do
    awk -v s="$probe" -v on="$(col on "$probe" 3)" -v off="$(col off "$probe" 3)" \
        'BEGIN { printf "| %s (no job) | %.3f | | %.3f | | |\n", s, on, off }'
done
echo
echo "| statement | ms per job, synchronous commit on | vs the insert | ms, synchronous commit off | vs the insert | WAL per job |"
echo "|---|---|---|---|---|---|"
rows e1_insert "${enqueues[@]}"
