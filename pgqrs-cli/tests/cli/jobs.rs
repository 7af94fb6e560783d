//! dlq list|redrive and job show|retry|cancel.

use std::time::Duration;

use pgqrs::{Admin, Config, Consumer, EnqueueOptions, Producer, QueueOptions};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{in_snapshots, on, redact_json, redact_times};

/// Queue `tasks` with jobs 1 (dead, "smtp timeout"), 2 (leased), 3 (delayed), 4 (ready).
async fn fixture(pool: &PgPool) -> Consumer {
    let config = Config::from_pool(pool.clone());
    let admin = Admin::new(&config).await.unwrap();
    admin
        .create_queue_with("tasks", QueueOptions::builder().max_attempts(3).build())
        .await
        .unwrap();
    let producer = Producer::new(&config, "tasks").await.unwrap();
    producer
        .enqueue(&json!({"to": "a@example.com"}))
        .await
        .unwrap();
    producer
        .enqueue(&json!({"to": "b@example.com"}))
        .await
        .unwrap();
    let later = EnqueueOptions::builder()
        .delay(Duration::from_secs(3600))
        .build();
    producer
        .enqueue_with(&json!({"to": "c@example.com"}), &later)
        .await
        .unwrap();
    let consumer = Consumer::new(&config, "tasks").await.unwrap();
    let first = consumer.dequeue().await.unwrap().unwrap();
    assert_eq!(first.id, 1);
    consumer
        .dead_letter(first.id, "smtp timeout")
        .await
        .unwrap();
    let second = consumer.dequeue().await.unwrap().unwrap();
    assert_eq!(second.id, 2);
    producer
        .enqueue(&json!({"to": "d@example.com"}))
        .await
        .unwrap();
    consumer
}

#[sqlx::test(migrations = "../migrations")]
async fn dead_letters_list_and_redrive(pool: PgPool) {
    let _consumer = fixture(&pool).await;
    let list = on(&pool, &["dlq", "list", "tasks"]).ok();
    let list_json = on(&pool, &["--json", "dlq", "list", "tasks"]).ok();
    in_snapshots(|| {
        insta::assert_snapshot!("cli_dlq_list", redact_times(&list));
        insta::assert_snapshot!("cli_dlq_list_json", redact_json(&list_json));
    });
    assert_eq!(
        on(&pool, &["dlq", "redrive", "tasks", "1", "7"]).ok(),
        "redrove 1 dead letter into queue `tasks`: 1\nnot dead letters of queue `tasks`: 7\n"
    );
    assert_eq!(
        on(&pool, &["dlq", "list", "tasks"]).ok(),
        "queue `tasks` has no dead letters\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&on(&pool, &["--json", "dlq", "redrive", "tasks", "--all"]).ok())
            .unwrap();
    assert_eq!(
        json,
        json!({"queue": "tasks", "redriven": [], "not_found": []})
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn job_show_retry_cancel(pool: PgPool) {
    let _consumer = fixture(&pool).await;

    let dead = on(&pool, &["job", "show", "1"]).ok();
    let leased = on(&pool, &["job", "show", "2"]).ok();
    let delayed_json = on(&pool, &["--json", "job", "show", "3"]).ok();
    in_snapshots(|| {
        insta::assert_snapshot!("cli_job_show_dead", redact_times(&dead));
        insta::assert_snapshot!("cli_job_show_leased", redact_times(&leased));
        insta::assert_snapshot!("cli_job_show_delayed_json", redact_json(&delayed_json));
    });

    // A leased job belongs to its holder.
    let line = on(&pool, &["job", "cancel", "2"]).fails(1);
    assert!(
        line.starts_with("error: job 2 is leased by a consumer"),
        "{line}"
    );
    on(&pool, &["job", "retry", "2"]).fails(1);

    // Retry: a dead job goes back to its queue, a delayed one is due now.
    assert_eq!(
        on(&pool, &["job", "retry", "1"]).ok(),
        "job 1 was dead; it is ready in queue `tasks`\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&on(&pool, &["--json", "job", "retry", "3"]).ok()).unwrap();
    assert_eq!(
        json,
        json!({"id": 3, "queue": "tasks", "was": "delayed", "state": "ready"})
    );

    // Cancel: a waiting job is archived as cancelled; cancelling again changes nothing.
    assert_eq!(
        on(&pool, &["job", "cancel", "4"]).ok(),
        "cancelled job 4 of queue `tasks` (it was ready); it is archived with the outcome `cancelled`\n"
    );
    assert_eq!(
        on(&pool, &["job", "cancel", "4"]).ok(),
        "job 4 had already finished (archived): nothing to cancel\n"
    );
    let cancelled = on(&pool, &["job", "show", "4"]).ok();
    in_snapshots(|| insta::assert_snapshot!("cli_job_show_cancelled", redact_times(&cancelled)));

    // A cancelled (archived) job can be retried.
    assert_eq!(
        on(&pool, &["job", "retry", "4"]).ok(),
        "job 4 was archived; it is ready in queue `tasks`\n"
    );
}
