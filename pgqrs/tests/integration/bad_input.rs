//! Bad input gets a clear error and loses nothing.

use pgqrs::{Admin, Config, Consumer, Error, Job, Producer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

use crate::common::setup;

#[derive(Debug, PartialEq, Serialize, Deserialize, Job)]
#[pgqrs(queue = "emails")]
struct SendEmail {
    to: String,
}

#[sqlx::test(migrations = "../migrations")]
async fn undecodable_payload_is_dead_lettered_not_lost(pool: PgPool) -> pgqrs::Result<()> {
    let (config, admin) = setup(pool, &["emails"]).await;
    let raw = Producer::new(&config, "emails").await?;
    let consumer = Consumer::<SendEmail>::typed(&config).await?;

    let bad = raw.enqueue(&json!({"to": 42})).await?.id;
    match consumer.dequeue().await {
        Err(Error::Decode {
            id,
            queue,
            type_name,
            ..
        }) => {
            assert_eq!((id, queue.as_str()), (bad, "emails"));
            assert!(type_name.ends_with("SendEmail"), "{type_name}");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    let dead = admin.dead_letters("emails", 10).await?;
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, &dead[0].payload), (bad, &json!({"to": 42})));
    assert!(dead[0].reason.contains("SendEmail"), "{}", dead[0].reason);

    // In a batch, the good jobs around a bad one are handed back untouched.
    let good = |to: &str| json!({ "to": to });
    let ids: Vec<i64> = raw
        .enqueue_batch(&[good("a@x"), json!("not an object"), good("b@x")])
        .await?
        .iter()
        .map(|e| e.id)
        .collect();
    match consumer.dequeue_batch(10).await {
        Err(Error::Decode { id, .. }) => assert_eq!(id, ids[1]),
        other => panic!("expected Decode, got {other:?}"),
    }
    let jobs = consumer.dequeue_batch(10).await?;
    let got: Vec<(i64, i32, &str)> = jobs
        .iter()
        .map(|j| (j.id, j.attempts, j.payload.to.as_str()))
        .collect();
    assert_eq!(got, vec![(ids[0], 1, "a@x"), (ids[2], 1, "b@x")]);

    let stats = admin.queue_stats("emails").await?;
    assert_eq!((stats.leased, stats.dead), (2, 2), "nothing dropped");
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn hostile_queue_names_are_rejected_everywhere(pool: PgPool) -> pgqrs::Result<()> {
    let (config, admin) = setup(pool.clone(), &[]).await;
    let count_tables = || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_tables WHERE schemaname = 'pgqrs'")
            .fetch_one(&pool)
    };
    let tables_before = count_tables().await?;
    let long = "q".repeat(10_000);
    let hostile = [
        "",
        "Tasks",
        "tasks'; DROP TABLE pgqrs.jobs; --",
        "tasks\"",
        "tâches",
        "🦀",
        "a b",
        "pgqrs.jobs",
        "tasks\0",
        long.as_str(),
    ];
    for name in hostile {
        let is_invalid = |r: &pgqrs::Result<_>| matches!(r, Err(Error::InvalidQueueName { .. }));
        assert!(
            is_invalid(&admin.create_queue(name).await.map(|_| ())),
            "{name:?}"
        );
        assert!(
            is_invalid(&Producer::new(&config, name).await.map(|_| ())),
            "{name:?}"
        );
        assert!(
            is_invalid(&Consumer::new(&config, name).await.map(|_| ())),
            "{name:?}"
        );
        assert!(
            is_invalid(&admin.queue_stats(name).await.map(|_| ())),
            "{name:?}"
        );
        assert!(is_invalid(&admin.delete_queue(name).await), "{name:?}");
    }
    assert_eq!(count_tables().await?, tables_before, "schema intact");
    assert!(admin.list_queues().await?.is_empty());

    // The same rule holds in SQL, for clients that bypass the library.
    let direct = sqlx::query("INSERT INTO pgqrs.queues (name) VALUES ('Bad Name')")
        .execute(&pool)
        .await;
    assert!(direct.is_err());
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_queue_and_oversized_payloads(pool: PgPool) -> pgqrs::Result<()> {
    let (config, _admin) = setup(pool, &["tasks"]).await;
    match Producer::new(&config, "nope").await {
        Err(Error::QueueNotFound { queue }) => assert_eq!(queue, "nope"),
        other => panic!("expected QueueNotFound, got {other:?}"),
    }
    assert!(matches!(
        Consumer::<SendEmail>::typed(&config).await,
        Err(Error::QueueNotFound { .. })
    ));

    let small = config.clone().max_payload_bytes(64);
    let producer = Producer::new(&small, "tasks").await?;
    producer.enqueue(&json!("fits")).await?;
    let big = json!({ "blob": "x".repeat(100) });
    match producer.enqueue_batch(&[json!(1), big]).await {
        Err(Error::PayloadTooLarge { size, limit }) => assert_eq!((size, limit), (111, 64)),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    let consumer = Consumer::new(&config, "tasks").await?;
    assert_eq!(
        consumer.dequeue_batch(10).await?.len(),
        1,
        "the rejected batch wrote nothing"
    );
    assert!(matches!(
        consumer.dequeue_batch(0).await,
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

#[sqlx::test(migrations = false)]
async fn not_installed_database_says_so(pool: PgPool) -> pgqrs::Result<()> {
    let config = Config::from_pool(pool);
    let admin = Admin::new(&config).await?;
    assert!(matches!(admin.verify().await, Err(Error::NotInstalled)));
    assert!(matches!(
        admin.create_queue("tasks").await,
        Err(Error::NotInstalled)
    ));
    assert!(matches!(
        Producer::new(&config, "tasks").await,
        Err(Error::NotInstalled)
    ));
    assert!(matches!(
        Consumer::new(&config, "tasks").await,
        Err(Error::NotInstalled)
    ));
    assert!(matches!(
        admin.list_queues().await,
        Err(Error::NotInstalled)
    ));

    admin.install().await?;
    admin.verify().await?;
    admin.install().await?; // idempotent
    admin.verify().await?;
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn schema_version_drift_is_reported_with_a_hint(pool: PgPool) -> pgqrs::Result<()> {
    let (_config, admin) = setup(pool.clone(), &[]).await;
    admin.verify().await?;

    // A newer pgqrs migrated this database.
    sqlx::query(
        "INSERT INTO pgqrs._sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99990101000000, 'from the future', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await?;
    for result in [admin.verify().await, admin.install().await] {
        match result {
            Err(Error::SchemaVersion { found, hint, .. }) => {
                assert_eq!(found, 99990101000000);
                assert!(hint.contains("upgrade"), "{hint}");
            }
            other => panic!("expected SchemaVersion, got {other:?}"),
        }
    }

    // An older schema: pretend our latest migration has not run.
    sqlx::query("DELETE FROM pgqrs._sqlx_migrations WHERE version <> 1")
        .execute(&pool)
        .await?;
    sqlx::query("UPDATE pgqrs._sqlx_migrations SET version = 0")
        .execute(&pool)
        .await?;
    match admin.verify().await {
        Err(Error::SchemaVersion {
            found: 0,
            expected,
            hint,
        }) => {
            assert!(expected >= 1);
            assert!(hint.contains("install"), "{hint}");
        }
        other => panic!("expected SchemaVersion, got {other:?}"),
    }
    Ok(())
}
