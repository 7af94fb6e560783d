//! The pool pgqrs makes from a DSN pings a connection only after it sat idle for a second:
//! a busy connection is handed out without the extra round trip sqlx makes by default.

use std::time::{Duration, Instant};

use pgqrs::{Admin, Config, Producer};
use serde_json::json;
use sqlx::PgPool;

use crate::common::wait_until;
use crate::fault::dsn_of;

/// Ends the backend of `own`'s only connection from outside, once it is back in the pool,
/// and waits until it is gone; returns when the connection went back.
async fn end_the_connection(own: &PgPool, pool: &PgPool) -> pgqrs::Result<Instant> {
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(own)
        .await?;
    // sqlx returns a connection to the pool from a task of its own, after a ping.
    wait_until(Duration::from_secs(5), || async { own.num_idle() == 1 }).await;
    let used = Instant::now();
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(pool)
        .await?;
    assert!(ended, "backend {pid} did not exit");
    Ok(used)
}

/// A connection the server ended while the pool held it (an idle timeout, a failover, a
/// restarted pooler):
/// - used again within the second, it is not pinged first, so that one call fails and the
///   broken connection is dropped; the next call opens a new one;
/// - used again after a second of idleness, it is pinged first and replaced, and the call
///   succeeds.
///
/// The first half fails if the pool pings before every use (sqlx's default), the second if
/// it never pings.
#[sqlx::test(migrations = "../migrations")]
async fn a_connection_is_pinged_before_use_only_after_a_second_idle(
    pool: PgPool,
) -> pgqrs::Result<()> {
    let config = Config::from_dsn(&dsn_of(&pool))?.max_connections(1);
    Admin::new(&config).await?.create_queue("idle").await?;
    let producer = Producer::new(&config, "idle").await?;
    let own = config.pool().await?;

    // A loaded machine may take a second between the two uses; then try again.
    let mut failed = 0;
    for _ in 0..5 {
        let used = end_the_connection(&own, &pool).await?;
        let hot = producer.enqueue(&json!({"n": 1})).await;
        if used.elapsed() >= Duration::from_millis(900) {
            continue; // whether it was pinged first is then up to the clock
        }
        assert!(
            hot.is_err(),
            "a connection used within the second was pinged first: {hot:?}"
        );
        failed += 1;
        producer.enqueue(&json!({"n": 2})).await?;
        break;
    }
    assert_eq!(failed, 1, "never reused the connection within the second");

    end_the_connection(&own, &pool).await?;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    producer.enqueue(&json!({"n": 3})).await?;

    let stored: Vec<i64> =
        sqlx::query_scalar("SELECT (payload->>'n')::bigint FROM pgqrs.jobs ORDER BY id")
            .fetch_all(&pool)
            .await?;
    assert_eq!(stored.last(), Some(&3));
    assert!(stored.contains(&2));
    Ok(())
}
