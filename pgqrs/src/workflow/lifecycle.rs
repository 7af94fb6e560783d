//! A run's execution around its workflow body: return a finished run's recorded result,
//! keep a directly executed run's lease alive, record how the body ended.

use std::future::Future;
use std::time::Duration;

use tracing::Instrument;

use super::RunStatus;
use super::context::Workflow;
use super::exec::{AbortOnDrop, Interrupt, StepError, StepOutput};
use crate::db;
use crate::{Error, Result};

/// What [`Workflow::__workflow_begin`] found.
#[doc(hidden)]
#[derive(Debug)]
pub enum Begin {
    /// The run is active: execute the body.
    Run,
    /// The run succeeded before: its recorded output (JSON).
    Done(String),
}

impl Workflow {
    /// For bindings that run the body themselves: [`Workflow::begin`], and for a directly
    /// executed run, renewing its lease until [`Workflow::__workflow_finish`] or until the
    /// context is dropped.
    #[doc(hidden)]
    pub fn __workflow_begin(&self, name: &str, version: &str) -> Result<Begin> {
        let begin = self.begin(name, version)?;
        if matches!(begin, Begin::Run) {
            self.state().heartbeat = self
                .direct
                .then(|| AbortOnDrop(self.spawn_heartbeat(self.renewal_period())));
        }
        Ok(begin)
    }

    /// Checks that this run belongs to workflow `name` at `version` and, if it already
    /// ended, returns its result; otherwise prepares a fresh execution of the body.
    fn begin(&self, name: &str, version: &str) -> Result<Begin> {
        if name != self.workflow {
            return Err(Error::InvalidArgument(format!(
                "run {} is a run of workflow `{}`, not `{name}`",
                self.run_id, self.workflow
            )));
        }
        if !self.version.is_empty() && version != self.version {
            return Err(Error::VersionMismatch {
                run_id: self.run_id,
                workflow: self.workflow.clone(),
                run_version: self.version.clone(),
                code_version: version.to_owned(),
            });
        }
        {
            let state = self.state();
            match state.status {
                RunStatus::Succeeded => {
                    return Ok(Begin::Done(
                        state.output.clone().unwrap_or_else(|| "null".into()),
                    ));
                }
                RunStatus::Failed => {
                    return Err(Error::WorkflowFailed {
                        run_id: self.run_id,
                        error: state.error.clone().unwrap_or_default(),
                    });
                }
                RunStatus::Cancelled => {
                    return Err(Error::Cancelled {
                        run_id: self.run_id,
                    });
                }
                _ => {}
            }
        }
        self.check_interrupt()?;
        self.state().next_seq = 0;
        self.run_started();
        Ok(Begin::Run)
    }

    /// Records how the body ended: its output (JSON) or its error (text). Nothing is
    /// recorded when the execution was suspended or lost its lease: that error is returned.
    #[doc(hidden)]
    pub async fn __workflow_finish(&self, outcome: std::result::Result<&str, &str>) -> Result<()> {
        let interrupt = {
            let mut state = self.state();
            state.heartbeat = None;
            state.interrupt.clone()
        };
        if let Some(interrupt) = interrupt {
            self.run_ended(match interrupt {
                Interrupt::Suspended(_) => "suspended",
                Interrupt::Lost(_) => "interrupted",
            });
            return Err(interrupt.to_error(self.run_id, self.job_id));
        }
        let finished = match outcome {
            Ok(output) => self.finish(Some(output), None).await,
            Err(error) => self.finish(None, Some(error)).await,
        };
        self.run_ended(match (&finished, outcome) {
            (Ok(()), Ok(_)) => "succeeded",
            (Ok(()), Err(_)) => "failed",
            (Err(_), _) => "interrupted",
        });
        finished
    }

    /// For bindings whose body was cancelled without an outcome: stops renewing the lease,
    /// so the run is resumed elsewhere once it runs out. Nothing is recorded.
    #[doc(hidden)]
    pub fn __workflow_abandon(&self) {
        self.state().heartbeat = None;
        self.run_ended("interrupted");
    }

    /// Executes a workflow body on this run: a finished run returns its recorded result,
    /// an active one runs `body` (replaying recorded steps) and records how it ended.
    #[doc(hidden)]
    pub async fn __run_workflow<T, E, F>(
        &self,
        name: &str,
        version: &str,
        body: F,
    ) -> std::result::Result<T, E>
    where
        T: StepOutput,
        E: StepError,
        F: Future<Output = std::result::Result<T, E>>,
    {
        match self.begin(name, version).map_err(E::from)? {
            Begin::Done(output) => {
                return serde_json::from_str(&output).map_err(|err| {
                    E::from(Error::SchemaMismatch {
                        run_id: self.run_id,
                        step: "output".into(),
                        seq: -1,
                        detail: err.to_string(),
                    })
                });
            }
            Begin::Run => {}
        }
        let span = self.run_span();
        let body = body.instrument(span.clone());
        let result = if self.direct {
            // A run that ends before its first renewal is due spawns nothing: a spawn and
            // its abort per run cost 0.13 ms of a 1.7 ms 3-step run (pgqrs-bench F). One that
            // lives longer is renewed from a task of its own from then on, so that a body
            // blocking its thread cannot starve the renewals. The task is aborted when this
            // future ends or is dropped: a caller that gives up on the run stops renewing it.
            tokio::pin!(body);
            let first_renewal = tokio::time::sleep(self.renewal_period());
            tokio::select! {
                biased;
                result = &mut body => result,
                () = first_renewal => {
                    let _heartbeat = AbortOnDrop(self.spawn_heartbeat(Duration::ZERO));
                    body.await
                }
            }
        } else {
            body.await
        };
        async {
            match result {
                Ok(output) => {
                    let json = crate::job::to_json(&output).map_err(E::from)?;
                    self.__workflow_finish(Ok(&json)).await.map_err(E::from)?;
                    Ok(output)
                }
                Err(err) => match self.__workflow_finish(Err(&err.to_string())).await {
                    // Suspended or lost: the body's own error already says so.
                    Err(Error::Suspended { .. } | Error::LeaseLost { .. }) | Ok(()) => Err(err),
                    Err(other) => Err(E::from(other)),
                },
            }
        }
        .instrument(span)
        .await
    }

    /// Ends the run as failed because its stored input no longer decodes.
    #[doc(hidden)]
    pub async fn __fail_input(&self, err: Error) {
        if let Err(finish) = self.finish(None, Some(&err.to_string())).await {
            tracing::warn!(run_id = self.run_id, error = %finish, "could not record the failed run");
            self.run_ended("interrupted");
        } else {
            self.run_ended("failed");
        }
    }

    /// Records the run's end and deletes its job, fenced by the lease.
    pub(super) async fn finish(&self, output: Option<&str>, error: Option<&str>) -> Result<()> {
        let finished = db::run::run_finish(self.pool(), self.hold(), output, error)
            .await
            .map_err(|err| self.interrupted(err.into()))?;
        if !finished {
            return Err(self.lose());
        }
        let mut state = self.state();
        state.status = if error.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        state.output = output.map(str::to_owned);
        state.error = error.map(str::to_owned);
        Ok(())
    }

    /// How often a directly executed run's lease is renewed: every third of its length.
    fn renewal_period(&self) -> Duration {
        (self.lease_time / 3).max(Duration::from_millis(50))
    }

    /// Keeps a directly executed run's lease alive from a task of its own: renews it after
    /// `first`, then every [`Self::renewal_period`], until the lease is lost or the task is
    /// aborted.
    fn spawn_heartbeat(&self, first: Duration) -> tokio::task::AbortHandle {
        let pool = self.pool().clone();
        let (job_id, lease, every) = (self.job_id, self.lease.clone(), self.renewal_period());
        let secs = self.lease_time.as_secs_f64();
        tokio::spawn(async move {
            let mut wait = first;
            loop {
                tokio::time::sleep(wait).await;
                wait = every;
                match db::job::job_extend_lease(&pool, job_id, lease.token(), secs).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        lease.mark_lost();
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(job_id, error = %err, "extending a workflow run's lease failed")
                    }
                }
            }
        })
        .abort_handle()
    }
}
