//! Unique jobs and periodic schedules, under concurrency.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use pgqrs::{Admin, Consumer, EnqueueOptions, Periodic, Producer, Worker};
use serde_json::json;
use sqlx::PgPool;

use crate::common::config_with_pool_size;

#[sqlx::test(migrations = "../migrations")]
async fn unique_keys_hold_under_eight_concurrent_producers(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = config_with_pool_size(&pool, 10).await;
    Admin::new(&config).await?.create_queue("tasks").await?;
    let mut producers = Vec::new();
    for producer_no in 0..8 {
        let config = config.clone();
        producers.push(tokio::spawn(async move {
            let producer = Producer::new(&config, "tasks").await?;
            let mut got = Vec::new();
            for round in 0..40 {
                let key = format!("key-{}", (round + producer_no) % 5);
                let options = EnqueueOptions::builder().unique_key(key.clone()).build();
                let enqueued = producer
                    .enqueue_with(
                        &json!({ "producer": producer_no, "round": round }),
                        &options,
                    )
                    .await?;
                got.push((key, enqueued.id, enqueued.duplicate));
            }
            Ok::<_, pgqrs::Error>(got)
        }));
    }
    let mut ids_by_key: HashMap<String, HashSet<i64>> = HashMap::new();
    let mut inserted = 0;
    for producer in producers {
        for (key, id, duplicate) in producer.await.expect("producer task")? {
            ids_by_key.entry(key).or_default().insert(id);
            inserted += usize::from(!duplicate);
        }
    }
    assert_eq!(ids_by_key.len(), 5);
    for (key, ids) in &ids_by_key {
        assert_eq!(ids.len(), 1, "{key}: every enqueue got the one pending job");
    }
    assert_eq!(inserted, 5, "exactly one insert per key");
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM pgqrs.jobs")
        .fetch_one(&pool)
        .await?;
    assert_eq!(pending, 5);

    // Once the job is done, the key is free again.
    let consumer = Consumer::new(&config, "tasks").await?;
    let ids: Vec<i64> = consumer
        .dequeue_batch(10)
        .await?
        .iter()
        .map(|j| j.id)
        .collect();
    consumer.archive_batch(&ids, "completed").await?;
    let producer = Producer::new(&config, "tasks").await?;
    let again = producer
        .enqueue_with(
            &json!(1),
            &EnqueueOptions::builder().unique_key("key-0").build(),
        )
        .await?;
    assert!(!again.duplicate);
    assert!(!ids_by_key["key-0"].contains(&again.id));
    let batch = producer
        .enqueue_batch_with(
            &[json!(1), json!(2)],
            &EnqueueOptions::builder().unique_key("k").build(),
        )
        .await;
    assert!(matches!(batch, Err(pgqrs::Error::InvalidArgument(_))));
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn a_periodic_schedule_enqueues_once_per_tick_across_workers(
    pool: PgPool,
) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = config_with_pool_size(&pool, 10).await;
    Admin::new(&config).await?.create_queue("ticks").await?;
    let every_second = Periodic::new(
        "heartbeat-job",
        "* * * * * *",
        "ticks",
        &json!({"kind": "tick"}),
    )?;
    let started = Instant::now();
    let mut workers = Vec::new();
    for n in 0..3 {
        workers.push(
            Worker::builder()
                .config(config.clone())
                .name(format!("cron-{n}"))
                .build()
                .periodic(every_second.clone())
                .start()
                .await?,
        );
    }
    let all_running = Instant::now();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let together = all_running.elapsed().as_secs_f64();
    for worker in workers {
        worker.shutdown(Duration::from_secs(5)).await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM pgqrs.jobs")
        .fetch_one(&pool)
        .await?;
    // One job per second boundary crossed while a worker ran: at least one for each whole
    // second all three ran together, at most one more than the seconds from the first
    // start to the last stop. Three workers never make it three.
    assert!(
        jobs as f64 >= together.floor() && jobs as f64 <= elapsed + 1.0,
        "{jobs} jobs in {elapsed:.1} s ({together:.1} s with all 3 workers) on one schedule"
    );
    assert!(jobs >= 2);
    let payloads: Vec<serde_json::Value> = sqlx::query_scalar("SELECT payload FROM pgqrs.jobs")
        .fetch_all(&pool)
        .await?;
    assert!(payloads.iter().all(|p| p == &json!({"kind": "tick"})));
    assert!(Periodic::new("Bad Name", "* * * * *", "ticks", &json!(1)).is_err());
    assert!(Periodic::new("ok", "61 * * * *", "ticks", &json!(1)).is_err());
    Ok(())
}
