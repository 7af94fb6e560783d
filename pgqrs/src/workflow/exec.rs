//! What `#[pgqrs_workflow]` and `#[pgqrs_step]` expand to: the replay-or-record logic of
//! steps and the run lifecycle around a workflow body. The macros only call these.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::context::Workflow;
use super::{PoolSource, RunHandle, RunStatus};
use crate::db;
use crate::db::step::NewStep;
use crate::{Error, Result};

/// What a step or workflow returns: stored as JSON, described by a JSON schema whose
/// fingerprint is stored alongside, decoded back on replay.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a step or workflow output: it must be `Serialize + DeserializeOwned + JsonSchema + Send + 'static`",
    label = "not storable as a step output",
    note = "add `#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]` to it (schemars is re-exported as `pgqrs::schemars`)"
)]
pub trait StepOutput: Serialize + DeserializeOwned + JsonSchema + Send + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned + JsonSchema + Send + 'static> StepOutput for T {}

/// The error type of a step or workflow: it carries pgqrs's own errors (a lost lease, a
/// suspension, a database error) and is recorded as text when the workflow fails.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a step or workflow error: it must implement `From<pgqrs::Error>` and `Display`",
    label = "cannot carry a pgqrs::Error",
    note = "`anyhow::Error` and `Box<dyn std::error::Error + Send + Sync>` work as they are; for your own error type add a variant holding `pgqrs::Error` with `impl From<pgqrs::Error>`"
)]
pub trait StepError: From<Error> + Display + Send + 'static {}

#[diagnostic::do_not_recommend]
impl<E: From<Error> + Display + Send + 'static> StepError for E {}

/// A workflow function, as `#[pgqrs_workflow]` describes it to workers. The macro
/// implements it on a type named like the function, so `Worker::workflow::<data_pipeline>()`
/// registers it.
pub trait WorkflowFn: Send + Sync + 'static {
    /// The workflow's name (the function's name unless `#[pgqrs_workflow(name = "...")]`).
    const NAME: &'static str;
    /// The workflow's version (`#[pgqrs_workflow(version = "...")]`, empty by default).
    const VERSION: &'static str;
    /// The stored input (an owned form of the function's input parameter).
    type Input: Serialize + DeserializeOwned + Send + Sync;

    /// Creates a run of this workflow, version included, for this process to execute.
    fn create(
        source: impl PoolSource,
        input: &Self::Input,
    ) -> impl Future<Output = Result<Workflow>> {
        Workflow::create_versioned(source, Self::NAME, Self::VERSION, input)
    }

    /// Creates a pending run of this workflow, version included, for a worker to execute.
    fn enqueue(
        source: impl PoolSource,
        input: &Self::Input,
    ) -> impl Future<Output = Result<RunHandle>> {
        Workflow::enqueue_versioned(source, Self::NAME, Self::VERSION, input)
    }

    /// Decodes the run's input and runs the function; the outcome is recorded in `ctx`.
    #[doc(hidden)]
    fn __execute(ctx: &Workflow) -> BoxFuture<'_, ()>;
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A step's static description.
#[doc(hidden)]
#[derive(Debug)]
pub struct StepMeta {
    pub name: &'static str,
    pub retries: u32,
    pub backoff: Duration,
}

/// A recorded step, as loaded from `pgqrs.steps`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct RecordedStep {
    pub(super) seq: i32,
    pub(super) name: String,
    pub(super) input: serde_json::Value,
    pub(super) output: serde_json::Value,
    pub(super) fingerprint: String,
}

/// Why execution stopped before the workflow body returned on its own.
#[derive(Debug, Clone)]
pub(super) enum Interrupt {
    /// Durable sleep or wait: the run is parked, its lease released.
    Suspended(String),
    /// A lost lease or database error: the run is left for the next holder of its job.
    Lost(String),
}

impl Interrupt {
    pub(super) fn to_error(&self, run_id: i64, job_id: i64) -> Error {
        match self {
            Interrupt::Suspended(reason) => Error::Suspended {
                run_id,
                reason: reason.clone(),
            },
            Interrupt::Lost(_) => Error::LeaseLost {
                job_ids: vec![job_id],
            },
        }
    }
}

/// The return type of a step or workflow: `Result<T, E>` (under any alias) with a
/// storable `T` and an `E` that carries pgqrs errors.
#[diagnostic::on_unimplemented(
    message = "a step or workflow returns `Result<T, E>`, not `{Self}`",
    label = "expected `Result<T, E>`",
    note = "`T` is the output (stored as JSON), `E` the error (`anyhow::Error` works)"
)]
pub trait StepResult {
    /// `T`.
    type Output;
    /// `E`.
    type Error;
}

impl<T, E> StepResult for std::result::Result<T, E> {
    type Output = T;
    type Error = E;
}

/// Compile-time check of a step's or workflow's return type.
#[doc(hidden)]
pub fn __assert_result<R>()
where
    R: StepResult,
    R::Output: StepOutput,
    R::Error: StepError,
{
}

/// Gives an async block its `Result<T, E>` type, so `?` inside it converts errors.
#[doc(hidden)]
pub fn __typed<T, E, F: Future<Output = std::result::Result<T, E>>>(future: F) -> F {
    future
}

/// The fingerprint of `T`'s JSON schema (FNV-1a of the schema's JSON), cached per type.
pub(super) fn fingerprint<T: JsonSchema + 'static>() -> String {
    static CACHE: OnceLock<Mutex<HashMap<TypeId, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .entry(TypeId::of::<T>())
        .or_insert_with(|| {
            let schema = serde_json::to_string(&schemars::schema_for!(T)).unwrap_or_default();
            let hash = schema
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                    (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
                });
            format!("{hash:016x}")
        })
        .clone()
}

/// What a step call found: a recorded output to return, or a step to run and record.
#[doc(hidden)]
#[derive(Debug)]
pub enum StepCall<T> {
    /// The step ran before; its output.
    Replayed(T),
    /// The step must run; record its output with [`Workflow::__step_complete`].
    Run(PendingStep),
}

/// A step that is running, to be recorded.
#[doc(hidden)]
#[derive(Debug)]
pub struct PendingStep {
    seq: i32,
    name: &'static str,
    input: String,
    attempts: u32,
}

impl PendingStep {
    /// After a failed attempt: waits the backoff and returns `true` if another attempt is
    /// allowed.
    pub async fn retry(&mut self, meta: &StepMeta) -> bool {
        if self.attempts > meta.retries {
            return false;
        }
        let exponent = self.attempts.saturating_sub(1).min(16);
        tokio::time::sleep(meta.backoff.saturating_mul(1 << exponent)).await;
        self.attempts += 1;
        true
    }
}

impl Workflow {
    /// Starts a step call at the next sequence number: replays it if it is recorded.
    #[doc(hidden)]
    pub fn __step_begin<T: StepOutput, I: Serialize + ?Sized>(
        &self,
        meta: &StepMeta,
        input: &I,
    ) -> Result<StepCall<T>> {
        self.check_interrupt()?;
        let seq = self.next_seq();
        let input = serde_json::to_value(input).map_err(Error::Encode)?;
        if let Some(step) = self.recorded(seq) {
            if step.name != meta.name || step.input != input {
                return Err(self.diverged(seq, &step, &format!("{}({input})", meta.name)));
            }
            return self.replay(seq, &step).map(StepCall::Replayed);
        }
        if self.lease.is_lost() {
            return Err(self.lose());
        }
        Ok(StepCall::Run(PendingStep {
            seq,
            name: meta.name,
            input: input.to_string(),
            attempts: 1,
        }))
    }

    /// Records a step's output, fenced by the run's lease, and hands it back.
    #[doc(hidden)]
    pub async fn __step_complete<T: StepOutput>(&self, step: PendingStep, output: T) -> Result<T> {
        let json = serde_json::to_value(&output).map_err(Error::Encode)?;
        let text = json.to_string();
        let fingerprint = fingerprint::<T>();
        let recorded = db::step::step_complete(
            self.pool(),
            &NewStep {
                lease: self.hold(),
                seq: step.seq,
                name: step.name,
                input: &step.input,
                output: &text,
                fingerprint: &fingerprint,
                attempts: i32::try_from(step.attempts).unwrap_or(i32::MAX),
            },
        )
        .await
        .map_err(|err| self.interrupted(err.into()))?;
        if !recorded {
            return Err(self.lose());
        }
        let input = serde_json::from_str(&step.input).unwrap_or_default();
        self.state().steps.insert(
            step.seq,
            RecordedStep {
                seq: step.seq,
                name: step.name.to_owned(),
                input,
                output: json,
                fingerprint,
            },
        );
        Ok(output)
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
        if name != self.workflow {
            return Err(E::from(Error::InvalidArgument(format!(
                "run {} is a run of workflow `{}`, not `{name}`",
                self.run_id, self.workflow
            ))));
        }
        if !self.version.is_empty() && version != self.version {
            return Err(E::from(Error::VersionMismatch {
                run_id: self.run_id,
                workflow: self.workflow.clone(),
                run_version: self.version.clone(),
                code_version: version.to_owned(),
            }));
        }
        if let Some(ended) = self.ended::<T>() {
            return ended.map_err(E::from);
        }
        self.check_interrupt().map_err(E::from)?;
        self.state().next_seq = 0;
        // Dropped with this future: a caller that gives up on the run stops renewing it.
        let heartbeat = self.direct.then(|| AbortOnDrop(self.spawn_heartbeat()));
        let result = body.await;
        drop(heartbeat);
        let interrupt = self.state().interrupt.clone();
        match (result, interrupt) {
            (Err(err), Some(_)) => Err(err),
            (Ok(_), Some(interrupt)) => Err(E::from(interrupt.to_error(self.run_id, self.job_id))),
            (Ok(output), None) => {
                let json =
                    serde_json::to_string(&output).map_err(|err| E::from(Error::Encode(err)))?;
                self.finish(Some(&json), None).await.map_err(E::from)?;
                Ok(output)
            }
            (Err(err), None) => {
                self.finish(None, Some(&err.to_string()))
                    .await
                    .map_err(E::from)?;
                Err(err)
            }
        }
    }

    /// Ends the run as failed because its stored input no longer decodes.
    #[doc(hidden)]
    pub async fn __fail_input(&self, err: Error) {
        if let Err(finish) = self.finish(None, Some(&err.to_string())).await {
            tracing::warn!(run_id = self.run_id, error = %finish, "could not record the failed run");
        }
    }

    /// The recorded result, if the run already ended.
    fn ended<T: StepOutput>(&self) -> Option<Result<T>> {
        let state = self.state();
        let run_id = self.run_id;
        match state.status {
            RunStatus::Succeeded => Some(
                serde_json::from_str(state.output.as_deref().unwrap_or("null")).map_err(|err| {
                    Error::SchemaMismatch {
                        run_id,
                        step: "output".into(),
                        seq: -1,
                        detail: err.to_string(),
                    }
                }),
            ),
            RunStatus::Failed => Some(Err(Error::WorkflowFailed {
                run_id,
                error: state.error.clone().unwrap_or_default(),
            })),
            RunStatus::Cancelled => Some(Err(Error::Cancelled { run_id })),
            _ => None,
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

    /// Keeps a directly executed run's lease alive while its body runs.
    fn spawn_heartbeat(&self) -> tokio::task::AbortHandle {
        let pool = self.pool().clone();
        let (job_id, lease, every) = (self.job_id, self.lease.clone(), self.lease_time / 3);
        let secs = self.lease_time.as_secs_f64();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every.max(Duration::from_millis(50))).await;
                match db::job::job_extend_lease(&pool, job_id, lease.token(), secs).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        lease.mark_lost();
                        return;
                    }
                    Err(err) => tracing::warn!(job_id, error = %err, "extending a workflow run's lease failed"),
                }
            }
        })
        .abort_handle()
    }
}
