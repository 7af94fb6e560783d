//! Executing in this process a run that a workflow worker would otherwise pick up: the next
//! runnable run of a workflow, or one given run whose executor died. For applications (and
//! the bindings) that drive workflows without a [`Worker`](crate::Worker).

use super::context::Workflow;
use super::handler::RunJob;
use super::{PoolSource, RunStatus};
use crate::db;
use crate::{Config, Consumer, Error, Lease, Result};

impl Workflow {
    /// Claims the next runnable run of workflow `name` (new, woken from a sleep or a
    /// signal, or left behind by an executor whose lease ran out) for this process to
    /// execute: call the workflow function with it. `None` when no run is waiting.
    ///
    /// ```no_run
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// use pgqrs::workflow::Workflow;
    /// while let Some(ctx) = Workflow::claim_next(&config, "data_pipeline").await? {
    ///     let url: String = ctx.input()?;
    ///     // data_pipeline(&ctx, &url).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn claim_next(config: &Config, name: &str) -> Result<Option<Workflow>> {
        let (pool, lease_time) = config.resolve().await?;
        super::ensure_queue(&pool, name).await?;
        let consumer = Consumer::<RunJob>::open(config, &super::queue_name(name)?).await?;
        while let Some(job) = consumer.dequeue_for(lease_time).await? {
            let resumed = Self::resume(
                pool.clone(),
                job.payload.run_id,
                job.lease.clone(),
                lease_time,
                true,
                Some(job.attempts),
            )
            .await?;
            match resumed {
                Some(ctx) if !ctx.state().status.is_terminal() => return Ok(Some(ctx)),
                // A job whose run is gone or over has nothing left to drive.
                _ => {
                    db::job::job_delete_batch(&pool, &[job.id], &[job.lease.token()]).await?;
                }
            }
        }
        Ok(None)
    }

    /// Takes over run `run_id` to execute it in this process: a run waiting for a worker,
    /// or one whose executor died (once its lease ran out). The former holder, should it
    /// come back, is fenced off. Call the workflow function with the context: it resumes
    /// after the last recorded step.
    ///
    /// Errors: [`Error::RunNotFound`], [`Error::RunBusy`] while another executor holds the
    /// run, [`Error::IllegalTransition`] when the run is over.
    ///
    /// ```no_run
    /// # async fn demo(config: pgqrs::Config, run_id: i64) -> pgqrs::Result<()> {
    /// let ctx = pgqrs::workflow::Workflow::take_over(&config, run_id).await?;
    /// let url: String = ctx.input()?;
    /// # Ok(()) }
    /// ```
    pub async fn take_over(source: impl PoolSource, run_id: i64) -> Result<Workflow> {
        let (pool, lease_time) = source.resolve().await?;
        let taken = db::run::run_take_over(&pool, run_id, lease_time.as_secs_f64())
            .await?
            .ok_or(Error::RunNotFound { run_id })?;
        let (Some(job_id), Some(token)) = (taken.job_id, taken.token) else {
            let status: RunStatus = taken.status.parse()?;
            return Err(if status.is_terminal() {
                Error::IllegalTransition {
                    run_id,
                    from: status,
                    to: RunStatus::Running,
                }
            } else {
                Error::RunBusy { run_id }
            });
        };
        let lease = Lease::new(job_id, token);
        Self::resume(pool, run_id, lease, lease_time, true, None)
            .await?
            .ok_or(Error::RunNotFound { run_id })
    }

    /// The run's input, decoded as `T`.
    ///
    /// ```no_run
    /// # fn demo(ctx: &pgqrs::workflow::Workflow) -> pgqrs::Result<()> {
    /// let url: String = ctx.input()?;
    /// # Ok(()) }
    /// ```
    pub fn input<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        self.__input()
    }
}
