//! L: what a durable lease costs a batch drain. Hand-written one-statement drains (the ack
//! of batch N rides on the claim of batch N+1, as in pgqrs) over three lease layouts, next
//! to pgqrs and the no-lease limit, with the WAL each writes per job:
//! - in the row: the lease is columns of the job row, which the claim updates (pgqrs's
//!   layout before migration 0008: the runnable and leased partial indexes key off
//!   `lease_token`, so the update is not HOT: a new row version and an entry in each of two
//!   indexes per job);
//! - in a side table: the claim moves the job row from the waiting table into a table of
//!   leased jobs (a delete, and an insert into a small table whose pages stay cached);
//! - one lease row per batch: the claim moves its jobs straight into the archive (as the
//!   no-lease limit does) and writes a single lease row naming them; the ack of the whole
//!   batch deletes that one row. A job is then written as often as in the limit, and the
//!   lease costs two row writes per batch instead of per job. pgqrs's layout since
//!   migration 0008, where the claim also handles paused queues, the global concurrency
//!   budget, expired leases handed back and acks of part of a batch.
//!
//! The no-lease limit writes each job once more (its archive row) after the enqueue; a
//! lease kept per job writes it twice, so the first two layouts show the ceiling of a
//! per-job lease, and the third what a per-batch lease reaches.

use std::time::Instant;

use anyhow::Result;
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgPool};

use crate::report::{Row, median};
use crate::{Bench, drain, payload, raw};

/// Where a hand-written drain keeps its leases.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    InRow,
    SideTable,
    BatchLease,
}

const SETUP: &[&str] = &[
    "CREATE TABLE raw.lease_jobs (id bigserial PRIMARY KEY, queue_id integer NOT NULL,
       payload jsonb NOT NULL, priority smallint NOT NULL DEFAULT 0,
       run_at timestamptz NOT NULL DEFAULT now(), attempts integer NOT NULL DEFAULT 0,
       lease_token bigint, lease_expires_at timestamptz,
       enqueued_at timestamptz NOT NULL DEFAULT now()) WITH (fillfactor = 85)",
    "CREATE INDEX ON raw.lease_jobs (queue_id, priority DESC, run_at, id) WHERE lease_token IS NULL",
    "CREATE INDEX ON raw.lease_jobs (queue_id, lease_expires_at) WHERE lease_token IS NOT NULL",
    "CREATE TABLE raw.waiting (LIKE raw.lease_jobs INCLUDING DEFAULTS)",
    "ALTER TABLE raw.waiting ADD PRIMARY KEY (id)",
    "CREATE INDEX ON raw.waiting (queue_id, priority DESC, run_at, id)",
    "CREATE TABLE raw.leased (LIKE raw.lease_jobs INCLUDING DEFAULTS)",
    "ALTER TABLE raw.leased ADD PRIMARY KEY (id)",
    "CREATE INDEX ON raw.leased (queue_id, lease_expires_at)",
    "CREATE TABLE raw.lease_archive (id bigint PRIMARY KEY, queue_id integer NOT NULL,
       payload jsonb NOT NULL, priority smallint NOT NULL, attempts integer NOT NULL,
       enqueued_at timestamptz NOT NULL, archived_at timestamptz NOT NULL DEFAULT now(),
       outcome text NOT NULL)",
    "CREATE SEQUENCE raw.lease_tokens CACHE 32",
    "CREATE TABLE raw.claim_archive (LIKE raw.lease_archive INCLUDING DEFAULTS)",
    "ALTER TABLE raw.claim_archive ADD PRIMARY KEY (id), ADD COLUMN lease_token bigint",
    "CREATE TABLE raw.batch_leases (token bigint PRIMARY KEY, queue_id integer NOT NULL,
       worker_id bigint, expires_at timestamptz NOT NULL, ids bigint[] NOT NULL)",
    "CREATE INDEX ON raw.batch_leases (queue_id, expires_at)",
    "CREATE TABLE raw.queues (id integer PRIMARY KEY, max_attempts integer NOT NULL,
       paused boolean NOT NULL DEFAULT false, global_concurrency integer)",
    "INSERT INTO raw.queues (id, max_attempts) VALUES (1, 25)",
];

/// The ack of the held batch (`$1` ids, `$2` token) from the table holding leases.
fn ack_cte(leases: &str) -> String {
    format!(
        "WITH done AS (
           DELETE FROM {leases} j WHERE j.id = ANY($1::bigint[]) AND j.lease_token = $2
           RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at),
         archived AS (
           INSERT INTO raw.lease_archive (id, queue_id, payload, priority, attempts, enqueued_at, outcome)
           SELECT id, queue_id, payload, priority, attempts, enqueued_at, 'completed' FROM done),"
    )
}

/// The one statement per batch of `layout`: ack the held batch, claim up to `$3` jobs.
fn claim_statement(layout: Layout) -> String {
    match layout {
        Layout::InRow => {
            ack_cte("raw.lease_jobs")
                + "
         picked AS (
           SELECT j.id FROM raw.lease_jobs j
           WHERE j.queue_id = 1 AND j.lease_token IS NULL AND j.run_at <= now()
           ORDER BY j.priority DESC, j.run_at, j.id LIMIT $3 FOR UPDATE SKIP LOCKED)
         UPDATE raw.lease_jobs j
         SET lease_token = (SELECT nextval('raw.lease_tokens')),
             lease_expires_at = now() + interval '30 seconds', attempts = j.attempts + 1
         WHERE j.id = ANY (ARRAY(SELECT id FROM picked))
         RETURNING j.id, j.payload, j.lease_token"
        }
        Layout::SideTable => {
            ack_cte("raw.leased")
                + "
         picked AS (
           DELETE FROM raw.waiting w
           WHERE w.id = ANY (ARRAY(
             SELECT j.id FROM raw.waiting j WHERE j.queue_id = 1 AND j.run_at <= now()
             ORDER BY j.priority DESC, j.run_at, j.id LIMIT $3 FOR UPDATE SKIP LOCKED))
           RETURNING w.*)
         INSERT INTO raw.leased (id, queue_id, payload, priority, run_at, attempts, lease_token,
                                 lease_expires_at, enqueued_at)
         SELECT id, queue_id, payload, priority, run_at, attempts + 1,
                (SELECT nextval('raw.lease_tokens')), now() + interval '30 seconds', enqueued_at
         FROM picked
         RETURNING id, payload, lease_token"
        }
        // The ack drops the batch's lease row once every job in it is acked; the claim
        // moves its jobs into the archive and writes one lease row for all of them.
        Layout::BatchLease => "WITH acked AS (
           DELETE FROM raw.batch_leases WHERE token = $2 AND ids <@ $1::bigint[]),
         token AS MATERIALIZED (SELECT nextval('raw.lease_tokens') AS t),
         picked AS (
           DELETE FROM raw.waiting w
           WHERE w.id = ANY (ARRAY(
             SELECT j.id FROM raw.waiting j WHERE j.queue_id = 1 AND j.run_at <= now()
             ORDER BY j.priority DESC, j.run_at, j.id LIMIT $3 FOR UPDATE SKIP LOCKED))
           RETURNING w.*),
         moved AS (
           INSERT INTO raw.claim_archive (id, queue_id, payload, priority, attempts, enqueued_at,
                                          outcome, lease_token)
           SELECT id, queue_id, payload, priority, attempts + 1, enqueued_at, 'completed',
                  (SELECT t FROM token)
           FROM picked
           RETURNING id, payload, lease_token),
         lease AS (
           INSERT INTO raw.batch_leases (token, queue_id, expires_at, ids)
           SELECT (SELECT t FROM token), 1, now() + interval '30 seconds', array_agg(id)
           FROM moved HAVING count(*) > 0)
         SELECT id, payload, lease_token FROM moved"
            .to_owned(),
    }
}

async fn setup(pool: &PgPool) -> Result<()> {
    for statement in SETUP {
        sqlx::query(AssertSqlSafe(*statement)).execute(pool).await?;
    }
    Ok(())
}

/// Empties every table of `layout` and fills its waiting jobs with `n` jobs.
async fn refill(pool: &PgPool, layout: Layout, n: usize) -> Result<()> {
    sqlx::query(
        "TRUNCATE raw.lease_jobs, raw.waiting, raw.leased, raw.lease_archive, raw.claim_archive, raw.batch_leases",
    )
        .execute(pool)
        .await?;
    let table = match layout {
        Layout::InRow => "raw.lease_jobs",
        Layout::SideTable | Layout::BatchLease => "raw.waiting",
    };
    let batch: Vec<Value> = (0..1_000).map(payload).collect();
    let insert = format!("INSERT INTO {table} (queue_id, payload) SELECT 1, unnest($1::jsonb[])");
    for take in crate::chunk_sizes(n, batch.len()) {
        sqlx::query(AssertSqlSafe(insert.clone()))
            .bind(&batch[..take])
            .execute(pool)
            .await?;
    }
    sqlx::query(AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
        .execute(pool)
        .await?;
    Ok(())
}

/// Drains with `consumers` tasks claiming `batch` at a time, each ack riding on the
/// consumer's next claim. Returns jobs/s.
async fn drain_hand_written(
    pool: &PgPool,
    layout: Layout,
    batch: i64,
    consumers: usize,
) -> Result<f64> {
    let statement = claim_statement(layout);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let (pool, statement) = (pool.clone(), statement.clone());
        tasks.push(tokio::spawn(async move {
            let (mut done, mut held, mut token) = (0usize, Vec::<i64>::new(), 0i64);
            loop {
                let result: sqlx::Result<Vec<(i64, Value, i64)>> =
                    sqlx::query_as(AssertSqlSafe(statement.as_str()))
                        .bind(&held)
                        .bind(token)
                        .bind(batch)
                        .fetch_all(&pool)
                        .await;
                // Two such drains can deadlock (ack after scan), as pgqrs's claims can; like
                // pgqrs, run the rolled-back statement again.
                let rows = match result {
                    Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("40P01") => {
                        continue;
                    }
                    other => other?,
                };
                done += held.len();
                held = rows.iter().map(|row| row.0).collect();
                token = rows.first().map_or(0, |row| row.2);
                if held.is_empty() {
                    return Ok(done);
                }
            }
        }));
    }
    drain::jobs_per_second(start, tasks).await
}

pub(crate) async fn run(bench: &mut Bench) -> Result<()> {
    setup(&bench.pool).await?;
    let n = bench.size(40_000, 4_000);
    let consumers = 4;
    eprintln!("[L] drain {n} jobs, batch 100, {consumers} consumers, by lease layout");
    // pgqrs, in-row, side table, batch lease, limit: (jobs/s, WAL/job) samples each.
    let mut samples: [Vec<(f64, f64)>; 5] = Default::default();
    for rep in 0..bench.reps {
        let queue = format!("lease-{rep}");
        drain::truncate_ours(&bench.pool).await?;
        drain::fill(bench, &queue, n).await?;
        let pool = bench.pool.clone();
        samples[0].push(
            drain::wal_per_job(
                &pool,
                n,
                drain::drain_ours(bench, &queue, 100, consumers, n),
            )
            .await?,
        );
        bench.admin.delete_queue(&queue).await?;
        for (i, layout) in [
            (1, Layout::InRow),
            (2, Layout::SideTable),
            (3, Layout::BatchLease),
        ] {
            refill(&pool, layout, n).await?;
            samples[i].push(
                drain::wal_per_job(&pool, n, drain_hand_written(&pool, layout, 100, consumers))
                    .await?,
            );
        }
        raw::truncate(&pool).await?;
        raw::fill(&pool, n).await?;
        samples[4].push(
            drain::wal_per_job(&pool, n, drain::drain_raw_single(&pool, 100, consumers, n)).await?,
        );
        eprintln!(
            "    rep {}: pgqrs {:.0}, in-row {:.0}, side table {:.0}, batch lease {:.0}, limit {:.0} jobs/s",
            rep + 1,
            samples[0][rep].0,
            samples[1][rep].0,
            samples[2][rep].0,
            samples[3][rep].0,
            samples[4][rep].0
        );
    }
    let [ours, in_row, side, batch_lease, limit] = samples.map(|s| {
        (
            median(s.iter().map(|x| x.0).collect()),
            median(s.iter().map(|x| x.1).collect()),
        )
    });
    for (baseline, raw) in [
        (
            "hand-written lease in the row, pgqrs's layout before 0008",
            in_row,
        ),
        ("hand-written lease in a side table", side),
        (
            "hand-written batch lease, claim archives, pgqrs's layout",
            batch_lease,
        ),
        ("single-statement limit, no lease", limit),
    ] {
        bench.report.add(Row {
            scenario: format!("L drain, batch 100, {consumers} consumers, by lease layout"),
            unit: "jobs/s",
            ours: ours.0,
            baseline,
            raw: raw.0,
            higher_is_better: true,
            target: None,
        });
    }
    bench.report.note(format!(
        "L: of the no-lease limit, a hand-written lease in the row reaches {:.2}x, one in a side table {:.2}x \
         and one lease row per batch, with the claim archiving its jobs, {:.2}x; pgqrs, whose claim keeps \
         that last layout and adds the queue controls, the budget, expired leases and partial acks, {:.2}x. \
         WAL per drained job: limit {:.0} bytes, lease in the row {:.0}, side table {:.0}, batch lease {:.0}, \
         pgqrs {:.0}.",
        in_row.0 / limit.0,
        side.0 / limit.0,
        batch_lease.0 / limit.0,
        ours.0 / limit.0,
        limit.1,
        in_row.1,
        side.1,
        batch_lease.1,
        ours.1
    ));
    raw::truncate(&bench.pool).await?;
    Ok(())
}
