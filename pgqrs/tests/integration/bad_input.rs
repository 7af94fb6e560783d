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

/// Row counts of every pgqrs table: what "nothing was written" is checked against.
async fn row_counts(pool: &PgPool) -> Vec<(String, i64)> {
    let tables = [
        "queues",
        "jobs",
        "archive",
        "dead_letters",
        "runs",
        "steps",
        "signals",
        "workers",
        "periodic_ticks",
    ];
    let mut counts = Vec::new();
    for table in tables {
        let sql = format!("SELECT count(*) FROM pgqrs.{table}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap();
        counts.push((table.to_owned(), n));
    }
    counts
}

fn hostile_names(long: &str) -> Vec<&str> {
    vec![
        "",
        "Report",
        "report'; DROP TABLE pgqrs.runs; --",
        "report\"",
        "report;",
        "rapport-été",
        "🦀",
        "a b",
        "pgqrs.runs",
        "report\0",
        "x".repeat(61).leak(),
        long,
    ]
}

#[sqlx::test(migrations = "../migrations")]
async fn hostile_workflow_names_are_rejected_and_write_nothing(pool: PgPool) -> pgqrs::Result<()> {
    use pgqrs::workflow::Workflow;

    let (config, _admin) = setup(pool.clone(), &[]).await;
    let before = row_counts(&pool).await;
    let long = "w".repeat(10_000);
    for name in hostile_names(&long) {
        let is_invalid = |r: pgqrs::Result<()>| match r {
            Err(Error::InvalidArgument(message)) => {
                assert!(message.starts_with("invalid workflow name"), "{message}");
                assert!(message.len() < 300, "the name is shortened: {message}");
                true
            }
            _ => false,
        };
        assert!(
            is_invalid(Workflow::create(&pool, name, &1).await.map(|_| ())),
            "{name:?}"
        );
        assert!(
            is_invalid(Workflow::enqueue(&config, name, &1).await.map(|_| ())),
            "{name:?}"
        );
        assert!(
            is_invalid(Workflow::claim_next(&config, name).await.map(|_| ())),
            "{name:?}"
        );
    }
    assert_eq!(row_counts(&pool).await, before, "nothing written");
    // A valid name still works, and 60 characters is the limit.
    Workflow::enqueue(&config, &"x".repeat(60), &1).await?;
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn hostile_signal_names_and_payloads_are_rejected_and_write_nothing(
    pool: PgPool,
) -> pgqrs::Result<()> {
    use pgqrs::workflow::Workflow;

    let (config, _admin) = setup(pool.clone(), &[]).await;
    let run = Workflow::enqueue(&config, "report", &1).await?;
    let before = row_counts(&pool).await;
    let long = "s".repeat(10_000);
    for name in ["", "go\0", "go\n", long.as_str()] {
        match Workflow::send(&pool, run.run_id(), name, &true).await {
            Err(Error::InvalidArgument(message)) => {
                assert!(message.starts_with("invalid signal name"), "{message}")
            }
            other => panic!("{name:?}: expected InvalidArgument, got {other:?}"),
        }
    }
    // Quotes, semicolons and unicode are just text: they are sent as parameters.
    let odd = "go'; DROP TABLE pgqrs.signals; -- 🦀";
    Workflow::send(&pool, run.run_id(), odd, &true).await?;
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM pgqrs.signals")
        .fetch_all(&pool)
        .await?;
    assert_eq!(names, vec![odd.to_owned()]);
    sqlx::query("DELETE FROM pgqrs.signals")
        .execute(&pool)
        .await?;

    // Payloads jsonb cannot store are refused before anything is written.
    let nul = json!({"text": "a\0b"});
    assert!(matches!(
        Workflow::send(&pool, run.run_id(), "go", &nul).await,
        Err(Error::Encode(_))
    ));
    assert!(matches!(
        Workflow::enqueue(&config, "report", &nul).await,
        Err(Error::Encode(_))
    ));
    assert!(matches!(
        Workflow::create(&pool, "report", &nul).await,
        Err(Error::Encode(_))
    ));
    assert_eq!(row_counts(&pool).await, before, "nothing written");
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn huge_and_invalid_payloads_are_rejected_and_write_nothing(
    pool: PgPool,
) -> pgqrs::Result<()> {
    use std::collections::HashMap;

    let (config, _admin) = setup(pool.clone(), &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let before = row_counts(&pool).await;

    // Over the default limit (1 MiB).
    let huge = json!({ "blob": "x".repeat(pgqrs::DEFAULT_MAX_PAYLOAD_BYTES) });
    match producer.enqueue(&huge).await {
        Err(err @ Error::PayloadTooLarge { .. }) => {
            assert!(err.to_string().contains("max_payload_bytes"), "{err}")
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    match producer.enqueue_batch(&[json!(1), json!(2), huge]).await {
        Err(Error::PayloadTooLarge { .. }) => {}
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    // Not representable as JSON, or not storable in jsonb.
    #[derive(Serialize, Deserialize, Job)]
    #[pgqrs(queue = "tasks")]
    struct Unkeyed {
        map: HashMap<(u8, u8), u8>,
    }
    let unkeyed = Unkeyed {
        map: HashMap::from([((1, 2), 3)]),
    };
    let typed = Producer::<Unkeyed>::typed(&config).await?;
    assert!(matches!(
        pgqrs::workflow::Workflow::enqueue(&config, "report", &unkeyed).await,
        Err(Error::Encode(_))
    ));
    match typed.enqueue(&unkeyed).await {
        Err(err @ Error::Encode(_)) => {
            assert!(
                err.to_string()
                    .starts_with("payload does not serialize to JSON"),
                "{err}"
            )
        }
        other => panic!("expected Encode, got {other:?}"),
    }
    for bad in [
        json!("nul \0 inside"),
        json!({"k\0": 1}),
        json!([1, {"a": "\0"}]),
    ] {
        match producer.enqueue(&bad).await {
            Err(err @ Error::Encode(_)) => assert!(err.to_string().contains("NUL"), "{err}"),
            other => panic!("{bad}: expected Encode, got {other:?}"),
        }
        assert!(matches!(
            producer.enqueue_batch(&[json!(1), bad]).await,
            Err(Error::Encode(_))
        ));
    }
    assert_eq!(row_counts(&pool).await, before, "nothing written");

    // What does fit goes through intact, odd characters included.
    let odd = json!({"q": "it's \"quoted\"; DROP TABLE pgqrs.jobs; --", "u": "🦀 \u{202e} é", "esc": "\\u0000"});
    producer.enqueue(&odd).await?;
    let stored: serde_json::Value = sqlx::query_scalar("SELECT payload FROM pgqrs.jobs")
        .fetch_one(&pool)
        .await?;
    assert_eq!(stored, odd);
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn workflow_inputs_and_signals_over_the_limit_are_refused(pool: PgPool) -> pgqrs::Result<()> {
    use pgqrs::workflow::Workflow;

    // The producers' limit holds for workflow inputs and signals, through a config (its
    // `max_payload_bytes`) or a bare pool (the default).
    let (config, _admin) = setup(pool.clone(), &[]).await;
    let huge = json!({ "blob": "x".repeat(pgqrs::DEFAULT_MAX_PAYLOAD_BYTES) });
    let run = Workflow::enqueue(&config, "report", &1).await?;
    let before = row_counts(&pool).await;
    let small = config.clone().max_payload_bytes(64);
    let refusals = [
        Workflow::enqueue(&config, "report", &huge)
            .await
            .map(|_| ()),
        Workflow::create(&pool, "report", &huge).await.map(|_| ()),
        Workflow::enqueue(&small, "report", &"y".repeat(100))
            .await
            .map(|_| ()),
        Workflow::send(&config, run.run_id(), "go", &huge).await,
        Workflow::send(&small, run.run_id(), "go", &"y".repeat(100)).await,
    ];
    for refused in refusals {
        assert!(
            matches!(refused, Err(Error::PayloadTooLarge { .. })),
            "{refused:?}"
        );
    }

    assert_eq!(row_counts(&pool).await, before, "nothing written");
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn malformed_dsns_are_clear_errors_without_the_password(pool: PgPool) -> pgqrs::Result<()> {
    let secret = "s3cr3t-pw";
    let malformed = [
        String::new(),
        "garbage".into(),
        format!("postgres://u:{secret}@host:notaport/db"),
        format!("postgres://u:{secret}@host:99999/db"),
        format!("postgresql://u:{secret}@[::1/db"),
        format!("mysql://u:{secret}@host/db"),
        format!("postgres://u:{secret}@host/db?sslmode=sometimes"),
        format!("postgres://u:{secret}@host/db?port=x"),
    ];
    for dsn in &malformed {
        match Config::from_dsn(dsn) {
            Err(err @ Error::InvalidDsn { .. }) => {
                let shown = format!("{err} {err:?}");
                assert!(!shown.contains(secret), "{dsn}: {shown}");
                assert!(shown.starts_with("invalid DSN: "), "{dsn}: {shown}");
            }
            other => panic!("{dsn:?}: expected InvalidDsn, got {other:?}"),
        }
    }

    // Well-formed but unreachable: the connection error does not show it either.
    let unreachable = format!("postgres://u:{secret}@127.0.0.1:1/db");
    let config = Config::from_dsn(&unreachable)?.acquire_timeout(std::time::Duration::from_secs(2));
    assert!(!format!("{config:?}").contains(secret));
    match Admin::new(&config).await {
        Err(err) => {
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(secret), "{shown}");
        }
        Ok(_) => panic!("connected to port 1?"),
    }
    drop(pool);
    Ok(())
}

#[pgqrs::pgqrs_step]
async fn nul_output(ctx: &pgqrs::workflow::Workflow) -> anyhow::Result<String> {
    Ok("a\0b".into())
}

#[pgqrs::pgqrs_workflow]
async fn nul_flow(ctx: &pgqrs::workflow::Workflow, _n: u32) -> anyhow::Result<String> {
    nul_output(ctx).await
}

#[sqlx::test(migrations = "../migrations")]
async fn a_step_output_jsonb_cannot_store_fails_the_run_cleanly(
    pool: PgPool,
) -> anyhow::Result<()> {
    use pgqrs::workflow::{RunStatus, Workflow};

    let workflow = Workflow::create(&pool, "nul_flow", &1).await?;
    let err = nul_flow(&workflow, 1).await.unwrap_err();
    assert!(format!("{err:#}").contains("NUL"), "{err:#}");
    assert_eq!(workflow.handle().status().await?, RunStatus::Failed);
    let steps: i64 = sqlx::query_scalar("SELECT count(*) FROM pgqrs.steps")
        .fetch_one(&pool)
        .await?;
    assert_eq!(steps, 0, "nothing recorded half-way");
    Ok(())
}
