//! The queue metrics statement stays cheap on a deep queue whatever the planner thinks of
//! it: every count walks an index with a LIMIT and no plan reads the whole jobs table. A
//! full benchmark run once saw the per-queue counts flattened into a hash join over a
//! sequential scan of a million jobs (2 s instead of 30 ms); with nested loops priced out,
//! the statement must still have no other plan.

use pgqrs::Producer;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool};

use crate::common::setup;

/// The library's metrics statement, byte for byte.
const DEPTHS_SQL: &str = include_str!("../../src/db/sql/queue_depths.sql");

/// Every `(node type, relation)` of a JSON plan, depth first.
fn scans(node: &Value, found: &mut Vec<(String, String)>) {
    if let Some(kind) = node["Node Type"].as_str() {
        let relation = node["Relation Name"].as_str().unwrap_or_default();
        found.push((kind.to_owned(), relation.to_owned()));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        scans(child, found);
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn queue_metrics_never_scan_the_whole_jobs_table(pool: PgPool) -> anyhow::Result<()> {
    let (config, _admin) = setup(pool.clone(), &["deep", "shallow"]).await;
    let deep = Producer::new(&config, "deep").await?;
    let chunk: Vec<Value> = (0..5_000).map(|n| json!({ "n": n })).collect();
    for _ in 0..6 {
        deep.enqueue_batch(&chunk).await?;
    }
    let urgent = pgqrs::EnqueueOptions::builder().priority(5).build();
    deep.enqueue_batch_with(&chunk[..10], &urgent).await?;
    sqlx::query("VACUUM ANALYZE pgqrs.jobs")
        .execute(&pool)
        .await?;

    let mut conn = pool.acquire().await?;
    sqlx::raw_sql(
        "SET jit = off; SET plan_cache_mode = force_generic_plan; SET enable_nestloop = off",
    )
    .execute(&mut *conn)
    .await?;
    let prepare = format!("PREPARE pgqrs_depths(bigint, float8) AS {DEPTHS_SQL}");
    sqlx::raw_sql(AssertSqlSafe(prepare))
        .execute(&mut *conn)
        .await?;
    let plan: Value = sqlx::query_scalar("EXPLAIN (FORMAT JSON) EXECUTE pgqrs_depths(100, 20000)")
        .fetch_one(&mut *conn)
        .await?;
    let mut found = Vec::new();
    scans(&plan[0]["Plan"], &mut found);
    let whole_table: Vec<_> = found
        .iter()
        .filter(|(kind, relation)| relation == "jobs" && kind == "Seq Scan")
        .collect();
    assert!(
        whole_table.is_empty(),
        "the metrics statement scans the jobs table: {found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(kind, relation)| relation == "jobs" && kind.starts_with("Index")),
        "counts come from the indexes: {found:?}"
    );
    Ok(())
}
