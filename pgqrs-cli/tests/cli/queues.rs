//! queue create|list|stats|pause|resume|purge|delete, and worker list.

use std::time::Duration;

use pgqrs::{Config, Consumer, EnqueueOptions, Producer};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{in_snapshots, on, redact_json, redact_times};

#[sqlx::test(migrations = "../migrations")]
async fn queue_commands(pool: PgPool) {
    on(&pool, &["queue", "list"]).ok();
    assert_eq!(on(&pool, &["queue", "list"]).ok(), "no queues\n");
    let created = on(&pool, &["queue", "create", "tasks", "--max-attempts", "3"]).ok();
    on(&pool, &["--json", "queue", "create", "emails"]).ok();
    // Idempotent: the existing queue comes back unchanged.
    on(&pool, &["queue", "create", "tasks"]).ok();
    on(&pool, &["queue", "pause", "emails"]).ok();

    // Two delayed jobs, one leased: deterministic counts and no ready age.
    let config = Config::from_pool(pool.clone());
    let producer = Producer::new(&config, "tasks").await.unwrap();
    let later = EnqueueOptions::builder()
        .delay(Duration::from_secs(3600))
        .build();
    for n in 0..2 {
        producer
            .enqueue_with(&json!({ "n": n }), &later)
            .await
            .unwrap();
    }
    producer.enqueue(&json!({ "n": 2 })).await.unwrap();
    let consumer = Consumer::new(&config, "tasks").await.unwrap();
    consumer.dequeue().await.unwrap().unwrap();

    let list = on(&pool, &["queue", "list"]).ok();
    let list_json = on(&pool, &["--json", "queue", "list"]).ok();
    let stats = on(&pool, &["queue", "stats"]).ok();
    let stats_json = on(&pool, &["--json", "queue", "stats", "tasks"]).ok();
    in_snapshots(|| {
        insta::assert_snapshot!("cli_queue_create", redact_times(&created));
        insta::assert_snapshot!("cli_queue_list", redact_times(&list));
        insta::assert_snapshot!("cli_queue_list_json", redact_json(&list_json));
        insta::assert_snapshot!("cli_queue_stats", stats);
        insta::assert_snapshot!("cli_queue_stats_json", redact_json(&stats_json));
    });

    assert_eq!(
        on(&pool, &["queue", "resume", "emails"]).ok(),
        "resumed queue `emails`\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&on(&pool, &["--json", "queue", "pause", "tasks"]).ok()).unwrap();
    assert_eq!(json, json!({"queue": "tasks", "paused": true}));

    // Purge and delete need --yes.
    let line = on(&pool, &["queue", "purge", "tasks"]).fails(2);
    assert!(line.ends_with("pass --yes to confirm"), "{line}");
    on(&pool, &["queue", "delete", "tasks"]).fails(2);
    assert_eq!(
        on(&pool, &["queue", "purge", "tasks", "--yes"]).ok(),
        "purged 3 jobs from queue `tasks`\n"
    );
    assert_eq!(
        on(&pool, &["queue", "delete", "tasks", "--yes"]).ok(),
        "deleted queue `tasks`\n"
    );
    on(&pool, &["queue", "stats", "tasks"]).fails(4);
    let json: serde_json::Value =
        serde_json::from_str(&on(&pool, &["--json", "queue", "list"]).ok()).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(1));
}

#[sqlx::test(migrations = "../migrations")]
async fn worker_list(pool: PgPool) {
    assert_eq!(
        on(&pool, &["worker", "list"]).ok(),
        "no workers are registered\n"
    );
    sqlx::query("INSERT INTO pgqrs.workers (name, pid, queues) VALUES ('mailer-1', 4242, '{emails,reports}')")
        .execute(&pool)
        .await
        .unwrap();
    let table = on(&pool, &["worker", "list"]).ok();
    let json = on(&pool, &["--json", "worker", "list"]).ok();
    in_snapshots(|| {
        insta::assert_snapshot!("cli_worker_list", redact_times(&table));
        insta::assert_snapshot!("cli_worker_list_json", redact_json(&json));
    });
}
