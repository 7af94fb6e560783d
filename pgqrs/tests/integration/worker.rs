//! The worker runtime: handlers, retries, panics, heartbeats, lost leases, shutdown.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgqrs::Db;
use pgqrs::{
    Admin, Backoff, Config, Consumer, HandlerOptions, Job, Producer, QueueOptions, Worker,
    WorkerHandle,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::common::{config_with_pool_size, wait_for, wait_until};

#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[pgqrs(queue = "work")]
struct Work {
    n: u32,
}

async fn enqueue_work(config: &Config, count: u32) -> pgqrs::Result<Vec<i64>> {
    let producer = Producer::<Work>::typed(config).await?;
    let jobs: Vec<Work> = (0..count).map(|n| Work { n }).collect();
    Ok(producer
        .enqueue_batch(&jobs)
        .await?
        .iter()
        .map(|e| e.id)
        .collect())
}

async fn count(pool: &Db, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// A config with its own pool over the test database, which has the queue `work`.
async fn work_queue(pool: &Db) -> pgqrs::Result<Config> {
    let config = config_with_pool_size(pool, 6).await;
    Admin::new(&config).await?.create_queue("work").await?;
    Ok(config)
}

async fn wait_for_archived(pool: &Db, jobs: i64, timeout: Duration) {
    wait_until(timeout, || async {
        count(pool, "SELECT count(*) FROM pgqrs.history").await == jobs
    })
    .await;
}

fn fast_backoff() -> Backoff {
    Backoff::builder()
        .base(Duration::from_millis(10))
        .max(Duration::from_millis(50))
        .jitter(0.0)
        .build()
}

#[sqlx::test(migrations = "../migrations")]
async fn typed_handlers_archive_their_jobs(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = work_queue(&pool).await?;
    let ids = enqueue_work(&config, 200).await?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let worker = Worker::builder()
        .config(config.clone())
        .name("typed-1")
        .build()
        .handle({
            let seen = Arc::clone(&seen);
            move |job: Job<Work>| {
                let seen = Arc::clone(&seen);
                async move {
                    seen.lock().unwrap().push(job.id);
                    Ok::<(), String>(())
                }
            }
        })
        .start()
        .await?;
    let workers = Admin::new(&config).await?.list_workers().await?;
    assert_eq!(workers.len(), 1);
    assert_eq!(
        (workers[0].id, workers[0].name.as_str()),
        (worker.id(), "typed-1")
    );
    assert_eq!(workers[0].queues, vec!["work"]);

    wait_for_archived(&pool, 200, Duration::from_secs(20)).await;
    // The worker counts an ack once its claim statement returns, a moment after the commit
    // the archive count saw.
    wait_until(Duration::from_secs(5), || async {
        worker.stats().succeeded == 200
    })
    .await;
    let stats = worker.stats();
    assert_eq!((stats.claimed, stats.succeeded, stats.lost), (200, 200, 0));
    worker.shutdown(Duration::from_secs(5)).await?;

    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, ids, "every job handled exactly once");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pgqrs.history WHERE outcome = 'completed'"
        )
        .await,
        200
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pgqrs.workers").await,
        0,
        "deregistered"
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn failures_back_off_then_dead_letter_with_the_last_error(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = config_with_pool_size(&pool, 6).await;
    let admin = Admin::new(&config).await?;
    admin
        .create_queue_with("work", QueueOptions::builder().max_attempts(3).build())
        .await?;
    enqueue_work(&config, 1).await?;
    let options = HandlerOptions::builder().backoff(fast_backoff()).build();
    let worker = Worker::builder()
        .config(config.clone())
        .poll_interval(Duration::from_millis(20))
        .build()
        .handle_with(options, |job: Job<Work>| async move {
            Err::<(), String>(format!("boom on delivery {}", job.attempts))
        })
        .start()
        .await?;
    wait_until(Duration::from_secs(10), || async {
        count(&pool, "SELECT count(*) FROM pgqrs.dead_letters").await == 1
    })
    .await;
    // The worker counts the dead letter once its nack statement returns, a moment after the
    // commit the count saw.
    wait_until(Duration::from_secs(5), || async {
        worker.stats().dead_lettered == 1
    })
    .await;
    let stats = worker.stats();
    assert_eq!(
        (stats.retried, stats.dead_lettered, stats.succeeded),
        (2, 1, 0)
    );
    worker.shutdown(Duration::from_secs(5)).await?;
    let dead = admin.dead_letters("work", 10).await?;
    assert_eq!(dead[0].attempts, 3);
    assert!(
        dead[0].reason.starts_with("boom on delivery 3"),
        "{}",
        dead[0].reason
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn a_panicking_handler_is_a_failure_not_a_dead_worker(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = work_queue(&pool).await?;
    enqueue_work(&config, 10).await?;
    let options = HandlerOptions::builder().backoff(fast_backoff()).build();
    let worker = Worker::builder()
        .config(config.clone())
        .poll_interval(Duration::from_millis(20))
        .build()
        .handle_with(options, |job: Job<Work>| async move {
            if job.payload.n.is_multiple_of(2) && job.attempts == 1 {
                panic!("even job {} blew up", job.payload.n);
            }
            Ok::<(), String>(())
        })
        .start()
        .await?;
    wait_for_archived(&pool, 10, Duration::from_secs(10)).await;
    wait_until(Duration::from_secs(5), || async {
        worker.stats().succeeded == 10
    })
    .await;
    let stats = worker.stats();
    assert_eq!((stats.panicked, stats.retried, stats.succeeded), (5, 5, 10));
    worker.shutdown(Duration::from_secs(5)).await?;
    let errors = count(
        &pool,
        "SELECT count(*) FROM pgqrs.history a WHERE a.attempts = 2",
    )
    .await;
    assert_eq!(errors, 5, "the panicked jobs ran a second time");
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn heartbeats_keep_a_long_job_leased(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = work_queue(&pool).await?;
    enqueue_work(&config, 1).await?;
    let worker = Worker::builder()
        .config(config.clone())
        .visibility_timeout(Duration::from_millis(1_500))
        .build()
        .handle(|_job: Job<Work>| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<(), String>(())
        })
        .start()
        .await?;
    wait_until(Duration::from_secs(5), || async {
        worker.stats().claimed == 1
    })
    .await;
    let thief = Consumer::<Work>::typed(&config).await?;
    // Three lease periods and more: only the heartbeats keep the job from the thief.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            thief.dequeue().await?.is_none(),
            "a heartbeated lease never expires"
        );
    }
    wait_for_archived(&pool, 1, Duration::from_secs(10)).await;
    assert_eq!(worker.stats().lost, 0);
    worker.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn without_heartbeat_a_slow_handler_loses_its_job_and_its_ack(
    pool: PgPool,
) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = work_queue(&pool).await?;
    let id = enqueue_work(&config, 1).await?[0];
    // The handler outlives its lease: it finishes only once the second holder is done.
    let finish = Arc::new(tokio::sync::Notify::new());
    let worker = Worker::builder()
        .config(config.clone())
        .visibility_timeout(Duration::from_millis(300))
        .heartbeat(false)
        .build()
        .handle({
            let finish = Arc::clone(&finish);
            move |_job: Job<Work>| {
                let finish = Arc::clone(&finish);
                async move {
                    finish.notified().await;
                    Ok::<(), String>(())
                }
            }
        })
        .start()
        .await?;
    wait_until(Duration::from_secs(5), || async {
        worker.stats().claimed == 1
    })
    .await;
    let second = Consumer::<Work>::typed(&config).await?;
    // Redelivered once the worker's lease has expired.
    let job = wait_for(Duration::from_secs(5), || async {
        second.dequeue().await.expect("dequeue")
    })
    .await;
    assert_eq!((job.id, job.attempts), (id, 2));
    second.archive(id, "second holder").await?;
    finish.notify_one();

    wait_until(Duration::from_secs(5), || async {
        worker.stats().lost == 1
    })
    .await;
    assert_eq!(
        worker.stats().succeeded,
        0,
        "the first holder's result is not recorded"
    );
    worker.shutdown(Duration::from_secs(5)).await?;
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM pgqrs.archive WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await?;
    assert_eq!(outcome, "second holder");
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn a_handler_is_told_when_its_lease_is_lost(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = work_queue(&pool).await?;
    let id = enqueue_work(&config, 1).await?[0];
    let told = Arc::new(AtomicUsize::new(0));
    let worker = Worker::builder()
        .config(config.clone())
        .visibility_timeout(Duration::from_millis(450))
        .build()
        .handle({
            let told = Arc::clone(&told);
            move |job: Job<Work>| {
                let told = Arc::clone(&told);
                async move {
                    job.lease.lost().await;
                    told.fetch_add(1, Ordering::SeqCst);
                    job.lease.check().map_err(|e| e.to_string())
                }
            }
        })
        .start()
        .await?;
    wait_until(Duration::from_secs(5), || async {
        count(&pool, "SELECT count(*) FROM pgqrs.leases").await == 1
    })
    .await;
    // Another holder takes the job over (what a claim after an expiry does).
    sqlx::query(
        "UPDATE pgqrs.leases SET token = nextval('pgqrs.lease_tokens') WHERE $1 = ANY (ids)",
    )
    .bind(id)
    .execute(&pool)
    .await?;
    wait_until(Duration::from_secs(5), || async {
        worker.stats().lost == 1
    })
    .await;
    assert_eq!(told.load(Ordering::SeqCst), 1);
    let stats = worker.stats();
    assert_eq!(
        (stats.retried, stats.succeeded),
        (0, 0),
        "nothing recorded for a lost lease"
    );
    worker.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

async fn slow_worker(
    config: &Config,
    executions: Arc<Mutex<Vec<i64>>>,
) -> pgqrs::Result<WorkerHandle> {
    let options = HandlerOptions::builder().concurrency(4).prefetch(8).build();
    Worker::builder()
        .config(config.clone())
        .build()
        .handle_with(options, move |job: Job<Work>| {
            let executions = Arc::clone(&executions);
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                executions.lock().unwrap().push(job.id);
                Ok::<(), String>(())
            }
        })
        .start()
        .await
}

#[sqlx::test(migrations = "../migrations")]
async fn shutdown_under_load_loses_nothing_and_holds_nothing(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = work_queue(&pool).await?;
    let ids = enqueue_work(&config, 300).await?;
    let executions = Arc::new(Mutex::new(Vec::new()));

    let first = slow_worker(&config, Arc::clone(&executions)).await?;
    let first_id = first.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.shutdown(Duration::from_secs(5)).await?;
    let done_by_first = executions.lock().unwrap().len();
    assert!(
        done_by_first > 0 && done_by_first < 300,
        "stopped mid-run: {done_by_first}"
    );
    let held: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(cardinality(ids)), 0) FROM pgqrs.leases
         WHERE worker_id = $1 OR token IS NOT NULL",
    )
    .bind(first_id)
    .fetch_one(&pool)
    .await?;
    assert_eq!(held, 0, "the stopped worker holds no job");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pgqrs.history").await as usize,
        done_by_first,
        "everything it ran is recorded"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pgqrs.jobs WHERE attempts > 0").await,
        0,
        "prefetched jobs were handed back without counting a delivery"
    );

    let second = slow_worker(&config, Arc::clone(&executions)).await?;
    wait_for_archived(&pool, 300, Duration::from_secs(20)).await;
    second.shutdown(Duration::from_secs(5)).await?;
    let executions = executions.lock().unwrap().clone();
    let distinct: HashSet<i64> = executions.iter().copied().collect();
    assert_eq!(executions.len(), 300, "no job ran twice");
    assert_eq!(distinct, ids.into_iter().collect::<HashSet<_>>());
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn shutdown_timeout_aborts_and_hands_the_job_back(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = work_queue(&pool).await?;
    let id = enqueue_work(&config, 1).await?[0];
    let worker = Worker::builder()
        .config(config.clone())
        .build()
        .handle(|_job: Job<Work>| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<(), String>(())
        })
        .start()
        .await?;
    wait_until(Duration::from_secs(5), || async {
        worker.stats().claimed == 1
    })
    .await;
    let started = std::time::Instant::now();
    worker.shutdown(Duration::from_millis(200)).await?;
    assert!(started.elapsed() < Duration::from_secs(3));
    let (attempts, leased, error): (i32, bool, Option<String>) = sqlx::query_as(
        "SELECT attempts, EXISTS (SELECT 1 FROM pgqrs.leases l WHERE j.id = ANY (l.ids)), last_error
         FROM pgqrs.jobs j WHERE j.id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        (attempts, leased),
        (1, false),
        "back in the queue, the delivery counted"
    );
    assert!(
        error
            .unwrap_or_default()
            .contains("stopped before the handler finished")
    );
    let consumer = Consumer::<Work>::typed(&config).await?;
    assert_eq!(consumer.dequeue().await?.expect("runnable at once").id, id);
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn paused_queues_are_not_claimed_until_resumed(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = config_with_pool_size(&pool, 6).await;
    let admin = Admin::new(&config).await?;
    admin.create_queue("work").await?;
    admin.pause_queue("work").await?;
    enqueue_work(&config, 5).await?;
    let worker = Worker::builder()
        .config(config.clone())
        .poll_interval(Duration::from_secs(30))
        // Through a transaction-mode pooler LISTEN needs its own direct connection.
        .listen_config(crate::common::direct_config(&pool))
        .build()
        .handle(|_job: Job<Work>| async { Ok::<(), String>(()) })
        .start()
        .await?;
    let plain = Consumer::<Work>::typed(&config).await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(worker.stats().claimed, 0);
    assert!(
        plain.dequeue().await?.is_none(),
        "paused for plain consumers too"
    );
    assert!(admin.queue_stats("work").await?.ready == 5);

    admin.resume_queue("work").await?; // wakes the worker: the poll is 30 s away
    wait_for_archived(&pool, 5, Duration::from_secs(5)).await;
    worker.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn global_concurrency_caps_all_workers_together(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = config_with_pool_size(&pool, 12).await;
    let admin = Admin::new(&config).await?;
    admin.create_queue("work").await?;
    admin.set_global_concurrency("work", Some(2)).await?;
    enqueue_work(&config, 40).await?;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
        let options = HandlerOptions::builder().concurrency(4).prefetch(4).build();
        workers.push(
            Worker::builder()
                .config(config.clone())
                .poll_interval(Duration::from_millis(20))
                .build()
                .handle_with(options, move |_job: Job<Work>| {
                    let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
                    async move {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(15)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok::<(), String>(())
                    }
                })
                .start()
                .await?,
        );
    }
    wait_for_archived(&pool, 40, Duration::from_secs(30)).await;
    for worker in workers {
        worker.shutdown(Duration::from_secs(5)).await?;
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "at most 2 at once, and the cap is used"
    );
    assert_eq!(admin.list_queues().await?[0].global_concurrency, Some(2));
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn the_registry_reaps_silent_workers_and_accepts_a_reused_name(
    pool: PgPool,
) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = config_with_pool_size(&pool, 6).await;
    let admin = Admin::new(&config).await?;
    admin.create_queue("work").await?;
    // A worker that crashed an hour ago under the name we are about to reuse.
    sqlx::query(
        "INSERT INTO pgqrs.workers (name, pid, queues, heartbeat_at)
         VALUES ('mailer', 1, '{work}', now() - interval '1 hour')",
    )
    .execute(&pool)
    .await?;
    let start = || {
        Worker::builder()
            .config(config.clone())
            .name("mailer")
            .visibility_timeout(Duration::from_millis(300))
            .reap_after(Duration::from_secs(60))
            .build()
            .handle(|_job: Job<Work>| async { Ok::<(), String>(()) })
            .start()
    };
    let one = start().await?;
    let two = start().await?;
    wait_until(Duration::from_secs(5), || async {
        count(&pool, "SELECT count(*) FROM pgqrs.workers").await == 2
    })
    .await;
    let names: Vec<String> = admin
        .list_workers()
        .await?
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(
        names,
        vec!["mailer", "mailer"],
        "the stale row was reaped, both live ones stay"
    );
    one.shutdown(Duration::from_secs(5)).await?;
    two.shutdown(Duration::from_secs(5)).await?;
    assert!(admin.list_workers().await?.is_empty());
    Ok(())
}

/// Counts the statements sqlx runs on this thread (its `sqlx::query` events): a
/// `#[sqlx::test]` runs on a current-thread runtime, so the worker's tasks are counted and
/// tests running in parallel are not.
struct CountStatements(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn an_idle_worker_is_quiet(pool: PgPool) -> pgqrs::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    let statements = Arc::new(AtomicUsize::new(0));
    let _counting = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(CountStatements(Arc::clone(&statements))),
    );
    let pool = crate::common::via_pooler(pool).await;
    let config = work_queue(&pool).await?;
    let worker = Worker::builder()
        .config(config.clone())
        .build()
        .handle(|_job: Job<Work>| async { Ok::<(), String>(()) })
        .start()
        .await?;
    // Counted where they are sent, not from Postgres's statistics, which an idle backend
    // reports up to 10 s late (once 27 counted there against this limit).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = statements.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = statements.load(Ordering::SeqCst) - before;
    worker.shutdown(Duration::from_secs(5)).await?;
    // About one poll a second. A busy loop would be thousands.
    assert!(
        (1..=15).contains(&during),
        "{during} statements in 5 s of idling"
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_worker_setups_are_refused(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = config_with_pool_size(&pool, 2).await;
    Admin::new(&config).await?.create_queue("work").await?;
    let ok = |_job: Job<Work>| async { Ok::<(), String>(()) };
    let refused = |result: pgqrs::Result<WorkerHandle>| match result {
        Err(pgqrs::Error::InvalidArgument(reason)) => reason,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    let nameless = Worker::builder()
        .config(config.clone())
        .name("x; DROP")
        .build()
        .handle(ok);
    assert!(refused(nameless.start().await).contains("worker name"));
    let twice = Worker::builder()
        .config(config.clone())
        .build()
        .handle(ok)
        .handle(ok);
    assert!(refused(twice.start().await).contains("two handlers"));
    let empty = Worker::builder().config(config.clone()).build();
    assert!(refused(empty.start().await).contains("at least one"));
    let missing = Worker::builder()
        .config(config.clone())
        .build()
        .handle_queue("nope", Default::default(), |_m| async {
            Ok::<(), String>(())
        });
    assert!(matches!(
        missing.start().await,
        Err(pgqrs::Error::QueueNotFound { .. })
    ));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pgqrs.workers").await,
        0,
        "nothing left registered"
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn cancelling_the_token_shuts_the_worker_down(pool: PgPool) -> pgqrs::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let config = work_queue(&pool).await?;
    enqueue_work(&config, 50).await?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let worker = Worker::builder()
        .config(config.clone())
        .cancel(cancel.clone())
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .handle(|_job: Job<Work>| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<(), String>(())
        })
        .start()
        .await?;
    wait_until(Duration::from_secs(5), || async {
        worker.stats().succeeded > 0
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker.wait())
        .await
        .expect("stopped within the shutdown timeout")?;
    let (held, workers): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pgqrs.leases), (SELECT count(*) FROM pgqrs.workers)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!((held, workers), (0, 0));
    Ok(())
}
