//! Quick queue figures: ours next to a hand-written raw-SQL baseline, in the same process,
//! on the same database, interleaved. Run with `cargo bench -p pgqrs --bench queue`.
//!
//! Uses (and recreates) the database `pgqrs_bench` on `PGQRS_BENCH_URL`'s server
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Instant;

use pgqrs::{Admin, Config, Consumer, Producer};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

const PAYLOAD_PAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234";
const ROUNDS: usize = 3;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn payload(n: usize) -> Value {
    json!({ "task": "send_email", "n": n, "pad": PAYLOAD_PAD })
}

#[tokio::main]
async fn main() -> Res<()> {
    let server = std::env::var("PGQRS_BENCH_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let server: PgConnectOptions = server.parse()?;
    let admin_pool = PgPool::connect_with(server.clone()).await?;
    sqlx::query("DROP DATABASE IF EXISTS pgqrs_bench WITH (FORCE)")
        .execute(&admin_pool)
        .await?;
    sqlx::query("CREATE DATABASE pgqrs_bench")
        .execute(&admin_pool)
        .await?;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(server.database("pgqrs_bench"))
        .await?;
    let config = Config::from_pool(pool.clone());
    let admin = Admin::new(&config).await?;
    admin.install().await?;
    setup_raw(&pool).await?;
    println!(
        "payload {} bytes, pool 8, {ROUNDS} rounds, medians\n",
        payload(0).to_string().len()
    );
    println!("| scenario | pgqrs | raw SQL | ratio |\n|---|---|---|---|");

    let mut ours = Vec::new();
    let mut raw = Vec::new();
    for round in 0..ROUNDS {
        let queue = format!("enq{round}");
        admin.create_queue(&queue).await?;
        ours.push(enqueue_batches(&Producer::new(&config, &queue).await?, 20_000).await?);
        raw.push(raw_enqueue_batches(&pool, 20_000).await?);
    }
    row("enqueue, batch 100 (jobs/s)", &mut ours, &mut raw);
    for round in 0..ROUNDS {
        admin.purge_queue(&format!("enq{round}")).await?;
    }
    sqlx::query("TRUNCATE raw_jobs").execute(&pool).await?;

    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let queue = format!("drain{round}");
        admin.create_queue(&queue).await?;
        enqueue_batches(&Producer::new(&config, &queue).await?, 20_000).await?;
        ours.push(drain(&config, &queue, 4, 100).await?);
        raw_enqueue_batches(&pool, 20_000).await?;
        raw.push(raw_drain(&pool, 4, 100).await?);
    }
    row(
        "drain, batch 100, 4 consumers (jobs/s)",
        &mut ours,
        &mut raw,
    );

    for depth in [1_000, 100_000] {
        let queue = format!("depth{depth}");
        admin.create_queue(&queue).await?;
        enqueue_batches(&Producer::new(&config, &queue).await?, depth).await?;
        sqlx::query("TRUNCATE raw_jobs").execute(&pool).await?;
        raw_enqueue_batches(&pool, depth).await?;
        // Settle the fill: no autovacuum or checkpoint lands inside the timed part.
        sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
        sqlx::query("CHECKPOINT").execute(&pool).await?;
        let consumer = Consumer::new(&config, &queue).await?;
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            ours.push(dequeue_latency_us(&consumer, 250).await?);
            raw.push(raw_dequeue_latency_us(&pool, 250).await?);
        }
        // Latency: lower is better, so the ratio is raw/ours like the throughput rows.
        let (o, r) = (median(&mut ours), median(&mut raw));
        println!(
            "| dequeue+archive, batch 1, {depth} deep (µs/job) | {o:.0} | {r:.0} | {:.2}x |",
            r / o
        );
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn row(name: &str, ours: &mut [f64], raw: &mut [f64]) {
    let (o, r) = (median(ours), median(raw));
    println!("| {name} | {o:.0} | {r:.0} | {:.2}x |", o / r);
}

async fn enqueue_batches(producer: &Producer, jobs: usize) -> Res<f64> {
    let batch: Vec<Value> = (0..100).map(payload).collect();
    let start = Instant::now();
    for _ in 0..jobs / 100 {
        producer.enqueue_batch(&batch).await?;
    }
    Ok(jobs as f64 / start.elapsed().as_secs_f64())
}

async fn drain(config: &Config, queue: &str, consumers: usize, batch: usize) -> Res<f64> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let consumer = Consumer::new(config, queue).await?;
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            loop {
                let jobs = consumer.dequeue_batch(batch).await?;
                if jobs.is_empty() {
                    return Ok::<_, pgqrs::Error>(done);
                }
                let ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
                consumer.archive_batch(&ids, "completed").await?;
                done += ids.len();
            }
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

async fn dequeue_latency_us(consumer: &Consumer, jobs: usize) -> Res<f64> {
    let start = Instant::now();
    for _ in 0..jobs {
        let job = consumer.dequeue().await?.expect("prefilled");
        consumer.archive(job.id, "completed").await?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / jobs as f64)
}

// ---- the hand-written baseline: one table, same lease semantics, separate archive ----

async fn setup_raw(pool: &PgPool) -> Res<()> {
    for statement in [
        "CREATE TABLE raw_jobs (id bigserial PRIMARY KEY, payload jsonb NOT NULL,
           vt timestamptz NOT NULL DEFAULT now(), attempts int NOT NULL DEFAULT 0)",
        "CREATE INDEX raw_jobs_vt ON raw_jobs (vt, id)",
        "CREATE TABLE raw_archive (id bigint PRIMARY KEY, payload jsonb NOT NULL,
           archived_at timestamptz NOT NULL DEFAULT now())",
    ] {
        sqlx::query(AssertSqlSafe(statement)).execute(pool).await?;
    }
    Ok(())
}

async fn raw_enqueue_batches(pool: &PgPool, jobs: usize) -> Res<f64> {
    let batch: Vec<Value> = (0..100).map(payload).collect();
    let start = Instant::now();
    for _ in 0..jobs / 100 {
        // Serialized on every call, as an application would.
        let batch: Vec<String> = batch.iter().map(Value::to_string).collect();
        sqlx::query("INSERT INTO raw_jobs (payload) SELECT p::jsonb FROM unnest($1::text[]) AS p RETURNING id")
            .bind(&batch)
            .fetch_all(pool)
            .await?;
    }
    Ok(jobs as f64 / start.elapsed().as_secs_f64())
}

const RAW_CLAIM: &str = "UPDATE raw_jobs SET vt = now() + interval '30 seconds', attempts = attempts + 1
    WHERE id IN (SELECT id FROM raw_jobs WHERE vt <= now() ORDER BY vt, id LIMIT $1 FOR UPDATE SKIP LOCKED)
    RETURNING id, payload::text";
const RAW_ARCHIVE: &str =
    "WITH d AS (DELETE FROM raw_jobs WHERE id = ANY($1) RETURNING id, payload)
    INSERT INTO raw_archive (id, payload) SELECT id, payload FROM d";

async fn raw_drain(pool: &PgPool, consumers: usize, batch: i64) -> Res<f64> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            loop {
                let rows: Vec<(i64, String)> = sqlx::query_as(RAW_CLAIM)
                    .bind(batch)
                    .fetch_all(&pool)
                    .await?;
                if rows.is_empty() {
                    return Ok::<_, sqlx::Error>(done);
                }
                let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
                sqlx::query(RAW_ARCHIVE).bind(&ids).execute(&pool).await?;
                done += ids.len();
            }
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

async fn raw_dequeue_latency_us(pool: &PgPool, jobs: usize) -> Res<f64> {
    let start = Instant::now();
    for _ in 0..jobs {
        let rows: Vec<(i64, String)> = sqlx::query_as(RAW_CLAIM)
            .bind(1_i64)
            .fetch_all(pool)
            .await?;
        let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), 1, "prefilled");
        sqlx::query(RAW_ARCHIVE).bind(&ids).execute(pool).await?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / jobs as f64)
}
