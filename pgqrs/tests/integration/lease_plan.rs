//! A job named by id and lease token (an ack, a heartbeat, a workflow step's fence) is
//! reached through the lease's primary key, however few leases there were when the
//! statement was planned. (With leases kept in `pgqrs.jobs`, before migration 0008, a plan
//! made right after a vacuum read a whole partial index and filtered on id, then kept doing
//! so as thousands of jobs were leased: each ack read every leased job of every queue.)

use pgqrs::{Consumer, MAX_CLAIM_BATCH, Producer};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::claim_plan::{explain_mirror, force_generic_plans, shared_buffers};
use crate::common::setup;

/// The two shapes `pgqrs/src/db/` names leased jobs in: one job (a workflow's lease
/// fence), and a batch with one token per job (`pgqrs.lease_settle`: ack, release, retry;
/// a heartbeat).
const LOOKUPS: [(&str, &str, &str); 2] = [
    (
        "fence(bigint, bigint)",
        "SELECT 1 FROM pgqrs.leases WHERE token = $2 AND $1 = ANY (ids) FOR SHARE",
        "EXECUTE fence({id}, {token})",
    ),
    (
        "batch(bigint[], bigint[])",
        "SELECT l.token FROM pgqrs.leases l WHERE l.token = ANY ($2) AND l.ids && $1 FOR UPDATE",
        "EXECUTE batch('{{{id}}}', '{{{token}}}')",
    ),
];

/// Every read of `pgqrs.jobs` or `pgqrs.leases` in a JSON plan: (index, or "seq", and
/// whether it has an index condition).
fn job_scans(node: &Value, found: &mut Vec<(String, bool)>) {
    let kind = node["Node Type"].as_str().unwrap_or_default();
    let index = node["Index Name"].as_str().unwrap_or_default();
    let relation = node["Relation Name"].as_str().unwrap_or_default();
    if index.starts_with("jobs_") || index.starts_with("leases_") {
        found.push((index.to_owned(), node.get("Index Cond").is_some()));
    } else if kind == "Tid Scan" && relation == "jobs" {
        found.push(("tid".to_owned(), node.get("TID Cond").is_some()));
    } else if kind == "Seq Scan" && (relation == "jobs" || relation == "leases") {
        found.push(("seq".to_owned(), false));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        job_scans(child, found);
    }
}

async fn plan(conn: &mut PgConnection, statement: &str) -> sqlx::Result<Value> {
    let explain = format!("EXPLAIN (FORMAT JSON) {statement}");
    sqlx::query_scalar(AssertSqlSafe(explain))
        .fetch_one(&mut *conn)
        .await
}

#[sqlx::test(migrations = "../migrations")]
async fn lease_lookups_use_the_primary_key_when_the_leased_index_looked_empty(
    pool: PgPool,
) -> anyhow::Result<()> {
    let (config, _admin) = setup(pool.clone(), &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let chunk: Vec<Value> = (0..2_000).map(|n| json!({ "n": n })).collect();
    producer.enqueue_batch(&chunk).await?;
    // What a connection sees right after a vacuum between bursts: nothing leased.
    sqlx::query("VACUUM ANALYZE pgqrs.jobs, pgqrs.leases")
        .execute(&pool)
        .await?;
    let mut conn = pool.acquire().await?;
    force_generic_plans(&mut conn).await?;
    for (signature, body, _) in LOOKUPS {
        sqlx::raw_sql(AssertSqlSafe(format!("PREPARE {signature} AS {body}")))
            .execute(&mut *conn)
            .await?;
    }

    // The generic plans, made now, are the ones the connection keeps.
    let queue_id = producer.queue().id;
    let claim: Vec<Value> =
        explain_mirror(&mut conn, "FORMAT JSON", queue_id, &[1, 2], &[3, 4]).await?;
    let mut scans = Vec::new();
    job_scans(&claim[0][0]["Plan"], &mut scans);
    assert!(
        scans.iter().all(|(_, cond)| *cond),
        "the claim reads an index without a condition on it: {scans:?}"
    );
    assert!(
        scans.contains(&("tid".to_owned(), true)),
        "the picked jobs are taken by their address (locked, they cannot move): {scans:?}"
    );

    // Then the whole queue is leased, one job per lease (a claim takes at most
    // MAX_CLAIM_BATCH, so a few big leases would be as easy); a lookup still reads a
    // handful of pages.
    let consumer = Consumer::new(&config, "tasks").await?;
    let first = consumer.dequeue_batch(2_000).await?;
    assert_eq!(
        first.len(),
        MAX_CLAIM_BATCH,
        "one claim takes at most MAX_CLAIM_BATCH"
    );
    let mut last = None;
    for _ in MAX_CLAIM_BATCH..2_000 {
        last = consumer.dequeue().await?;
    }
    let job = last.expect("jobs were leased");
    let (id, token) = (job.id, job.lease.token());
    for (signature, _, lookup) in LOOKUPS {
        let lookup = lookup
            .replace("{id}", &id.to_string())
            .replace("{token}", &token.to_string());
        let mut scans = Vec::new();
        job_scans(&plan(&mut conn, &lookup).await?[0]["Plan"], &mut scans);
        assert_eq!(
            scans,
            [("leases_pkey".to_owned(), true)],
            "{signature} is not answered by the primary key"
        );
        let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {lookup}");
        let measured: Value = sqlx::query_scalar(AssertSqlSafe(explain))
            .fetch_one(&mut *conn)
            .await?;
        let top = &measured[0]["Plan"];
        assert_eq!(top["Actual Rows"], json!(1), "{signature} finds the job");
        let buffers = shared_buffers(top);
        assert!(
            buffers <= 10,
            "{signature} read {buffers} buffers to find one of 2000 leased jobs"
        );
    }
    Ok(())
}
