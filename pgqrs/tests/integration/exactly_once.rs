//! Exactly-once accounting under concurrent consumers.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// The claim takes the jobs it locked by their address (`ctid`). Rows that get a new
/// version (a new address) while claims run must still be taken once each: a churn task
/// rewrites the rows at the head of the queue, where the claims are, until every job is
/// archived.
#[sqlx::test(migrations = "../migrations")]
async fn claims_racing_rewrites_of_waiting_rows_take_each_job_once(
    pool: PgPool,
) -> pgqrs::Result<()> {
    const RACED: usize = 5_000;
    let config = config_with_pool_size(&pool, 8).await;
    let enqueued = tasks_with_jobs(&config, RACED).await?;

    let done = Arc::new(AtomicUsize::new(0));
    let churn = {
        let (pool, done) = (pool.clone(), done.clone());
        tokio::spawn(async move {
            let mut rewritten = 0u64;
            while done.load(Ordering::Relaxed) < RACED {
                // `priority` is in the runnable index: every rewrite is a new row version
                // at a new address.
                rewritten += sqlx::query(
                    "UPDATE pgqrs.jobs SET priority = priority
                     WHERE id IN (SELECT id FROM pgqrs.jobs ORDER BY id LIMIT 40 FOR UPDATE SKIP LOCKED)",
                )
                .execute(&pool)
                .await?
                .rows_affected();
            }
            Ok::<_, sqlx::Error>(rewritten)
        })
    };

    // An empty claim is no proof of an empty queue here (the churn holds row locks for a
    // moment): the consumers stop once every job is archived.
    let consumers: Vec<_> = (0..4)
        .map(|_| consume_until(&config, 20, done.clone(), RACED))
        .collect();
    let mut delivered = Vec::new();
    for consumer in consumers {
        delivered.extend(consumer.await.expect("consumer task")?);
    }
    let rewritten = churn.await.expect("churn task")?;

    assert!(rewritten > 0, "the churn rewrote no waiting row");
    assert_eq!(delivered.len(), RACED, "no job delivered twice");
    let delivered: HashSet<i64> = delivered.into_iter().collect();
    assert_eq!(delivered, enqueued, "none lost, none invented");
    let (left, held, in_archive): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pgqrs.jobs), (SELECT count(*) FROM pgqrs.leases),
                (SELECT count(DISTINCT id) FROM pgqrs.archive)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!((left, held, in_archive), (0, 0, RACED as i64));
    println!("{RACED} jobs claimed once each while {rewritten} waiting rows were rewritten");
    Ok(())
}

/// Cancels race claims at the head of the queue: each job ends exactly one way, cancelled
/// (never handed to a consumer) or delivered once (and its cancel told so), none lost. A
/// cancel whose statement ran before a claim's commit but saw neither the job nor its
/// archive row must look again, or a delivered job would count as cancelled: every run
/// meets that case.
#[sqlx::test(migrations = "../migrations")]
async fn cancels_racing_claims_settle_each_job_one_way(pool: PgPool) -> pgqrs::Result<()> {
    const RACED: usize = 3_000;
    let pool = crate::common::via_pooler(pool).await;
    let config = config_with_pool_size(&pool, 8).await;
    let admin = Admin::new(&config).await?;
    let enqueued = tasks_with_jobs(&config, RACED).await?;

    // Jobs settled either way; everyone stops once it reaches RACED.
    let settled = Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = (0..3)
        .map(|_| consume_until(&config, 10, settled.clone(), RACED))
        .collect();
    // Two cancellers pick waiting jobs where the claims are, a few at a time: the next five a
    // claim will take (mostly claimed by the time the cancel comes, so refused) and five
    // beyond the next round of claims, a batch per consumer further on (mostly cancelled
    // first). Aimed at offsets 0 and 15 instead, a CI run through the legacy pooler cancelled
    // none (26 refused): 15 is within the next round of claims, three batches of 10.
    let mut cancellers = Vec::new();
    for ahead in [0i64, 30] {
        let (admin, pool, settled) = (admin.clone(), pool.clone(), settled.clone());
        cancellers.push(tokio::spawn(async move {
            let (mut cancelled, mut refused) = (Vec::new(), 0usize);
            while settled.load(Ordering::Relaxed) < RACED {
                let head: Vec<i64> =
                    sqlx::query_scalar("SELECT id FROM pgqrs.jobs ORDER BY id LIMIT 5 OFFSET $1")
                        .bind(ahead)
                        .fetch_all(&pool)
                        .await?;
                for id in head {
                    match admin.cancel_job(id).await {
                        Ok(pgqrs::JobState::Ready | pgqrs::JobState::Delayed) => {
                            settled.fetch_add(1, Ordering::Relaxed);
                            cancelled.push(id);
                        }
                        // Delivered (or cancelled by the other canceller) already.
                        Ok(pgqrs::JobState::Archived) => {}
                        Err(pgqrs::Error::JobLeased { .. }) => refused += 1,
                        other => panic!("cancel of job {id}: {other:?}"),
                    }
                }
            }
            Ok::<_, pgqrs::Error>((cancelled, refused))
        }));
    }

    let mut delivered = Vec::new();
    for consumer in consumers {
        delivered.extend(consumer.await.expect("consumer task")?);
    }
    let (mut cancelled, mut refused) = (Vec::new(), 0);
    for canceller in cancellers {
        let (theirs, their_refusals) = canceller.await.expect("canceller task")?;
        cancelled.extend(theirs);
        refused += their_refusals;
    }

    let delivered_set: HashSet<i64> = delivered.iter().copied().collect();
    let cancelled_set: HashSet<i64> = cancelled.iter().copied().collect();
    assert_eq!(
        delivered_set.len(),
        delivered.len(),
        "no job delivered twice"
    );
    assert_eq!(
        cancelled_set.len(),
        cancelled.len(),
        "no job cancelled twice"
    );
    assert!(
        delivered_set.is_disjoint(&cancelled_set),
        "no cancelled job was delivered"
    );
    let all: HashSet<i64> = delivered_set.union(&cancelled_set).copied().collect();
    assert_eq!(all, enqueued, "none lost, none invented");
    assert!(
        !delivered.is_empty() && !cancelled.is_empty() && refused > 0,
        "the race ran: {} delivered, {} cancelled, {refused} cancels refused for a held job",
        delivered.len(),
        cancelled.len()
    );

    let outcomes: Vec<(String, Vec<i64>)> = sqlx::query_as(
        "SELECT outcome, array_agg(id ORDER BY id) FROM pgqrs.archive GROUP BY outcome",
    )
    .fetch_all(&pool)
    .await?;
    let outcome = |name: &str| -> HashSet<i64> {
        outcomes
            .iter()
            .filter(|(o, _)| o == name)
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect()
    };
    assert_eq!(outcome("cancelled"), cancelled_set);
    assert_eq!(outcome("completed"), delivered_set);
    let (left, held): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pgqrs.jobs), (SELECT count(*) FROM pgqrs.leases)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!((left, held), (0, 0));
    println!(
        "{} delivered, {} cancelled, {refused} cancels refused for a held job",
        delivered.len(),
        cancelled.len()
    );
    Ok(())
}

/// A consumer of `tasks` that claims `batch` at a time and archives what it gets, adding
/// it to `settled`, until `settled` reaches `total`; returns the ids it was handed.
fn consume_until(
    config: &pgqrs::Config,
    batch: usize,
    settled: Arc<AtomicUsize>,
    total: usize,
) -> tokio::task::JoinHandle<pgqrs::Result<Vec<i64>>> {
    let config = config.clone();
    tokio::spawn(async move {
        let consumer = Consumer::new(&config, "tasks").await?;
        let mut seen = Vec::new();
        let started = std::time::Instant::now();
        while settled.load(Ordering::Relaxed) < total {
            assert!(
                started.elapsed().as_secs() < 120,
                "the drain did not finish"
            );
            let jobs = consumer.dequeue_batch(batch).await?;
            let ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
            consumer.archive_batch(&ids, "completed").await?;
            settled.fetch_add(ids.len(), Ordering::Relaxed);
            seen.extend(ids);
        }
        Ok(seen)
    })
}

/// Creates the queue `tasks` with `n` jobs; returns their ids.
async fn tasks_with_jobs(config: &pgqrs::Config, n: usize) -> pgqrs::Result<HashSet<i64>> {
    Admin::new(config).await?.create_queue("tasks").await?;
    let payloads: Vec<_> = (0..n).map(|n| json!({ "n": n })).collect();
    let enqueued = Producer::new(config, "tasks")
        .await?
        .enqueue_batch(&payloads)
        .await?;
    Ok(enqueued.iter().map(|e| e.id).collect())
}
