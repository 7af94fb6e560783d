//! The claim query reads the same few pages whatever the backlog: its plan is pinned at
//! 100k rows, and the buffers it touches are compared at 1k and 100k rows.

use pgqrs::Producer;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool};

use crate::common::{in_snapshots, setup};

/// The library's claim statement, byte for byte.
const CLAIM_SQL: &str = include_str!("../../src/db/sql/job_claim_batch.sql");
const BATCH: i64 = 10;

async fn fill(producer: &Producer, jobs: usize) -> pgqrs::Result<()> {
    let chunk: Vec<Value> = (0..5_000)
        .map(|n| json!({ "n": n, "pad": "x".repeat(64) }))
        .collect();
    let mut left = jobs;
    while left > 0 {
        let take = left.min(chunk.len());
        producer.enqueue_batch(&chunk[..take]).await?;
        left -= take;
    }
    Ok(())
}

/// Shared buffers (hit + read) one claim of `BATCH` jobs touches, executed and rolled back.
async fn claim_buffers(pool: &PgPool, queue_id: i32) -> sqlx::Result<i64> {
    let mut tx = pool.begin().await?;
    let sql = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {CLAIM_SQL}");
    let plan: Value = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(queue_id)
        .bind(BATCH)
        .bind(30.0_f64)
        .bind(None::<i64>)
        .bind(false)
        .fetch_one(&mut *tx)
        .await?;
    tx.rollback().await?;
    let top = &plan[0]["Plan"];
    assert_eq!(
        top["Actual Rows"],
        json!(BATCH),
        "the claim took a full batch: {plan}"
    );
    let blocks = |key: &str| top[key].as_i64().unwrap_or_default();
    Ok(blocks("Shared Hit Blocks") + blocks("Shared Read Blocks"))
}

/// Median over a few runs, so one autovacuum or cache hiccup does not decide.
async fn median_claim_buffers(pool: &PgPool, queue_id: i32) -> sqlx::Result<i64> {
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(claim_buffers(pool, queue_id).await?);
    }
    runs.sort_unstable();
    Ok(runs[runs.len() / 2])
}

#[sqlx::test(migrations = "../migrations")]
async fn claim_cost_is_flat_from_1k_to_100k_and_plan_is_pinned(pool: PgPool) -> pgqrs::Result<()> {
    let (config, _admin) = setup(pool.clone(), &["tasks", "other"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let queue_id = producer.queue().id;
    // Another queue's backlog shares the table and must not be read either.
    fill(&Producer::new(&config, "other").await?, 20_000).await?;

    fill(&producer, 1_000).await?;
    sqlx::query("ANALYZE pgqrs.jobs").execute(&pool).await?;
    let shallow = median_claim_buffers(&pool, queue_id).await?;

    fill(&producer, 99_000).await?;
    sqlx::query("ANALYZE pgqrs.jobs").execute(&pool).await?;
    let deep = median_claim_buffers(&pool, queue_id).await?;

    println!("claim of {BATCH}: {shallow} buffers at 1k deep, {deep} at 100k deep");
    assert!(
        deep * 2 <= shallow * 3,
        "claim touched {deep} buffers at 100k deep vs {shallow} at 1k: cost grows with depth"
    );

    let sql = format!("EXPLAIN (COSTS OFF) {CLAIM_SQL}");
    let plan: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(queue_id)
        .bind(BATCH)
        .bind(30.0_f64)
        .bind(None::<i64>)
        .bind(false)
        .fetch_all(&pool)
        .await?;
    in_snapshots(|| insta::assert_snapshot!("claim_plan_100k", plan.join("\n")));
    Ok(())
}
