//! A running worker's handle, its counters, and the registry view of workers.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::db::worker::WorkerRow;
use crate::{Error, Result};

/// State shared by a worker's loops.
pub(crate) struct Shared {
    /// Cancelled when the worker stops claiming.
    pub(crate) stop: CancellationToken,
    pub(crate) poll_interval: Duration,
    pub(crate) stats: Stats,
    pub(super) shutdown_timeout: Mutex<Duration>,
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
    pub(super) id: i64,
    pub(super) shared: Arc<Shared>,
    pub(super) supervisor: tokio::task::JoinHandle<Result<()>>,
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
