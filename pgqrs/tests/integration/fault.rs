//! Fault tests: worker processes SIGKILLed at random, and a Postgres restart mid-run.
//! Handlers record every execution in a table; at the end every job must be archived
//! exactly once, and every re-execution must be explained by a fault.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pgqrs::{Admin, Config, HandlerOptions, Job, Producer, Worker, WorkerHandle};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

const JOBS: u32 = 20_000;
const WORKERS: usize = 4;
const CONCURRENCY: usize = 8;
const PREFETCH: usize = 8;
/// Long enough that a live worker starved of CPU (4 processes and Postgres on 2 cores) keeps
/// its leases: only the killed ones lose theirs.
const LEASE: Duration = Duration::from_secs(6);
const WORKER_ENTRY: &str = "fault::worker_process_entry";

#[derive(Debug, Serialize, Deserialize, Job)]
#[pgqrs(queue = "fault")]
struct Chore {
    n: u32,
}

/// `postgresql://` URL of the test's own database, for processes outside this one.
pub(crate) fn dsn_of(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!(
        "postgresql://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or_default()
    )
}

async fn prepare(pool: &PgPool) -> pgqrs::Result<Config> {
    let config = Config::from_pool(pool.clone());
    Admin::new(&config).await?.create_queue("fault").await?;
    sqlx::query(
        "CREATE TABLE executions (seq bigserial, job_id bigint NOT NULL, pid integer NOT NULL, worker text NOT NULL)",
    )
    .execute(pool)
    .await?;
    let producer = Producer::<Chore>::typed(&config).await?;
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(2_000) {
        let chores: Vec<Chore> = chunk.iter().map(|&n| Chore { n }).collect();
        producer.enqueue_batch(&chores).await?;
    }
    Ok(config)
}

/// A worker whose handler records each execution (under `tag`) before it returns.
async fn recording_worker(config: Config, name: &str, tag: String) -> pgqrs::Result<WorkerHandle> {
    let pool = config.pool().await?;
    let options = HandlerOptions::builder()
        .concurrency(CONCURRENCY)
        .prefetch(PREFETCH)
        .build();
    Worker::builder()
        .config(config)
        .name(name)
        .visibility_timeout(LEASE)
        .poll_interval(Duration::from_millis(100))
        .build()
        .handle_with(options, move |job: Job<Chore>| {
            let (pool, tag) = (pool.clone(), tag.clone());
            async move {
                sqlx::query("INSERT INTO executions (job_id, pid, worker) VALUES ($1, $2, $3)")
                    .bind(job.id)
                    .bind(std::process::id() as i32)
                    .bind(tag)
                    .execute(&pool)
                    .await?;
                tokio::time::sleep(Duration::from_micros(u64::from(job.payload.n % 3) * 500)).await;
                Ok::<(), sqlx::Error>(())
            }
        })
        .start()
        .await
}

/// In a worker process started by a fault test: its DSN and name, with logging set up.
/// `None` when the entry point runs as an ordinary (ignored) test.
pub(crate) fn worker_process_env() -> Option<(String, String)> {
    let dsn = std::env::var("PGQRS_FAULT_DSN").ok()?;
    let name = std::env::var("PGQRS_FAULT_NAME").ok()?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter("pgqrs=info")
        .with_writer(std::io::stderr)
        .try_init();
    Some((dsn, name))
}

/// Not a test: the body of the worker processes `sigkilled_workers_lose_nothing` starts
/// (this same binary, run with `--exact --ignored`). Does nothing without its environment.
#[tokio::test]
#[ignore = "entry point of the worker processes the fault tests spawn"]
async fn worker_process_entry() {
    let Some((dsn, name)) = worker_process_env() else {
        return;
    };
    let config = Config::from_dsn(&dsn)
        .unwrap()
        .max_connections(CONCURRENCY as u32 + 2);
    let tag = format!("{name}/{}", std::process::id());
    let _worker = recording_worker(config, &name, tag).await.unwrap();
    std::future::pending::<()>().await;
}

/// Starts this test binary as a worker process running the ignored test `entry`.
pub(crate) fn spawn_worker_process(
    entry: &str,
    dsn: &str,
    name: &str,
    logs: &Path,
    generation: usize,
) -> Child {
    let log = std::fs::File::create(logs.join(format!("{name}-{generation}.log"))).unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", entry, "--ignored", "--nocapture"])
        .env("PGQRS_FAULT_DSN", dsn)
        .env("PGQRS_FAULT_NAME", name)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Where worker processes write their logs.
pub(crate) fn log_dir() -> PathBuf {
    let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fault-logs");
    std::fs::create_dir_all(&logs).unwrap();
    logs
}

/// Jobs not done yet: waiting in `pgqrs.jobs`, or in flight (in the archive, still held by
/// a lease).
async fn remaining(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pgqrs.jobs)
              + (SELECT coalesce(sum(cardinality(ids)), 0) FROM pgqrs.leases)",
    )
    .fetch_one(pool)
    .await
    .unwrap_or(i64::MAX)
}

/// Every job archived exactly once, none left, none dead; every job executed; and each
/// execution that was not the last of its job was made by a worker in `faulty`.
/// Returns the number of re-executions.
async fn assert_exact_accounting(pool: &PgPool, faulty: &HashSet<String>) -> usize {
    let (archived, distinct, left, held, dead): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pgqrs.archive), (SELECT count(DISTINCT id) FROM pgqrs.archive),
                (SELECT count(*) FROM pgqrs.jobs), (SELECT count(*) FROM pgqrs.leases),
                (SELECT count(*) FROM pgqrs.dead_letters)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (archived, distinct, left, held, dead),
        (JOBS as i64, JOBS as i64, 0, 0, 0),
        "(archived, distinct archived, waiting, leases, dead)"
    );

    let executions: Vec<(i64, String)> =
        sqlx::query_as("SELECT job_id, worker FROM executions ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut by_job: HashMap<i64, Vec<String>> = HashMap::new();
    for (job, worker) in executions {
        by_job.entry(job).or_default().push(worker);
    }
    assert_eq!(by_job.len(), JOBS as usize, "every job ran");
    let mut again = 0;
    for (job, runs) in &by_job {
        for earlier in &runs[..runs.len() - 1] {
            assert!(
                faulty.contains(earlier),
                "job {job} ran again after {earlier}, which never failed: {runs:?}"
            );
            again += 1;
        }
    }
    again
}

#[sqlx::test(migrations = "../migrations")]
async fn sigkilled_workers_lose_nothing(pool: PgPool) -> pgqrs::Result<()> {
    prepare(&pool).await?;
    let dsn = dsn_of(&pool);
    let logs = log_dir();
    let names: Vec<String> = (0..WORKERS).map(|n| format!("fault-worker-{n}")).collect();
    let mut children: Vec<Child> = names
        .iter()
        .map(|name| spawn_worker_process(WORKER_ENTRY, &dsn, name, &logs, 0))
        .collect();

    let mut killed: HashSet<String> = HashSet::new();
    let started = Instant::now();
    let mut generation = 0;
    while remaining(&pool).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the run did not finish"
        );
        tokio::time::sleep(Duration::from_millis(600 + fastrand::u64(0..900))).await;
        if killed.len() < 12 && remaining(&pool).await > 2_000 {
            let victim = fastrand::usize(0..WORKERS);
            let pid = children[victim].id();
            children[victim].kill().unwrap(); // SIGKILL
            children[victim].wait().unwrap();
            killed.insert(format!("{}/{pid}", names[victim]));
            generation += 1;
            // Restart under the same name, as a supervisor would.
            children[victim] =
                spawn_worker_process(WORKER_ENTRY, &dsn, &names[victim], &logs, generation);
        }
    }
    for child in &mut children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let again = assert_exact_accounting(&pool, &killed).await;
    println!(
        "{JOBS} jobs, {} SIGKILLs, {again} re-executions, {:.1} s",
        killed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        killed.len() >= 3,
        "the run was too short to kill workers: {}",
        killed.len()
    );
    assert!(
        again <= killed.len() * (CONCURRENCY + PREFETCH),
        "{again} re-executions for {} kills: more than the jobs the dead workers held",
        killed.len()
    );
    Ok(())
}

fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian Postgres cluster in /etc/postgresql")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .max_by_key(|v| v.parse::<u32>().unwrap_or_default())
        .expect("a Postgres version");
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .status()
        .expect("pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster restart failed: {status}");
}

/// Restarts the local Postgres: run it alone (`.ci/run` does, after the other tests).
#[sqlx::test(migrations = "../migrations")]
#[ignore = "restarts Postgres; .ci/run runs it alone"]
async fn postgres_restart_mid_run(pool: PgPool) -> pgqrs::Result<()> {
    prepare(&pool).await?;
    let dsn = dsn_of(&pool);
    let mut workers = Vec::new();
    for n in 0..WORKERS {
        let config = Config::from_dsn(&dsn)?
            .max_connections(CONCURRENCY as u32 + 2)
            .acquire_timeout(Duration::from_secs(5));
        let name = format!("restart-{n}");
        workers.push(recording_worker(config, &name, name.clone()).await?);
    }
    let started = Instant::now();
    while remaining(&pool).await > JOBS as i64 / 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress before the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    restart_postgres();
    let restarted_at = started.elapsed();
    while remaining(&pool).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the run did not finish after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut lost = 0;
    for worker in workers {
        lost += worker.stats().lost;
        worker.shutdown(Duration::from_secs(10)).await?;
    }
    // Every worker lived through the restart: any of them may have lost leases to it.
    let everyone: HashSet<String> = (0..WORKERS).map(|n| format!("restart-{n}")).collect();
    let again = assert_exact_accounting(&pool, &everyone).await;
    println!(
        "{JOBS} jobs, Postgres restarted at {:.1} s, done at {:.1} s, {again} re-executions, {lost} lost leases",
        restarted_at.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        again <= WORKERS * (CONCURRENCY + PREFETCH),
        "{again} re-executions: more than the workers held at the restart"
    );
    Ok(())
}
