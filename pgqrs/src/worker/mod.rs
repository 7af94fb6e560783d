//! The worker runtime: typed handlers run under heartbeated leases, with batched claims and
//! acks, retries with backoff, wake-ups by LISTEN/NOTIFY and a graceful shutdown.

mod background;
mod handle;
mod options;
mod periodic;
mod register;
mod runner;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use typed_builder::TypedBuilder;

pub(crate) use handle::{Shared, Stats};
pub use handle::{WorkerHandle, WorkerInfo, WorkerStats};
pub use options::{Backoff, HandlerOptions};
pub use periodic::Periodic;
pub(crate) use register::{Handled, JobHandler};

use crate::db;
use crate::queue::QueueHandle;
use crate::{Config, Consumer, Error, Payload, Result};

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
    /// Wake up on `NOTIFY pgqrs_jobs`. By default the worker listens unless the config
    /// declares a transaction-mode [`Pooler`](crate::Pooler), where LISTEN does not work;
    /// polling remains either way.
    #[builder(default, setter(strip_option))]
    listen: Option<bool>,
    /// Listen over this connection instead of the config's (for example a direct or
    /// session-mode URL next to a transaction-mode pooler). Implies listening.
    #[builder(default, setter(strip_option))]
    listen_config: Option<Config>,
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

impl Worker {
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
        let pool = self.config.db().await?;
        let listen = self
            .listen
            .unwrap_or(self.listen_config.is_some() || self.config.get_pooler().supports_listen());
        let listen_pool = match (&self.listen_config, listen) {
            (_, false) => None,
            (Some(config), true) => Some(config.db().await?),
            (None, true) => Some(pool.clone()),
        };
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
        if let Some(listen_pool) = listen_pool.filter(|_| !wakers.is_empty()) {
            background.spawn(background::listen(
                listen_pool,
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
