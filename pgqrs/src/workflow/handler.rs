//! Workers execute workflow runs: the job of a run carries its id, and holding that job's
//! lease is holding the run.

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use crate::db::Db;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::exec::Interrupt;
use super::{Workflow, WorkflowFn};
use crate::Job;
use crate::db;
use crate::worker::{Handled, JobHandler};

/// The payload of a run's job.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RunJob {
    pub(crate) run_id: i64,
}

/// Executes runs of `W` from the jobs of its queue.
pub(crate) struct WorkflowHandler<W> {
    pool: Db,
    lease_time: Duration,
    workflow: PhantomData<fn() -> W>,
}

impl<W> WorkflowHandler<W> {
    pub(crate) fn new(pool: Db, lease_time: Duration) -> Self {
        WorkflowHandler {
            pool,
            lease_time,
            workflow: PhantomData,
        }
    }
}

impl<W: WorkflowFn> JobHandler<RunJob> for WorkflowHandler<W> {
    fn handle(&self, job: Job<RunJob>) -> BoxFuture<'static, Handled> {
        let (pool, lease_time) = (self.pool.clone(), self.lease_time);
        Box::pin(async move {
            let resumed = Workflow::resume(
                pool.clone(),
                job.payload.run_id,
                job.lease.clone(),
                lease_time,
                false,
                Some(job.attempts),
            )
            .await;
            let ctx = match resumed {
                Ok(Some(ctx)) => ctx,
                // The run was deleted: its job has nothing left to drive.
                Ok(None) => return drop_job(&pool, &job).await,
                Err(err) => return Handled::Failed(err.to_string()),
            };
            if ctx.state().status.is_terminal() {
                return drop_job(&pool, &job).await;
            }
            if !ctx.version.is_empty() && ctx.version != W::VERSION {
                return Handled::Failed(format!(
                    "run {} was started by version {:?} of `{}`, this worker runs version {:?}",
                    ctx.run_id,
                    ctx.version,
                    W::NAME,
                    W::VERSION
                ));
            }
            if let Err(panic) = AssertUnwindSafe(W::__execute(&ctx)).catch_unwind().await {
                let detail = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let error = format!("the workflow panicked: {detail}");
                return match ctx.finish(None, Some(&error)).await {
                    Ok(()) => {
                        ctx.run_ended("failed");
                        Handled::Settled
                    }
                    Err(err) => {
                        ctx.run_ended("interrupted");
                        Handled::Failed(err.to_string())
                    }
                };
            }
            let state = ctx.state();
            match (&state.interrupt, state.status.is_terminal()) {
                (Some(Interrupt::Suspended(_)), _) | (None, true) => Handled::Settled,
                (Some(Interrupt::Lost(reason)), _) => Handled::Failed(reason.clone()),
                (None, false) => Handled::Failed(format!(
                    "run {} stopped before it finished; it will be resumed",
                    ctx.run_id
                )),
            }
        })
    }
}

async fn drop_job(pool: &Db, job: &Job<RunJob>) -> Handled {
    match db::job::job_delete_batch(pool, &[job.id], &[job.lease.token()]).await {
        Ok(_) => Handled::Settled,
        Err(err) => Handled::Failed(err.to_string()),
    }
}
