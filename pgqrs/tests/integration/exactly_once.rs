//! Exactly-once accounting under concurrent consumers.

use std::collections::HashSet;

use pgqrs::{Admin, Consumer, Producer};
use serde_json::json;
use sqlx::PgPool;

use crate::common::config_with_pool_size;

const JOBS: usize = 20_000;
const CONSUMERS: usize = 8;

/// What one consumer saw: every id it was handed and every id it archived.
#[derive(Default)]
struct Tally {
    dequeued: Vec<i64>,
    archived: Vec<i64>,
}

#[sqlx::test(migrations = "../migrations")]
async fn eight_consumers_drain_20k_jobs_exactly_once(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = config_with_pool_size(&pool, CONSUMERS as u32 + 2).await;
    Admin::new(&config).await?.create_queue("tasks").await?;
    let producer = Producer::new(&config, "tasks").await?;
    let mut enqueued = HashSet::with_capacity(JOBS);
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(1_000) {
        let payloads: Vec<_> = chunk.iter().map(|n| json!({ "n": n })).collect();
        enqueued.extend(
            producer
                .enqueue_batch(&payloads)
                .await?
                .iter()
                .map(|e| e.id),
        );
    }
    assert_eq!(enqueued.len(), JOBS);

    // Mixed batch sizes so single and batched claims race each other.
    let mut workers = Vec::new();
    for worker in 0..CONSUMERS {
        let config = config.clone();
        let batch = [1, 3, 10, 50][worker % 4];
        workers.push(tokio::spawn(async move {
            let consumer = Consumer::new(&config, "tasks").await?;
            let mut tally = Tally::default();
            loop {
                let jobs = consumer.dequeue_batch(batch).await?;
                if jobs.is_empty() {
                    return Ok::<_, pgqrs::Error>(tally);
                }
                let ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
                consumer
                    .archive_batch(&ids, &format!("worker-{worker}"))
                    .await?;
                tally.dequeued.extend(&ids);
                tally.archived.extend(ids);
            }
        }));
    }

    let mut dequeued = Vec::new();
    let mut archived = Vec::new();
    let mut busy_workers = 0;
    for handle in workers {
        let tally = handle.await.expect("consumer task")?;
        busy_workers += usize::from(!tally.archived.is_empty());
        dequeued.extend(tally.dequeued);
        archived.extend(tally.archived);
    }

    assert_eq!(
        dequeued.len(),
        JOBS,
        "no job delivered twice within its lease"
    );
    assert_eq!(
        archived.len(),
        JOBS,
        "every job archived by exactly one consumer"
    );
    let archived_set: HashSet<i64> = archived.iter().copied().collect();
    assert_eq!(archived_set.len(), JOBS, "no duplicates");
    assert_eq!(archived_set, enqueued, "none lost, none invented");
    assert!(busy_workers > 1, "consumers actually ran concurrently");

    let (left, in_archive, distinct): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pgqrs.jobs),
                (SELECT count(*) FROM pgqrs.archive),
                (SELECT count(DISTINCT id) FROM pgqrs.archive)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!((left, in_archive, distinct), (0, JOBS as i64, JOBS as i64));
    Ok(())
}
