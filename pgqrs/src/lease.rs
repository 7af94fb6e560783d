//! The lease a consumer holds on a delivered job.

use std::fmt;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::{Error, Result};

/// A consumer's hold on one delivered job: its fencing token, and whether pgqrs has learned
/// that the hold is gone (the lease expired and another consumer claimed the job).
///
/// Cloning shares the state. A worker handler can watch its lease while it works:
///
/// ```no_run
/// # async fn handler(job: pgqrs::Message) -> pgqrs::Result<()> {
/// tokio::select! {
///     _ = job.lease.lost() => return Err(pgqrs::Error::LeaseLost { job_ids: vec![job.id] }),
///     _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
/// }
/// job.lease.check()?; // before an irreversible side effect
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Lease {
    job_id: i64,
    token: i64,
    state: Arc<LeaseState>,
}

#[derive(Default)]
struct LeaseState {
    lost: AtomicBool,
    changed: Notify,
}

impl Lease {
    pub(crate) fn new(job_id: i64, token: i64) -> Self {
        Lease {
            job_id,
            token,
            state: Arc::default(),
        }
    }

    /// The job this lease is on.
    pub(crate) fn job_id(&self) -> i64 {
        self.job_id
    }

    /// The fencing token of this delivery.
    ///
    /// ```no_run
    /// # fn show(job: pgqrs::Message) {
    /// println!("job {} held under token {}", job.id, job.lease.token());
    /// # }
    /// ```
    pub fn token(&self) -> i64 {
        self.token
    }

    /// Whether the lease is known to be lost. `false` means "not known to be lost": a plain
    /// consumer learns of a loss only when it next acts on the job, a worker within one
    /// heartbeat.
    ///
    /// ```no_run
    /// # fn show(job: pgqrs::Message) {
    /// if job.lease.is_lost() { println!("someone else has job {}", job.id) }
    /// # }
    /// ```
    pub fn is_lost(&self) -> bool {
        self.state.lost.load(Ordering::Acquire)
    }

    /// [`Error::LeaseLost`] if the lease is known to be lost, for a check before a side
    /// effect that must not happen twice.
    ///
    /// ```no_run
    /// # fn show(job: pgqrs::Message) -> pgqrs::Result<()> {
    /// job.lease.check()?;
    /// # Ok(()) }
    /// ```
    pub fn check(&self) -> Result<()> {
        if self.is_lost() {
            Err(Error::LeaseLost {
                job_ids: vec![self.job_id],
            })
        } else {
            Ok(())
        }
    }

    /// Resolves once the lease is known to be lost (never, if it is not).
    ///
    /// ```no_run
    /// # async fn show(job: pgqrs::Message) {
    /// job.lease.lost().await;
    /// println!("stop working on job {}", job.id);
    /// # }
    /// ```
    pub async fn lost(&self) {
        loop {
            let mut changed = pin!(self.state.changed.notified());
            changed.as_mut().enable();
            if self.is_lost() {
                return;
            }
            changed.await;
        }
    }

    pub(crate) fn mark_lost(&self) {
        self.state.lost.store(true, Ordering::Release);
        self.state.changed.notify_waiters();
    }
}

impl PartialEq for Lease {
    fn eq(&self, other: &Self) -> bool {
        (self.job_id, self.token) == (other.job_id, other.token)
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("token", &self.token)
            .field("lost", &self.is_lost())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lost_wakes_waiters_and_check_reports_it() {
        let lease = Lease::new(7, 1);
        assert!(lease.check().is_ok());
        let waiter = tokio::spawn({
            let lease = lease.clone();
            async move { lease.lost().await }
        });
        tokio::task::yield_now().await;
        lease.mark_lost();
        waiter.await.unwrap();
        assert!(matches!(lease.check(), Err(Error::LeaseLost { job_ids }) if job_ids == vec![7]));
        lease.lost().await; // already lost: returns at once
    }
}
