//! Leases: expiry and redelivery, fencing of stale holders, retries, dead letters, redrive.

use std::time::Duration;

use pgqrs::{Consumer, Error, Nacked, Producer, QueueOptions};
use serde_json::json;
use sqlx::PgPool;

use crate::common::setup;

/// A lease that runs out within the test, long enough that the steps meant to happen while
/// it holds do so even through a pooler on a loaded machine.
const SHORT: Duration = Duration::from_secs(1);

async fn wait_out_lease() {
    tokio::time::sleep(SHORT + Duration::from_millis(150)).await;
}

fn lost_ids(result: pgqrs::Result<impl std::fmt::Debug>) -> Vec<i64> {
    match result {
        Err(Error::LeaseLost { job_ids }) => job_ids,
        other => panic!("expected LeaseLost, got {other:?}"),
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn expired_lease_is_redelivered_with_its_count(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let (config, _admin) = setup(pool, &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let first = Consumer::new(&config, "tasks")
        .await?
        .with_visibility_timeout(SHORT);
    let second = Consumer::new(&config, "tasks").await?;

    let id = producer.enqueue(&json!({"n": 1})).await?.id;
    let job = first.dequeue().await?.expect("job");
    assert_eq!((job.id, job.attempts), (id, 1));
    assert!(second.dequeue().await?.is_none(), "invisible while leased");

    wait_out_lease().await;
    let again = second.dequeue().await?.expect("redelivered after expiry");
    assert_eq!((again.id, again.attempts), (id, 2));

    // The first holder is fenced off from every transition; the new holder is not.
    assert_eq!(lost_ids(first.archive(id, "completed").await), vec![id]);
    assert_eq!(lost_ids(first.delete(id).await), vec![id]);
    assert_eq!(lost_ids(first.nack(id, Duration::ZERO).await), vec![id]);
    assert_eq!(lost_ids(first.extend(id, SHORT).await), vec![id]);
    second.archive(id, "completed").await?;
    assert_eq!(lost_ids(second.archive(id, "twice").await), vec![id]);
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn stale_holder_gets_lease_lost_even_with_its_own_token_in_hand(
    pool: PgPool,
) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let (config, _admin) = setup(pool.clone(), &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let stale = Consumer::new(&config, "tasks")
        .await?
        .with_visibility_timeout(SHORT);
    let fresh = Consumer::new(&config, "tasks").await?;
    let ids: Vec<i64> = producer
        .enqueue_batch(&[json!(1), json!(2), json!(3)])
        .await?
        .iter()
        .map(|e| e.id)
        .collect();

    // One claim per job: a claim leases its batch as one, and only one of these expires.
    for _ in &ids {
        assert!(stale.dequeue().await?.is_some());
    }
    wait_out_lease().await;
    // Only job 2 is claimed again; jobs 1 and 3 expired but nobody took them yet, so the
    // stale holder's token still fences them and its archive goes through.
    sqlx::query(
        "UPDATE pgqrs.leases SET expires_at = now() + interval '1 hour' WHERE NOT ($1 = ANY (ids))",
    )
    .bind(ids[1])
    .execute(&pool)
    .await?;
    let taken = fresh.dequeue().await?.expect("job 2");
    assert_eq!(taken.id, ids[1]);

    let lost = lost_ids(stale.archive_batch(&ids, "completed").await);
    assert_eq!(lost, vec![ids[1]]);
    let archived: i64 = sqlx::query_scalar("SELECT count(*) FROM pgqrs.history")
        .fetch_one(&pool)
        .await?;
    assert_eq!(archived, 2);
    fresh.archive(taken.id, "completed").await?;
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn extend_keeps_a_job_from_redelivery(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let (config, _admin) = setup(pool, &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let holder = Consumer::new(&config, "tasks")
        .await?
        .with_visibility_timeout(SHORT);
    let other = Consumer::new(&config, "tasks").await?;
    let id = producer.enqueue(&json!(1)).await?.id;

    let job = holder.dequeue().await?.expect("job");
    let until = holder.extend(id, Duration::from_secs(60)).await?;
    assert!(until > job.lease_expires_at);
    wait_out_lease().await;
    assert!(
        other.dequeue().await?.is_none(),
        "extended lease still holds"
    );
    holder.archive(id, "completed").await?;
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn nack_retries_then_max_attempts_dead_letters_then_redrive(
    pool: PgPool,
) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let (config, admin) = setup(pool, &[]).await;
    admin
        .create_queue_with("fragile", QueueOptions::builder().max_attempts(3).build())
        .await?;
    let producer = Producer::new(&config, "fragile").await?;
    let consumer = Consumer::new(&config, "fragile")
        .await?
        .with_visibility_timeout(SHORT);
    let id = producer.enqueue(&json!({"poison": true})).await?.id;

    // Delivery 1: nacked with a delay, invisible until then.
    let job = consumer.dequeue().await?.expect("delivery 1");
    let nacked = consumer
        .nack_with_error(id, Duration::from_secs(1), "boom 1")
        .await?;
    assert!(matches!(nacked, Nacked::Retrying { run_at } if run_at > job.enqueued_at));
    assert!(consumer.dequeue().await?.is_none(), "retry delay not over");
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    // Delivery 2: the lease simply expires (a crashed holder).
    assert_eq!(consumer.dequeue().await?.expect("delivery 2").attempts, 2);
    wait_out_lease().await;

    // Delivery 3 is the last allowed; a nack now buries the job.
    let job = consumer.dequeue().await?.expect("delivery 3");
    assert_eq!(job.attempts, 3);
    assert_eq!(
        consumer
            .nack_with_error(id, Duration::ZERO, "boom 3")
            .await?,
        Nacked::DeadLettered
    );
    assert!(consumer.dequeue().await?.is_none());

    let dead = admin.dead_letters("fragile", 10).await?;
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts), (id, 3));
    assert!(dead[0].reason.contains("boom 3"), "{}", dead[0].reason);
    assert_eq!(admin.queue_stats("fragile").await?.dead, 1);

    // Redrive: same id, fresh attempts, deliverable again.
    assert_eq!(admin.redrive("fragile", &[id, 999_999]).await?, vec![id]);
    let job = consumer.dequeue().await?.expect("redriven");
    assert_eq!((job.id, job.attempts), (id, 1));
    assert_eq!(job.payload, json!({"poison": true}));
    consumer.archive(id, "completed").await?;
    assert!(admin.dead_letters("fragile", 10).await?.is_empty());
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn expired_leases_past_max_attempts_are_dead_lettered_at_claim(
    pool: PgPool,
) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let (config, admin) = setup(pool, &[]).await;
    admin
        .create_queue_with("crashy", QueueOptions::builder().max_attempts(2).build())
        .await?;
    let producer = Producer::new(&config, "crashy").await?;
    let consumer = Consumer::new(&config, "crashy")
        .await?
        .with_visibility_timeout(SHORT);
    let ids: Vec<i64> = producer
        .enqueue_batch(&[json!("a"), json!("b")])
        .await?
        .iter()
        .map(|e| e.id)
        .collect();

    for attempt in 1..=2 {
        let jobs = consumer.dequeue_batch(10).await?;
        assert_eq!(jobs.len(), 2, "delivery {attempt}");
        assert!(jobs.iter().all(|job| job.attempts == attempt));
        wait_out_lease().await; // the holder "crashes"
    }
    assert!(
        consumer.dequeue_batch(10).await?.is_empty(),
        "both exhausted"
    );
    let dead: Vec<i64> = admin
        .dead_letters("crashy", 10)
        .await?
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(dead, ids);

    assert_eq!(admin.redrive_all("crashy").await?, ids);
    assert_eq!(consumer.dequeue_batch(10).await?.len(), 2);
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn consumer_initiated_dead_letter_and_purge(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let (config, admin) = setup(pool, &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let consumer = Consumer::new(&config, "tasks").await?;
    let id = producer.enqueue(&json!("poison")).await?.id;
    consumer.dequeue().await?.expect("job");
    consumer.dead_letter(id, "account closed").await?;
    assert_eq!(
        admin.dead_letters("tasks", 10).await?[0].reason,
        "account closed"
    );

    producer.enqueue_batch(&[json!(1), json!(2)]).await?;
    let held = consumer.dequeue().await?.expect("job");
    assert_eq!(admin.purge_queue("tasks").await?, 2);
    assert_eq!(
        lost_ids(consumer.archive(held.id, "completed").await),
        vec![held.id]
    );
    assert_eq!(
        admin.queue_stats("tasks").await?.dead,
        1,
        "purge keeps dead letters"
    );
    Ok(())
}

/// A claim leases its batch as one. Jobs of the batch settled one by one leave the lease;
/// when it runs out, only the jobs it still held are delivered again (each counted), the
/// ones handed back are delivered without counting, and the old holder is fenced off from
/// all of them.
#[sqlx::test(migrations = "../migrations")]
async fn a_batch_settled_in_parts_redelivers_only_what_it_still_held(
    pool: PgPool,
) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let (config, _admin) = setup(pool.clone(), &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let first = Consumer::new(&config, "tasks")
        .await?
        .with_visibility_timeout(SHORT);
    let second = Consumer::new(&config, "tasks").await?;
    let ids: Vec<i64> = producer
        .enqueue_batch(&[json!(1), json!(2), json!(3), json!(4)])
        .await?
        .iter()
        .map(|e| e.id)
        .collect();

    let batch = first.dequeue_batch(4).await?;
    assert_eq!(batch.len(), 4);
    assert!(
        batch
            .iter()
            .all(|job| job.lease.token() == batch[0].lease.token())
    );
    first.archive(ids[0], "completed").await?;
    first.release_batch(&[ids[1]]).await?;
    let held: Vec<i64> = sqlx::query_scalar("SELECT unnest(ids) FROM pgqrs.leases ORDER BY 1")
        .fetch_all(&pool)
        .await?;
    assert_eq!(held, ids[2..], "the lease holds what is left of the batch");

    wait_out_lease().await;
    let again = second.dequeue_batch(10).await?;
    let mut delivered: Vec<(i64, i32)> = again.iter().map(|j| (j.id, j.attempts)).collect();
    delivered.sort_unstable();
    assert_eq!(
        delivered,
        vec![(ids[1], 1), (ids[2], 2), (ids[3], 2)],
        "the released job uncounted, the expired ones counted, the completed one never"
    );
    assert_eq!(
        lost_ids(first.archive_batch(&ids[2..], "late").await),
        ids[2..]
    );
    assert_eq!(lost_ids(first.extend(ids[3], SHORT).await), vec![ids[3]]);
    let history: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, outcome FROM pgqrs.history ORDER BY id")
            .fetch_all(&pool)
            .await?;
    assert_eq!(history, vec![(ids[0], "completed".to_owned())]);
    second.archive_batch(&ids[1..], "completed").await?;
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pgqrs.leases")
            .fetch_one(&pool)
            .await?,
        0,
        "no lease is left once every job of the batches completed"
    );
    Ok(())
}
