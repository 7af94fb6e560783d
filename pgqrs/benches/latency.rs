//! End-to-end latency, enqueue call to handler start, with a producer at 200 jobs/s:
//! a pgqrs worker at default settings (LISTEN/NOTIFY), the same worker polling only, and a
//! hand-written LISTEN + claim loop in raw SQL as the baseline, in the same process, on
//! the same database. Run with `cargo bench -p pgqrs --bench latency` (`-- --quick` for a
//! short run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pgqrs::{Admin, Config, Job, Producer, Worker};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const RATE_PER_SEC: u64 = 200;

/// Microseconds since the start of the process: the clock payloads carry.
fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

#[derive(Serialize, Deserialize, Job)]
#[pgqrs(queue = "latency")]
struct Ping {
    sent_us: u64,
    pad: String,
}

#[tokio::main]
async fn main() -> Res<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 3 } else { 15 };
    let server: PgConnectOptions = std::env::var("PGQRS_BENCH_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
        .parse()?;
    let admin_pool = PgPool::connect_with(server.clone()).await?;
    sqlx::query("DROP DATABASE IF EXISTS pgqrs_bench_latency WITH (FORCE)")
        .execute(&admin_pool)
        .await?;
    sqlx::query("CREATE DATABASE pgqrs_bench_latency")
        .execute(&admin_pool)
        .await?;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(server.database("pgqrs_bench_latency"))
        .await?;
    let config = Config::from_pool(pool.clone());
    let admin = Admin::new(&config).await?;
    admin.install().await?;
    admin.create_queue("latency").await?;
    println!(
        "producer at {RATE_PER_SEC} jobs/s for {seconds} s each; enqueue call to handler start\n"
    );
    println!("| wake-up | p50 ms | p90 ms | p99 ms | max ms | jobs |\n|---|---|---|---|---|---|");

    for (label, listen, poll) in [
        (
            "pgqrs, default (LISTEN/NOTIFY, poll 1 s)",
            true,
            Duration::from_secs(1),
        ),
        (
            "pgqrs, poll only (1 s, the default interval)",
            false,
            Duration::from_secs(1),
        ),
        ("pgqrs, poll only (50 ms)", false, Duration::from_millis(50)),
    ] {
        let samples = worker_latency(&config, listen, poll, seconds).await?;
        print_row(label, samples);
    }
    let samples = raw_latency(&pool, seconds).await?;
    print_row("raw SQL: LISTEN + UPDATE ... SKIP LOCKED", samples);
    Ok(())
}

async fn worker_latency(
    config: &Config,
    listen: bool,
    poll: Duration,
    seconds: u64,
) -> Res<Vec<u64>> {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let worker = Worker::builder()
        .config(config.clone())
        .listen(listen)
        .poll_interval(poll)
        .build()
        .handle({
            let samples = Arc::clone(&samples);
            move |job: Job<Ping>| {
                samples.lock().unwrap().push(now_us() - job.payload.sent_us);
                async { Ok::<(), String>(()) }
            }
        })
        .start()
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await; // let it listen
    let producer = Producer::<Ping>::typed(config).await?;
    let pad = "x".repeat(64);
    pace(seconds, || {
        let ping = Ping {
            sent_us: now_us(),
            pad: pad.clone(),
        };
        let producer = &producer;
        async move {
            producer.enqueue(&ping).await.unwrap();
        }
    })
    .await;
    tokio::time::sleep(poll + Duration::from_millis(500)).await;
    worker.shutdown(Duration::from_secs(5)).await?;
    let samples = samples.lock().unwrap().clone();
    Ok(samples)
}

/// Calls `send` `RATE_PER_SEC` times a second for `seconds`.
async fn pace<F, Fut>(seconds: u64, mut send: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SEC));
    for _ in 0..seconds * RATE_PER_SEC {
        tick.tick().await;
        send().await;
    }
}

async fn raw_latency(pool: &PgPool, seconds: u64) -> Res<Vec<u64>> {
    for statement in [
        "CREATE TABLE raw_jobs (id bigserial PRIMARY KEY, payload jsonb NOT NULL,
           vt timestamptz NOT NULL DEFAULT now())",
        "CREATE INDEX raw_jobs_vt ON raw_jobs (vt, id)",
    ] {
        sqlx::query(AssertSqlSafe(statement)).execute(pool).await?;
    }
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen("raw_jobs").await?;
    let consumer = tokio::spawn({
        let (pool, samples) = (pool.clone(), Arc::clone(&samples));
        async move {
            loop {
                let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), listener.recv()).await
                else {
                    return;
                };
                loop {
                    let rows: Vec<(i64, serde_json::Value)> = sqlx::query_as(
                        "UPDATE raw_jobs SET vt = now() + interval '30 seconds'
                         WHERE id IN (SELECT id FROM raw_jobs WHERE vt <= now() ORDER BY vt, id
                                      LIMIT 10 FOR UPDATE SKIP LOCKED)
                         RETURNING id, payload",
                    )
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                    if rows.is_empty() {
                        break;
                    }
                    let now = now_us();
                    let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
                    for (_, payload) in &rows {
                        samples
                            .lock()
                            .unwrap()
                            .push(now - payload["sent_us"].as_u64().unwrap());
                    }
                    sqlx::query("DELETE FROM raw_jobs WHERE id = ANY($1)")
                        .bind(&ids)
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            }
        }
    });
    let pad = "x".repeat(64);
    pace(seconds, || {
        let payload = serde_json::json!({ "sent_us": now_us(), "pad": pad });
        async move {
            sqlx::query(
                "WITH i AS (INSERT INTO raw_jobs (payload) VALUES ($1) RETURNING id)
                 SELECT i.id FROM i, pg_notify('raw_jobs', '')",
            )
            .bind(payload)
            .fetch_one(pool)
            .await
            .unwrap();
        }
    })
    .await;
    consumer.await?;
    let samples = samples.lock().unwrap().clone();
    Ok(samples)
}

fn print_row(label: &str, mut samples: Vec<u64>) {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).copied().unwrap_or_default() as f64 / 1000.0
    };
    println!(
        "| {label} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        samples.len()
    );
}
