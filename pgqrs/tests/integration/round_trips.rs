//! The seed's flow, typed and batch round trips, scheduling and transactional enqueue.

use std::time::Duration;

use pgqrs::{Admin, Config, Consumer, EnqueueOptions, Job, Producer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

use crate::common::setup;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Job)]
#[pgqrs(queue = "emails")]
struct SendEmail {
    to: String,
    subject: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Job)]
#[pgqrs(queue = "thumbnails")]
enum Thumbnail {
    Resize { width: u32 },
    Crop(u32, u32),
}

/// The seed's queue example, step by step, against a fresh database.
#[sqlx::test(migrations = false)]
async fn quickstart_flow(pool: PgPool) -> pgqrs::Result<()> {
    let config = Config::from_pool(pool.clone());
    let admin = Admin::new(&config).await?;
    admin.install().await?;
    admin.create_queue("tasks").await?;

    let producer = Producer::new(&config, "tasks").await?;
    let message = producer
        .enqueue(&json!({"task": "send_email", "to": "user@example.com"}))
        .await?;

    let consumer = Consumer::new(&config, "tasks").await?;
    let msg = consumer.dequeue().await?.expect("the job just enqueued");
    assert_eq!(msg.id, message.id);
    assert_eq!(
        msg.payload,
        json!({"task": "send_email", "to": "user@example.com"})
    );
    assert_eq!(msg.attempts, 1);
    consumer.archive(msg.id, "completed").await?;

    assert!(consumer.dequeue().await?.is_none());
    let (outcome, attempts): (String, i32) =
        sqlx::query_as("SELECT outcome, attempts FROM pgqrs.archive WHERE id = $1")
            .bind(message.id)
            .fetch_one(&pool)
            .await?;
    assert_eq!((outcome.as_str(), attempts), ("completed", 1));
    let stats = admin.queue_stats("tasks").await?;
    assert_eq!(
        (stats.ready, stats.leased, stats.delayed, stats.dead),
        (0, 0, 0, 0)
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn typed_round_trip(pool: PgPool) -> pgqrs::Result<()> {
    let (config, _admin) = setup(pool, &["emails", "thumbnails"]).await;
    let producer = Producer::<SendEmail>::typed(&config).await?;
    let consumer = Consumer::<SendEmail>::typed(&config).await?;
    assert_eq!(producer.queue().name.as_str(), "emails");

    let email = SendEmail {
        to: "a@example.com".into(),
        subject: "hi".into(),
    };
    let enqueued = producer.enqueue(&email).await?;
    let job = consumer.dequeue().await?.expect("a job");
    assert_eq!((job.id, &job.payload), (enqueued.id, &email));
    consumer.archive(job.id, "sent").await?;

    // Enums travel too, each variant intact.
    let thumbs = Producer::<Thumbnail>::typed(&config).await?;
    let thumb_consumer = Consumer::<Thumbnail>::typed(&config).await?;
    let sent = vec![Thumbnail::Resize { width: 64 }, Thumbnail::Crop(3, 4)];
    thumbs.enqueue_batch(&sent).await?;
    let got: Vec<Thumbnail> = thumb_consumer
        .dequeue_batch(10)
        .await?
        .into_iter()
        .map(|job| job.payload)
        .collect();
    assert_eq!(got, sent);
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn batch_round_trip(pool: PgPool) -> pgqrs::Result<()> {
    let (config, admin) = setup(pool, &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let consumer = Consumer::new(&config, "tasks").await?;

    let payloads: Vec<_> = (0..250).map(|n| json!({ "n": n })).collect();
    let enqueued = producer.enqueue_batch(&payloads).await?;
    assert_eq!(enqueued.len(), 250);
    assert!(
        enqueued.windows(2).all(|w| w[0].id < w[1].id),
        "ids in input order"
    );

    let mut seen = Vec::new();
    loop {
        let jobs = consumer.dequeue_batch(100).await?;
        if jobs.is_empty() {
            break;
        }
        assert!(jobs.len() <= 100);
        let ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
        consumer.archive_batch(&ids, "completed").await?;
        seen.extend(jobs.into_iter().map(|job| (job.id, job.payload)));
    }
    let expected: Vec<_> = enqueued.iter().map(|e| e.id).zip(payloads).collect();
    assert_eq!(
        seen, expected,
        "FIFO within one priority, payload matches its id"
    );
    assert_eq!(admin.queue_stats("tasks").await?.ready, 0);
    assert!(producer.enqueue_batch(&[]).await?.is_empty());
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn priority_and_delay_order_claims(pool: PgPool) -> pgqrs::Result<()> {
    let (config, admin) = setup(pool, &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let consumer = Consumer::new(&config, "tasks").await?;
    let with = |priority: i16, delay_ms: u64| {
        EnqueueOptions::builder()
            .priority(priority)
            .delay(Duration::from_millis(delay_ms))
            .build()
    };

    let low = producer.enqueue_with(&json!("low"), &with(-5, 0)).await?;
    let normal = producer.enqueue_with(&json!("normal"), &with(0, 0)).await?;
    let delayed_urgent = producer
        .enqueue_with(&json!("delayed"), &with(100, 2_000))
        .await?;
    let high = producer.enqueue_with(&json!("high"), &with(10, 0)).await?;
    let normal2 = producer
        .enqueue_with(&json!("normal2"), &with(0, 0))
        .await?;
    assert!(delayed_urgent.run_at > normal.run_at);

    let stats = admin.queue_stats("tasks").await?;
    assert_eq!((stats.ready, stats.delayed), (4, 1));

    let mut order = Vec::new();
    while let Some(job) = consumer.dequeue().await? {
        order.push(job.id);
        consumer.delete(job.id).await?;
    }
    assert_eq!(
        order,
        vec![high.id, normal.id, normal2.id, low.id],
        "delayed job not yet due"
    );

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let job = consumer.dequeue().await?.expect("delayed job is due now");
    assert_eq!(job.id, delayed_urgent.id);

    // An absolute start time in the future hides the job until then.
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    let scheduled = producer
        .enqueue_with(
            &json!("tomorrow-ish"),
            &EnqueueOptions::builder().run_at(at).build(),
        )
        .await?;
    assert!((scheduled.run_at - at).num_milliseconds().abs() < 2);
    assert!(consumer.dequeue().await?.is_none());
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn enqueue_in_the_callers_transaction(pool: PgPool) -> pgqrs::Result<()> {
    let (config, _admin) = setup(pool.clone(), &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let consumer = Consumer::new(&config, "tasks").await?;

    let mut tx = pool.begin().await?;
    producer
        .enqueue_tx(&mut tx, &json!("rolled back"), &EnqueueOptions::default())
        .await?;
    tx.rollback().await?;
    assert!(
        consumer.dequeue().await?.is_none(),
        "rollback leaves no job"
    );

    let mut tx = pool.begin().await?;
    let first = producer
        .enqueue_tx(&mut tx, &json!("committed"), &EnqueueOptions::default())
        .await?;
    let rest = producer
        .enqueue_batch_tx(&mut tx, &[json!(1), json!(2)], &EnqueueOptions::default())
        .await?;
    assert!(
        consumer.dequeue().await?.is_none(),
        "invisible before commit"
    );
    tx.commit().await?;

    let ids: Vec<i64> = consumer
        .dequeue_batch(10)
        .await?
        .iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(ids, vec![first.id, rest[0].id, rest[1].id]);
    Ok(())
}
