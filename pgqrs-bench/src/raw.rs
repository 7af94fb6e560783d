//! The hand-written baseline: one table with a visibility timeout, an archive table, and
//! the statements a careful engineer would write by hand.

use anyhow::Result;
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgPool};

pub(crate) async fn setup(pool: &PgPool) -> Result<()> {
    for statement in [
        "CREATE SCHEMA raw",
        "CREATE TABLE raw.jobs (id bigserial PRIMARY KEY, payload jsonb NOT NULL,
           vt timestamptz NOT NULL DEFAULT now(), attempts integer NOT NULL DEFAULT 0)",
        "CREATE INDEX raw_jobs_vt ON raw.jobs (vt, id)",
        "CREATE TABLE raw.archive (id bigint PRIMARY KEY, payload jsonb NOT NULL,
           archived_at timestamptz NOT NULL DEFAULT now())",
    ] {
        sqlx::query(AssertSqlSafe(statement)).execute(pool).await?;
    }
    Ok(())
}

pub(crate) async fn truncate(pool: &PgPool) -> Result<()> {
    sqlx::query("TRUNCATE raw.jobs, raw.archive")
        .execute(pool)
        .await?;
    Ok(())
}

/// `INSERT ... RETURNING` of one job.
pub(crate) async fn insert_one(pool: &PgPool, payload: &Value) -> Result<i64> {
    Ok(
        sqlx::query_scalar("INSERT INTO raw.jobs (payload) VALUES ($1) RETURNING id")
            .bind(payload)
            .fetch_one(pool)
            .await?,
    )
}

/// `INSERT ... SELECT unnest(..) RETURNING` of a batch.
pub(crate) async fn insert_batch(pool: &PgPool, payloads: &[Value]) -> Result<Vec<i64>> {
    Ok(
        sqlx::query_scalar(
            "INSERT INTO raw.jobs (payload) SELECT unnest($1::jsonb[]) RETURNING id",
        )
        .bind(payloads)
        .fetch_all(pool)
        .await?,
    )
}

/// [`insert_one`] into `pgqrs.jobs`: the table's share of an enqueue's cost.
pub(crate) async fn insert_one_into_pgqrs(
    pool: &PgPool,
    queue: i32,
    payload: &Value,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO pgqrs.jobs (queue_id, payload) VALUES ($1, $2) RETURNING id",
    )
    .bind(queue)
    .bind(payload)
    .fetch_one(pool)
    .await?)
}

/// [`insert_batch`] into `pgqrs.jobs`.
pub(crate) async fn insert_batch_into_pgqrs(
    pool: &PgPool,
    queue: i32,
    payloads: &[Value],
) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO pgqrs.jobs (queue_id, payload) SELECT $1, unnest($2::jsonb[]) RETURNING id",
    )
    .bind(queue)
    .bind(payloads)
    .fetch_all(pool)
    .await?)
}

/// Fills the table with `n` jobs, 1,000 per statement.
pub(crate) async fn fill(pool: &PgPool, n: usize) -> Result<()> {
    let batch: Vec<Value> = (0..1_000).map(crate::payload).collect();
    for take in crate::chunk_sizes(n, batch.len()) {
        insert_batch(pool, &batch[..take]).await?;
    }
    Ok(())
}

/// The lease claim: same semantics as pgqrs's (a visibility timeout, a delivery count).
pub(crate) async fn claim(pool: &PgPool, n: i64) -> Result<Vec<(i64, Value)>> {
    Ok(sqlx::query_as(
        "UPDATE raw.jobs SET vt = now() + interval '30 seconds', attempts = attempts + 1
         WHERE id IN (SELECT id FROM raw.jobs WHERE vt <= now() ORDER BY vt, id LIMIT $1
                      FOR UPDATE SKIP LOCKED)
         RETURNING id, payload",
    )
    .bind(n)
    .fetch_all(pool)
    .await?)
}

/// The separate ack: delete the claimed jobs into the archive.
pub(crate) async fn archive(pool: &PgPool, ids: &[i64]) -> Result<()> {
    sqlx::query(
        "WITH done AS (DELETE FROM raw.jobs WHERE id = ANY($1) RETURNING id, payload)
         INSERT INTO raw.archive (id, payload) SELECT id, payload FROM done",
    )
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(())
}

/// The physical limit: claim and archive in one statement, no lease at all.
pub(crate) async fn take_and_archive(pool: &PgPool, n: i64) -> Result<Vec<(i64, Value)>> {
    Ok(sqlx::query_as(
        "WITH done AS (
           DELETE FROM raw.jobs WHERE id IN (SELECT id FROM raw.jobs WHERE vt <= now()
                                            ORDER BY vt, id LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, payload)
         INSERT INTO raw.archive (id, payload) SELECT id, payload FROM done RETURNING id, payload",
    )
    .bind(n)
    .fetch_all(pool)
    .await?)
}
