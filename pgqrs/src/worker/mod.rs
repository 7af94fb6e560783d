//! The worker runtime: typed handlers run under heartbeated leases, with batched claims and
//! acks, retries with backoff, wake-ups by LISTEN/NOTIFY and a graceful shutdown.

mod background;
mod options;
mod periodic;
mod runner;

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Display};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use typed_builder::TypedBuilder;

pub use options::{Backoff, HandlerOptions};
pub use periodic::Periodic;

use sqlx::PgPool;

use crate::db::{self, worker::WorkerRow};
use crate::queue::QueueHandle;
use crate::workflow::{WorkflowFn, WorkflowHandler};
use crate::{Config, Consumer, Error, Job, JobType, Message, Payload, Result};
use runner::Runner;

/// A long-running worker: registers typed handlers, one per queue, and runs them.
///
/// Each queue gets its own loop that claims jobs in batches (up to `concurrency +
/// prefetch` held at once), runs the handler of each job in its own task, and records the
/// outcomes in batches: `Ok` archives the job (outcome `"completed"`), `Err` or a panic
/// retries it after the handler's [`Backoff`], or moves it to the dead letters once the
/// queue's `max_attempts` are used. While jobs are held, one heartbeat statement per
/// `visibility_timeout / 3` extends all their leases; a job whose lease is lost anyway has
/// its [`Lease`](crate::Lease) marked lost and its result is not recorded.
///
/// ```no_run
/// use std::time::Duration;
/// use pgqrs::{Job, Worker};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Job)]
/// #[pgqrs(queue = "emails")]
/// struct SendEmail { to: String }
///
/// async fn send_email(job: Job<SendEmail>) -> Result<(), std::io::Error> {
///     println!("mail to {}", job.payload.to);
///     Ok(())
/// }
///
/// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
/// let worker = Worker::builder()
///     .config(config)
///     .name("mailer-1")
///     .build()
///     .handle(send_email)
///     .start()
///     .await?;
/// // ... until the process should stop:
/// worker.shutdown(Duration::from_secs(30)).await?;
/// # Ok(()) }
/// ```
#[derive(TypedBuilder)]
pub struct Worker {
    /// Where to connect; the worker uses the config's shared pool.
    config: Config,
    /// Shown in `Admin::list_workers`; need not be unique (default `worker-<pid>`).
    #[builder(default = format!("worker-{}", std::process::id()), setter(into))]
    name: String,
    /// Lease of claimed jobs, kept alive by heartbeats (default: the config's).
    #[builder(default, setter(strip_option))]
    visibility_timeout: Option<Duration>,
    /// Extend held leases every third of the visibility timeout (default `true`). Turning
    /// it off lets long handlers lose their jobs; it exists to test exactly that.
    #[builder(default = true)]
    heartbeat: bool,
    /// Wake up on `NOTIFY pgqrs_jobs` (default `true`). Turn it off behind a pooler in
    /// transaction mode, where LISTEN does not work; polling remains.
    #[builder(default = true)]
    listen: bool,
    /// How often an idle queue is polled (default 1 s): the wake-up of last resort and the
    /// granularity of delayed jobs.
    #[builder(default = Duration::from_secs(1))]
    poll_interval: Duration,
    /// How long a shutdown through `cancel` lets running handlers finish (default 30 s).
    #[builder(default = Duration::from_secs(30))]
    shutdown_timeout: Duration,
    /// Registry rows of workers silent this long are removed (default 5 minutes).
    #[builder(default = Duration::from_secs(300))]
    reap_after: Duration,
    /// Cancelling this token shuts the worker down gracefully.
    #[builder(default, setter(strip_option))]
    cancel: Option<CancellationToken>,
    #[builder(default, setter(skip))]
    queues: Vec<Registration>,
    #[builder(default, setter(skip))]
    periodic: Vec<Periodic>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field(
                "queues",
                &self.queues.iter().map(|r| &r.queue).collect::<Vec<_>>(),
            )
            .field("periodic", &self.periodic)
            .finish_non_exhaustive()
    }
}

/// Opens a queue's consumer and builds its loop, once the worker is registered.
type StartQueue = Box<
    dyn FnOnce(Arc<Shared>, Config, i64, Duration) -> BoxFuture<'static, Result<StartedQueue>>
        + Send,
>;

struct Registration {
    queue: String,
    start: StartQueue,
}

struct StartedQueue {
    queue_id: i32,
    holder: Arc<dyn LeaseHolder>,
    wake: Arc<Notify>,
    run: BoxFuture<'static, ()>,
}

/// How a handler ended, as the queue loop records it.
pub(crate) enum Handled {
    /// Archive the job.
    Succeeded,
    /// Retry the job after the backoff (or dead-letter it), recording this error.
    Failed(String),
    /// The handler settled the job itself; just forget the lease.
    Settled,
}

/// Runs one job. User handlers are adapted by [`FnHandler`]; workflow runs have their own.
pub(crate) trait JobHandler<T>: Send + Sync + 'static {
    fn handle(&self, job: Job<T>) -> BoxFuture<'static, Handled>;
}

/// A user's `async fn(Job<T>) -> Result<(), E>` as a [`JobHandler`].
pub(crate) struct FnHandler<F>(F);

impl<T, F, Fut, E> JobHandler<T> for FnHandler<F>
where
    T: Payload,
    F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: Display + Send + 'static,
{
    fn handle(&self, job: Job<T>) -> BoxFuture<'static, Handled> {
        let run = (self.0)(job);
        Box::pin(async move {
            match run.await {
                Ok(()) => Handled::Succeeded,
                Err(err) => Handled::Failed(err.to_string()),
            }
        })
    }
}

/// What the heartbeat needs from each queue's consumer, whatever its payload type.
pub(crate) trait LeaseHolder: Send + Sync {
    fn held(&self) -> (Vec<i64>, Vec<i64>);
    fn drop_unextended(&self, ids: &[i64], tokens: &[i64], extended: &HashSet<i64>) -> Vec<i64>;
}

impl<T: Payload> LeaseHolder for Consumer<T> {
    fn held(&self) -> (Vec<i64>, Vec<i64>) {
        self.held_leases()
    }

    fn drop_unextended(&self, ids: &[i64], tokens: &[i64], extended: &HashSet<i64>) -> Vec<i64> {
        Consumer::drop_unextended(self, ids, tokens, extended)
    }
}

/// State shared by a worker's loops.
pub(crate) struct Shared {
    /// Cancelled when the worker stops claiming.
    pub(crate) stop: CancellationToken,
    pub(crate) poll_interval: Duration,
    pub(crate) stats: Stats,
    shutdown_timeout: Mutex<Duration>,
}

impl Shared {
    pub(crate) fn shutdown_timeout(&self) -> Duration {
        *self
            .shutdown_timeout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// Counters behind [`WorkerStats`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) claimed: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) lost: AtomicU64,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> WorkerStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WorkerStats {
            claimed: get(&self.claimed),
            succeeded: get(&self.succeeded),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            panicked: get(&self.panicked),
            lost: get(&self.lost),
        }
    }
}

/// What a worker has done since it started.
///
/// ```no_run
/// # fn show(worker: &pgqrs::WorkerHandle) {
/// let stats = worker.stats();
/// println!("{} ok, {} retried, {} lost", stats.succeeded, stats.retried, stats.lost);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Jobs claimed.
    pub claimed: u64,
    /// Handler returned `Ok` and the job was archived.
    pub succeeded: u64,
    /// Handler failed (or panicked) and the job will run again.
    pub retried: u64,
    /// Handler failed on the last allowed delivery; the job is in the dead letters.
    pub dead_lettered: u64,
    /// Handler panicked (also counted as retried or dead-lettered).
    pub panicked: u64,
    /// The lease was lost before the outcome could be recorded; not recorded.
    pub lost: u64,
}

/// A registered worker, as `Admin::list_workers` shows it.
///
/// ```no_run
/// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
/// let stale: Vec<_> = admin.list_workers().await?.into_iter()
///     .filter(|w| chrono::Utc::now() - w.heartbeat_at > chrono::Duration::minutes(1))
///     .collect();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// Registry id (new for every start).
    pub id: i64,
    /// The worker's name.
    pub name: String,
    /// Its process id.
    pub pid: i32,
    /// The queues it works.
    pub queues: Vec<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
}

impl From<WorkerRow> for WorkerInfo {
    fn from(row: WorkerRow) -> Self {
        WorkerInfo {
            id: row.id,
            name: row.name,
            pid: row.pid,
            queues: row.queues,
            started_at: row.started_at,
            heartbeat_at: row.heartbeat_at,
        }
    }
}

impl Worker {
    /// Registers `handler` for `T`'s queue with default [`HandlerOptions`].
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
    /// # #[pgqrs(queue = "emails")]
    /// # struct SendEmail { to: String }
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let worker = pgqrs::Worker::builder().config(config).build()
    ///     .handle(|job: pgqrs::Job<SendEmail>| async move {
    ///         println!("to {}", job.payload.to);
    ///         Ok::<(), String>(())
    ///     });
    /// # Ok(()) }
    /// ```
    pub fn handle<T, F, Fut, E>(self, handler: F) -> Self
    where
        T: JobType,
        F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        self.handle_with(HandlerOptions::default(), handler)
    }

    /// Registers `handler` for `T`'s queue with `options`.
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
    /// # #[pgqrs(queue = "emails")]
    /// # struct SendEmail { to: String }
    /// # async fn send(job: pgqrs::Job<SendEmail>) -> Result<(), String> { Ok(()) }
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let options = pgqrs::HandlerOptions::builder().concurrency(32).build();
    /// let worker = pgqrs::Worker::builder().config(config).build().handle_with(options, send);
    /// # Ok(()) }
    /// ```
    pub fn handle_with<T, F, Fut, E>(self, options: HandlerOptions, handler: F) -> Self
    where
        T: JobType,
        F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        self.register::<T, F, Fut, E>(T::QUEUE, options, handler)
    }

    /// Registers an untyped handler (payload `serde_json::Value`) for the queue `queue`.
    ///
    /// ```no_run
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let worker = pgqrs::Worker::builder().config(config).build()
    ///     .handle_queue("tasks", Default::default(), |msg: pgqrs::Message| async move {
    ///         println!("{}", msg.payload);
    ///         Ok::<(), String>(())
    ///     });
    /// # Ok(()) }
    /// ```
    pub fn handle_queue<F, Fut, E>(self, queue: &str, options: HandlerOptions, handler: F) -> Self
    where
        F: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        self.register::<serde_json::Value, F, Fut, E>(queue, options, handler)
    }

    /// Adds a periodic schedule: this worker (with any others running it) enqueues its job
    /// once per tick.
    ///
    /// ```no_run
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let nightly = pgqrs::Periodic::new("nightly-report", "0 3 * * *", "reports", &serde_json::json!({}))?;
    /// let worker = pgqrs::Worker::builder().config(config).build().periodic(nightly);
    /// # Ok(()) }
    /// ```
    pub fn periodic(mut self, schedule: Periodic) -> Self {
        self.periodic.push(schedule);
        self
    }

    fn register<T, F, Fut, E>(self, queue: &str, options: HandlerOptions, handler: F) -> Self
    where
        T: Payload,
        F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let handler = Arc::new(FnHandler(handler));
        self.register_handler(queue.to_owned(), false, options, move |_pool, _lease| {
            Ok(handler)
        })
    }

    /// Runs the workflow `W`: this worker executes its pending runs, resumes runs whose
    /// executor died, and wakes sleeping and waiting runs when their time or signal comes.
    ///
    /// ```no_run
    /// use pgqrs::workflow::Workflow;
    ///
    /// #[pgqrs::pgqrs_workflow]
    /// async fn nightly(ctx: &Workflow, day: u32) -> Result<u32, anyhow::Error> {
    ///     Ok(day)
    /// }
    ///
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let worker = pgqrs::Worker::builder().config(config).build()
    ///     .workflow::<nightly>()
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn workflow<W: WorkflowFn>(self) -> Self {
        self.workflow_with::<W>(HandlerOptions::default())
    }

    /// Runs the workflow `W` with `options` (concurrency counts runs).
    ///
    /// ```no_run
    /// # #[pgqrs::pgqrs_workflow]
    /// # async fn nightly(ctx: &pgqrs::workflow::Workflow, day: u32) -> Result<u32, anyhow::Error> { Ok(day) }
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let options = pgqrs::HandlerOptions::builder().concurrency(50).build();
    /// let worker = pgqrs::Worker::builder().config(config).build().workflow_with::<nightly>(options);
    /// # Ok(()) }
    /// ```
    pub fn workflow_with<W: WorkflowFn>(self, options: HandlerOptions) -> Self {
        let queue = match crate::workflow::queue_name(W::NAME) {
            Ok(queue) => queue,
            // `start` reports the bad name.
            Err(_) => W::NAME.to_owned(),
        };
        self.register_handler(queue, true, options, |pool, lease| {
            Ok(Arc::new(WorkflowHandler::<W>::new(pool, lease)))
        })
    }

    /// Registers a loop over `queue` running the handler `make` builds; a workflow's queue
    /// is created if missing.
    fn register_handler<T, H, M>(
        mut self,
        queue: String,
        workflow_queue: bool,
        options: HandlerOptions,
        make: M,
    ) -> Self
    where
        T: Payload,
        H: JobHandler<T>,
        M: FnOnce(PgPool, Duration) -> Result<Arc<H>> + Send + 'static,
    {
        let name = queue.clone();
        let start: StartQueue = Box::new(move |shared, config, worker_id, lease| {
            Box::pin(async move {
                let pool = config.pool().await?;
                if workflow_queue {
                    db::queue::queue_insert(&pool, &name, db::run::WORKFLOW_QUEUE_MAX_ATTEMPTS)
                        .await?;
                }
                let handler = make(pool, lease)?;
                let consumer = Consumer::<T>::for_worker(&config, &name, worker_id, lease).await?;
                let consumer = Arc::new(consumer);
                let wake = Arc::new(Notify::new());
                let runner = Runner {
                    shared,
                    consumer: Arc::clone(&consumer),
                    handler,
                    options,
                    wake: Arc::clone(&wake),
                };
                Ok(StartedQueue {
                    queue_id: consumer.queue().id,
                    holder: consumer,
                    wake,
                    run: Box::pin(runner.run()),
                })
            })
        });
        self.queues.push(Registration { queue, start });
        self
    }

    /// Registers the worker in `pgqrs.workers` and starts its loops.
    ///
    /// ```no_run
    /// # async fn demo(worker: pgqrs::Worker) -> pgqrs::Result<()> {
    /// let running = worker.start().await?;
    /// running.shutdown(std::time::Duration::from_secs(10)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn start(self) -> Result<WorkerHandle> {
        self.validate()?;
        let pool = self.config.pool().await?;
        let lease = self
            .visibility_timeout
            .unwrap_or(self.config.get_visibility_timeout());
        let queue_names: Vec<String> = self.queues.iter().map(|r| r.queue.clone()).collect();
        let pid = i32::try_from(std::process::id()).unwrap_or_default();
        let worker_id = db::worker::worker_register(&pool, &self.name, pid, &queue_names).await?;
        let stop = self
            .cancel
            .as_ref()
            .map_or_else(CancellationToken::new, CancellationToken::child_token);
        let shared = Arc::new(Shared {
            stop: stop.clone(),
            poll_interval: self.poll_interval,
            stats: Stats::default(),
            shutdown_timeout: Mutex::new(self.shutdown_timeout),
        });

        let mut started = Vec::new();
        for registration in self.queues {
            let opened =
                (registration.start)(Arc::clone(&shared), self.config.clone(), worker_id, lease)
                    .await;
            match opened {
                Ok(queue) => started.push(queue),
                Err(err) => {
                    db::worker::worker_deregister(&pool, worker_id).await?;
                    return Err(err);
                }
            }
        }
        let mut schedules = Vec::new();
        for schedule in self.periodic {
            match QueueHandle::open(&self.config, schedule.queue()).await {
                Ok(queue) => schedules.push((schedule, queue.info.id)),
                Err(err) => {
                    db::worker::worker_deregister(&pool, worker_id).await?;
                    return Err(err);
                }
            }
        }

        let background_stop = CancellationToken::new();
        let mut background = JoinSet::new();
        let wakers: HashMap<i32, Arc<Notify>> = started
            .iter()
            .map(|q| (q.queue_id, Arc::clone(&q.wake)))
            .collect();
        if self.listen && !wakers.is_empty() {
            background.spawn(background::listen(
                pool.clone(),
                wakers,
                background_stop.clone(),
            ));
        }
        if self.heartbeat {
            let identity = background::Identity {
                id: worker_id,
                name: self.name.clone(),
                pid,
                queues: queue_names,
            };
            let holders = started.iter().map(|q| Arc::clone(&q.holder)).collect();
            background.spawn(background::heartbeat(
                pool.clone(),
                identity,
                holders,
                lease,
                self.reap_after,
                background_stop.clone(),
            ));
        }
        for (schedule, queue_id) in schedules {
            background.spawn(periodic::run(
                pool.clone(),
                schedule,
                queue_id,
                background_stop.clone(),
            ));
        }
        let mut runners = JoinSet::new();
        for queue in started {
            runners.spawn(queue.run);
        }
        tracing::info!(worker_id, name = %self.name, "worker started");

        let supervisor = tokio::spawn(async move {
            stop.cancelled().await;
            while let Some(joined) = runners.join_next().await {
                if let Err(err) = joined {
                    tracing::error!(error = %err, "a queue loop ended abnormally");
                }
            }
            background_stop.cancel();
            while background.join_next().await.is_some() {}
            db::worker::worker_deregister(&pool, worker_id).await?;
            tracing::info!(worker_id, "worker stopped");
            Ok(())
        });
        Ok(WorkerHandle {
            id: worker_id,
            shared,
            supervisor,
        })
    }

    fn validate(&self) -> Result<()> {
        let name_ok = (1..=128).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:@".contains(&b));
        if !name_ok {
            return Err(Error::InvalidArgument(format!(
                "invalid worker name {:?}: use 1 to 128 characters from A-Z a-z 0-9 _ - . : @",
                self.name.chars().take(64).collect::<String>()
            )));
        }
        if self.queues.is_empty() && self.periodic.is_empty() {
            return Err(Error::InvalidArgument(
                "a worker needs at least one handler or periodic schedule".into(),
            ));
        }
        let mut seen = HashSet::new();
        for registration in &self.queues {
            crate::QueueName::new(&registration.queue)?;
            if !seen.insert(registration.queue.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "two handlers for queue `{}`: a worker runs one handler per queue",
                    registration.queue
                )));
            }
        }
        Ok(())
    }
}

/// A started worker.
///
/// ```no_run
/// # async fn demo(worker: pgqrs::WorkerHandle) -> pgqrs::Result<()> {
/// println!("worker {} did {:?}", worker.id(), worker.stats());
/// worker.shutdown(std::time::Duration::from_secs(30)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WorkerHandle {
    id: i64,
    shared: Arc<Shared>,
    supervisor: tokio::task::JoinHandle<Result<()>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("stopping", &self.stop.is_cancelled())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl WorkerHandle {
    /// The worker's registry id (`pgqrs.workers.id`, and `worker_id` of the jobs it holds).
    ///
    /// ```no_run
    /// # fn show(worker: &pgqrs::WorkerHandle) { println!("{}", worker.id()); }
    /// ```
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Counters of what the worker has done so far.
    ///
    /// ```no_run
    /// # fn show(worker: &pgqrs::WorkerHandle) { assert_eq!(worker.stats().lost, 0); }
    /// ```
    pub fn stats(&self) -> WorkerStats {
        self.shared.stats.snapshot()
    }

    /// Stops claiming, hands back prefetched jobs that did not start, lets running handlers
    /// finish for up to `timeout`, then aborts the rest and hands their jobs back. Returns
    /// once the worker is deregistered; it holds no job by then.
    ///
    /// ```no_run
    /// # async fn demo(worker: pgqrs::WorkerHandle) -> pgqrs::Result<()> {
    /// worker.shutdown(std::time::Duration::from_secs(30)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(self, timeout: Duration) -> Result<()> {
        *self
            .shared
            .shutdown_timeout
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = timeout;
        self.shared.stop.cancel();
        self.wait().await
    }

    /// Waits until the worker has stopped, for instance through its cancellation token.
    ///
    /// ```no_run
    /// # async fn demo(worker: pgqrs::WorkerHandle) -> pgqrs::Result<()> {
    /// worker.wait().await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait(self) -> Result<()> {
        match self.supervisor.await {
            Ok(result) => result,
            Err(err) => Err(Error::Internal(format!(
                "the worker supervisor task failed: {err}"
            ))),
        }
    }
}
