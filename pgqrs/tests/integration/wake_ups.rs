//! Wake-ups of concurrent enqueues: shared, so that notifying transactions do not queue up
//! behind each other's commits, and never lost.

use std::time::{Duration, Instant};

use futures::future::try_join_all;
use pgqrs::{Admin, Config, Job, Producer, Worker};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgListener;

const PRODUCERS: usize = 8;
const ROUNDS: usize = 30;

/// Rounds of 8 producers (one `Producer` each, made from one config) enqueueing one job
/// each at once, into a queue whose only worker polls once an hour: it finds each job
/// through a wake-up or not at all. After every round all jobs so far must have been
/// claimed. A listener counts the wake-ups: fewer than the jobs, since concurrent
/// enqueues share them.
///
/// Fails if an enqueue that committed while another carried the wake-up were not covered
/// by a wake-up sent after its commit (a round's job would wait for the hourly poll), and
/// if every enqueue sent its own (as many wake-ups as jobs).
#[sqlx::test(migrations = "../migrations")]
async fn concurrent_enqueues_share_wake_ups_and_lose_none(pool: PgPool) -> pgqrs::Result<()> {
    let config = Config::from_pool(pool.clone());
    let queue = Admin::new(&config).await?.create_queue("wake").await?.id;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen("pgqrs_jobs").await?;
    let worker = Worker::builder()
        .config(config.clone())
        .poll_interval(Duration::from_secs(3_600))
        .build()
        .handle_queue("wake", Default::default(), |_job: Job<Value>| async {
            Ok::<(), String>(())
        })
        .start()
        .await?;
    let mut producers = Vec::new();
    for _ in 0..PRODUCERS {
        producers.push(Producer::new(&config, "wake").await?);
    }

    for round in 1..=ROUNDS {
        try_join_all(producers.iter().enumerate().map(|(n, producer)| {
            let producer = producer.clone();
            tokio::spawn(async move { producer.enqueue(&json!({"round": round, "n": n})).await })
        }))
        .await
        .expect("producer task")
        .into_iter()
        .collect::<pgqrs::Result<Vec<_>>>()?;
        let enqueued = (round * PRODUCERS) as u64;
        let deadline = Instant::now() + Duration::from_secs(10);
        while worker.stats().claimed < enqueued {
            assert!(
                Instant::now() < deadline,
                "round {round}: {} of {enqueued} jobs claimed; a wake-up was lost",
                worker.stats().claimed
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    worker.shutdown(Duration::from_secs(5)).await?;

    let jobs = ROUNDS * PRODUCERS;
    let mut wake_ups = 0;
    while let Ok(received) =
        tokio::time::timeout(Duration::from_millis(300), listener.try_recv()).await
    {
        match received? {
            Some(notification) if notification.payload() == queue.to_string() => wake_ups += 1,
            Some(_) => {}
            None => break,
        }
    }
    println!("{jobs} jobs, {wake_ups} wake-ups");
    assert!(
        (ROUNDS..jobs).contains(&wake_ups),
        "{wake_ups} wake-ups for {jobs} jobs in {ROUNDS} rounds"
    );
    Ok(())
}
