//! Installation and queue management.

use pgqrs::{Admin, Config, Consumer, Error, Producer, QueueOptions};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{config_with_pool_size, setup};

#[sqlx::test(migrations = false)]
async fn concurrent_installs_all_succeed(pool: PgPool) -> pgqrs::Result<()> {
    let config = config_with_pool_size(&pool, 4).await;
    let installs: Vec<_> = (0..4)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move { Admin::new(&config).await?.install().await })
        })
        .collect();
    for install in installs {
        install.await.expect("install task")?;
    }
    Admin::new(&config).await?.verify().await?;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM pgqrs._sqlx_migrations")
        .fetch_one(&pool)
        .await?;
    assert!(applied >= 1);
    let stray: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE tablename = '_sqlx_migrations' AND schemaname <> 'pgqrs'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(stray, 0, "bookkeeping stays inside the pgqrs schema");
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn queues_are_created_once_listed_and_deleted(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let (config, admin) = setup(pool.clone(), &[]).await;
    let tasks = admin.create_queue("tasks").await?;
    assert_eq!(tasks.max_attempts, pgqrs::DEFAULT_MAX_ATTEMPTS);
    let again = admin
        .create_queue_with("tasks", QueueOptions::builder().max_attempts(2).build())
        .await?;
    assert_eq!(
        again, tasks,
        "create is idempotent and does not alter an existing queue"
    );
    admin.create_queue("emails").await?;
    let names: Vec<String> = admin
        .list_queues()
        .await?
        .iter()
        .map(|q| q.name.to_string())
        .collect();
    assert_eq!(names, vec!["emails", "tasks"]);
    assert!(matches!(
        admin
            .create_queue_with("zero", QueueOptions::builder().max_attempts(0).build())
            .await,
        Err(Error::InvalidArgument(_))
    ));

    let producer = Producer::new(&config, "tasks").await?;
    let consumer = Consumer::new(&config, "tasks").await?;
    producer
        .enqueue_batch(&[json!(1), json!(2), json!(3)])
        .await?;
    let archived = consumer.dequeue().await?.expect("job");
    consumer.archive(archived.id, "completed").await?;
    let dead = consumer.dequeue().await?.expect("job");
    consumer.dead_letter(dead.id, "bad").await?;

    admin.delete_queue("tasks").await?;
    assert!(
        matches!(
            producer.enqueue(&json!(4)).await,
            Err(Error::QueueNotFound { .. })
        ),
        "a producer of a deleted queue writes nothing"
    );
    assert!(matches!(
        admin.delete_queue("tasks").await,
        Err(Error::QueueNotFound { .. })
    ));
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pgqrs.jobs) + (SELECT count(*) FROM pgqrs.archive)
              + (SELECT count(*) FROM pgqrs.dead_letters)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        leftovers, 0,
        "jobs, archive and dead letters went with the queue"
    );
    assert_eq!(admin.list_queues().await?.len(), 1);
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn stats_count_each_state(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let (config, admin) = setup(pool, &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let consumer = Consumer::new(&config, "tasks").await?;
    producer
        .enqueue_batch(&[json!(1), json!(2), json!(3), json!(4)])
        .await?;
    let later = pgqrs::EnqueueOptions::builder()
        .delay(std::time::Duration::from_secs(3600))
        .build();
    producer.enqueue_with(&json!("later"), &later).await?;
    let held = consumer.dequeue().await?.expect("job");
    let poison = consumer.dequeue().await?.expect("job");
    consumer.dead_letter(poison.id, "poison").await?;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let stats = admin.queue_stats("tasks").await?;
    assert_eq!(stats.queue.as_str(), "tasks");
    assert_eq!(
        (stats.ready, stats.leased, stats.delayed, stats.dead),
        (2, 1, 1, 1)
    );
    let age = stats.oldest_ready_age.expect("ready jobs have an age");
    assert!(age >= std::time::Duration::from_millis(20), "{age:?}");
    consumer.archive(held.id, "completed").await?;
    Ok(())
}

#[sqlx::test(migrations = false)]
async fn config_from_dsn_reaches_the_server(pool: PgPool) -> pgqrs::Result<()> {
    let options = pool.connect_options();
    let dsn = format!(
        "postgresql://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    );
    let config = Config::from_dsn(&dsn)?.max_connections(2);
    let admin = Admin::new(&config).await?;
    admin.install().await?;
    admin.verify().await?;
    assert_eq!(config.to_string(), dsn);
    Ok(())
}
