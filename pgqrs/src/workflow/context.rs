//! The workflow context: one run, held by this process under the lease of its driving job.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::db::Db;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::exec::{AbortOnDrop, Interrupt, RecordedStep, fingerprint};
use super::{PoolSource, RunHandle, RunStatus, StepOutput};
use crate::db;
use crate::{Error, Lease, Result};

/// A workflow run held by this process: the `ctx` every workflow and step function takes.
///
/// Made by [`Workflow::create`] (this process will execute the run) or by a workflow
/// worker resuming a run. Calling a `#[pgqrs_workflow]` function with it executes the run:
/// recorded steps return their stored outputs, the others run and are recorded.
pub struct Workflow {
    pool: Db,
    pub(super) run_id: i64,
    pub(super) job_id: i64,
    pub(super) lease: Lease,
    pub(super) lease_time: Duration,
    pub(super) workflow: String,
    pub(super) version: String,
    /// Executed by its creator, which keeps the lease alive itself (no worker holds it).
    pub(super) direct: bool,
    /// The delivery of the run's job this execution holds, when known.
    pub(super) attempt: Option<i32>,
    input: String,
    state: Mutex<ExecState>,
}

/// What this process knows about the run while executing it.
#[derive(Debug)]
pub(super) struct ExecState {
    pub(super) next_seq: i32,
    pub(super) steps: HashMap<i32, RecordedStep>,
    pub(super) status: RunStatus,
    pub(super) output: Option<String>,
    pub(super) error: Option<String>,
    pub(super) interrupt: Option<Interrupt>,
    /// Renews a directly executed run's lease while its body runs.
    pub(super) heartbeat: Option<AbortOnDrop>,
    /// The span of the current execution of the body (`pgqrs.run`).
    pub(super) run_span: tracing::Span,
    /// When the current execution of the body started.
    pub(super) run_started: Option<std::time::Instant>,
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("run_id", &self.run_id)
            .field("workflow", &self.workflow)
            .field("version", &self.version)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Workflow {
    /// Creates a run of workflow `name` with `input`, to be executed by this process: call
    /// the `#[pgqrs_workflow]` function with the returned context. The run is recorded
    /// before this returns; if this process dies before finishing it, a workflow worker
    /// resumes it once the lease runs out.
    ///
    /// ```no_run
    /// # async fn demo(pool: sqlx::PgPool) -> pgqrs::Result<()> {
    /// let url = "https://example.com";
    /// let workflow = pgqrs::workflow::Workflow::create(&pool, "data_pipeline", &url).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create<I: Serialize + ?Sized>(
        source: impl PoolSource,
        name: &str,
        input: &I,
    ) -> Result<Workflow> {
        Self::create_versioned(source, name, "", input).await
    }

    pub(super) async fn create_versioned<I: Serialize + ?Sized>(
        source: impl PoolSource,
        name: &str,
        version: &str,
        input: &I,
    ) -> Result<Workflow> {
        let input = crate::job::to_json_within(input, source.max_payload_bytes())?;
        let (pool, lease_time) = source.resolve().await?;
        let created = insert_run(&pool, name, version, &input, Some(lease_time)).await?;
        let token = created.token.ok_or_else(|| {
            Error::Internal("a directly executed run came without a lease".into())
        })?;
        Ok(Workflow {
            pool,
            run_id: created.run_id,
            job_id: created.job_id,
            lease: Lease::new(created.job_id, token),
            lease_time,
            workflow: name.to_owned(),
            version: version.to_owned(),
            direct: true,
            attempt: Some(1),
            input,
            state: Mutex::new(ExecState {
                next_seq: 0,
                steps: HashMap::new(),
                status: RunStatus::Running,
                output: None,
                error: None,
                interrupt: None,
                heartbeat: None,
                run_span: tracing::Span::none(),
                run_started: None,
            }),
        })
    }

    /// Creates a pending run of workflow `name` for a workflow worker to execute.
    ///
    /// ```no_run
    /// # async fn demo(pool: sqlx::PgPool) -> pgqrs::Result<()> {
    /// let run = pgqrs::workflow::Workflow::enqueue(&pool, "data_pipeline", &"https://example.com").await?;
    /// let summary: String = run.result().await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue<I: Serialize + ?Sized>(
        source: impl PoolSource,
        name: &str,
        input: &I,
    ) -> Result<RunHandle> {
        Self::enqueue_versioned(source, name, "", input).await
    }

    pub(super) async fn enqueue_versioned<I: Serialize + ?Sized>(
        source: impl PoolSource,
        name: &str,
        version: &str,
        input: &I,
    ) -> Result<RunHandle> {
        let input = crate::job::to_json_within(input, source.max_payload_bytes())?;
        let (pool, _) = source.resolve().await?;
        let created = insert_run(&pool, name, version, &input, None).await?;
        Ok(RunHandle::from_parts(pool, created.run_id))
    }

    /// Resumes run `run_id` under the lease of its job: for a worker, or `direct`ly for
    /// this process to execute (it then keeps the lease alive itself). `None` when the run
    /// is gone.
    pub(super) async fn resume(
        pool: Db,
        run_id: i64,
        lease: Lease,
        lease_time: Duration,
        direct: bool,
        attempt: Option<i32>,
    ) -> Result<Option<Workflow>> {
        let job_id = lease.job_id();
        let hold = db::run::RunLease {
            run_id,
            job_id,
            token: lease.token(),
        };
        let Some(row) = db::run::run_begin(&pool, hold).await? else {
            return Ok(None);
        };
        if !row.leased {
            return Err(Error::LeaseLost {
                job_ids: vec![job_id],
            });
        }
        let steps: Vec<RecordedStep> = serde_json::from_str(&row.steps)
            .map_err(|err| Error::Internal(format!("recorded steps of run {run_id}: {err}")))?;
        Ok(Some(Workflow {
            pool,
            run_id,
            job_id,
            lease,
            lease_time,
            workflow: row.workflow,
            version: row.version,
            direct,
            attempt,
            input: row.input,
            state: Mutex::new(ExecState {
                next_seq: 0,
                steps: steps.into_iter().map(|step| (step.seq, step)).collect(),
                status: row.status.parse()?,
                output: row.output,
                error: row.error,
                interrupt: None,
                heartbeat: None,
                run_span: tracing::Span::none(),
                run_started: None,
            }),
        }))
    }

    /// The run's id.
    ///
    /// ```no_run
    /// # fn show(ctx: &pgqrs::workflow::Workflow) { println!("run {}", ctx.run_id()); }
    /// ```
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// The workflow's name.
    ///
    /// ```no_run
    /// # fn show(ctx: &pgqrs::workflow::Workflow) { println!("{}", ctx.workflow_name()); }
    /// ```
    pub fn workflow_name(&self) -> &str {
        &self.workflow
    }

    /// A handle on this run, for its status and result.
    ///
    /// ```no_run
    /// # async fn demo(ctx: &pgqrs::workflow::Workflow) -> pgqrs::Result<()> {
    /// println!("{}", ctx.handle().status().await?);
    /// # Ok(()) }
    /// ```
    pub fn handle(&self) -> RunHandle {
        RunHandle::from_parts(self.pool.clone(), self.run_id)
    }

    /// A durable sleep: the run is suspended (`sleeping`, no process holds it) and a
    /// workflow worker resumes it after `duration`, even across restarts. Returns
    /// [`Error::Suspended`] to unwind the workflow; once resumed, the same call returns `Ok`.
    ///
    /// ```no_run
    /// # async fn demo(ctx: &pgqrs::workflow::Workflow) -> pgqrs::Result<()> {
    /// ctx.sleep(std::time::Duration::from_secs(3600)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn sleep(&self, duration: Duration) -> Result<()> {
        self.check_interrupt()?;
        let seq = self.next_seq();
        if let Some(step) = self.recorded(seq) {
            // A recorded sleep has elapsed: the run could only resume after it.
            return if step.name == SLEEP_STEP {
                Ok(())
            } else {
                Err(self.diverged(seq, &step, SLEEP_STEP))
            };
        }
        let slept = db::run::run_sleep(&self.pool, self.hold(), seq, duration.as_secs_f64()).await;
        match slept {
            Ok(Some(until)) => Err(self.suspend(format!("sleeping until {until}"))),
            Ok(None) => Err(self.lose()),
            Err(err) => Err(self.interrupted(err.into())),
        }
    }

    /// Receives the next signal `name` sent to this run with [`Workflow::send`], waiting
    /// durably: without one, the run is suspended (`waiting`) and resumes when it arrives.
    /// Each signal is received once; the received value is recorded like a step output.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
    /// # struct Approval { by: String }
    /// # async fn demo(ctx: &pgqrs::workflow::Workflow) -> pgqrs::Result<()> {
    /// let approval: Approval = ctx.recv("approval").await?;
    /// # Ok(()) }
    /// ```
    pub async fn recv<T: StepOutput>(&self, name: &str) -> Result<T> {
        check_signal_name(name)?;
        self.check_interrupt()?;
        let seq = self.next_seq();
        let step_name = format!("{RECV_STEP}{name}");
        if let Some(step) = self.recorded(seq) {
            if step.name != step_name {
                return Err(self.diverged(seq, &step, &step_name));
            }
            return self.replay(seq, &step);
        }
        let fingerprint = fingerprint::<T>();
        let received = self.take_or_park(seq, name, &step_name, &fingerprint).await;
        match received {
            Ok(Some(payload)) => {
                let value: serde_json::Value = serde_json::from_str(&payload)
                    .map_err(|err| Error::Internal(format!("stored signal: {err}")))?;
                let step = RecordedStep {
                    seq,
                    name: step_name,
                    input: serde_json::Value::String(name.to_owned()),
                    output: value,
                    fingerprint,
                };
                let decoded = self.replay(seq, &step);
                self.state().steps.insert(seq, step);
                decoded
            }
            Ok(None) => Err(self.suspend(format!("waiting for signal {name:?}"))),
            Err(err) => Err(self.interrupted(err)),
        }
    }

    /// Takes a pending signal as step `seq`, or parks the run until one arrives, under the
    /// run's row lock so that a concurrent `send` cannot slip between the two.
    async fn take_or_park(
        &self,
        seq: i32,
        name: &str,
        step_name: &str,
        fingerprint: &str,
    ) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        db::run::run_lock(&mut tx, self.run_id).await?;
        let taken =
            db::signal::signal_take(&mut tx, self.hold(), seq, name, step_name, fingerprint)
                .await?;
        if !taken.leased {
            return Err(Error::LeaseLost {
                job_ids: vec![self.job_id],
            });
        }
        if taken.payload.is_none() && !db::run::run_park(&mut tx, self.hold(), name).await? {
            return Err(Error::LeaseLost {
                job_ids: vec![self.job_id],
            });
        }
        tx.commit().await?;
        Ok(taken.payload)
    }

    /// Sends `value` as signal `name` to run `run_id`, waking it if it waits for it.
    ///
    /// ```no_run
    /// # async fn demo(pool: sqlx::PgPool) -> pgqrs::Result<()> {
    /// pgqrs::workflow::Workflow::send(&pool, 42, "approval", &serde_json::json!({"by": "ana"})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send<T: Serialize + ?Sized>(
        source: impl PoolSource,
        run_id: i64,
        name: &str,
        value: &T,
    ) -> Result<()> {
        check_signal_name(name)?;
        let payload = crate::job::to_json_within(value, source.max_payload_bytes())?;
        let (pool, _) = source.resolve().await?;
        let mut tx = pool.begin().await?;
        let (status, job_id) = db::run::run_lock(&mut tx, run_id)
            .await?
            .ok_or(Error::RunNotFound { run_id })?;
        let status: RunStatus = status.parse()?;
        if status.is_terminal() {
            return Err(Error::IllegalTransition {
                run_id,
                from: status,
                to: RunStatus::Running,
            });
        }
        db::signal::signal_insert(&mut tx, run_id, name, &payload).await?;
        if let (RunStatus::Waiting, Some(job_id)) = (status, job_id) {
            db::run::run_wake(&mut tx, job_id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The pool this run is executed through; steps may use it for their own queries
    /// (it runs them as the config's [`Pooler`](crate::Pooler) requires).
    ///
    /// ```no_run
    /// # async fn demo(ctx: &pgqrs::workflow::Workflow) -> Result<(), sqlx::Error> {
    /// sqlx::query("SELECT 1").execute(ctx.pool()).await?;
    /// # Ok(()) }
    /// ```
    pub fn pool(&self) -> &Db {
        &self.pool
    }

    /// This executor's hold on the run, for fenced writes.
    pub(super) fn hold(&self) -> db::run::RunLease {
        db::run::RunLease {
            run_id: self.run_id,
            job_id: self.job_id,
            token: self.lease.token(),
        }
    }

    pub(super) fn state(&self) -> MutexGuard<'_, ExecState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn next_seq(&self) -> i32 {
        let mut state = self.state();
        let seq = state.next_seq;
        state.next_seq += 1;
        seq
    }

    pub(super) fn recorded(&self, seq: i32) -> Option<RecordedStep> {
        self.state().steps.get(&seq).cloned()
    }

    /// The recorded output of step `seq`, decoded, if it was recorded under `T`'s schema.
    pub(super) fn replay<T: StepOutput>(&self, seq: i32, step: &RecordedStep) -> Result<T> {
        let mismatch = |detail: String| Error::SchemaMismatch {
            run_id: self.run_id,
            step: step.name.clone(),
            seq,
            detail,
        };
        let current = fingerprint::<T>();
        if step.fingerprint != current {
            return Err(mismatch(format!(
                "stored under schema {}, `{}` now has schema {current}",
                step.fingerprint,
                std::any::type_name::<T>()
            )));
        }
        serde_json::from_value(step.output.clone()).map_err(|err| {
            mismatch(format!(
                "the stored output does not decode as `{}`: {err}",
                std::any::type_name::<T>()
            ))
        })
    }

    pub(super) fn diverged(&self, seq: i32, recorded: &RecordedStep, called: &str) -> Error {
        Error::WorkflowDiverged {
            run_id: self.run_id,
            seq,
            recorded: format!("{}({})", recorded.name, recorded.input),
            called: called.to_owned(),
        }
    }

    pub(super) fn check_interrupt(&self) -> Result<()> {
        match &self.state().interrupt {
            None => Ok(()),
            Some(interrupt) => Err(interrupt.to_error(self.run_id, self.job_id)),
        }
    }

    pub(super) fn suspend(&self, reason: String) -> Error {
        self.state().interrupt = Some(Interrupt::Suspended(reason.clone()));
        Error::Suspended {
            run_id: self.run_id,
            reason,
        }
    }

    /// The lease is gone: stop, record nothing more.
    pub(super) fn lose(&self) -> Error {
        self.lease.mark_lost();
        self.interrupted(Error::LeaseLost {
            job_ids: vec![self.job_id],
        })
    }

    /// A database error or lost lease stopped the execution: the run is left for the next
    /// holder of its job to resume.
    pub(super) fn interrupted(&self, err: Error) -> Error {
        self.state().interrupt = Some(Interrupt::Lost(err.to_string()));
        err
    }

    /// Decodes the run's stored input as the workflow function's input type.
    #[doc(hidden)]
    pub fn __input<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.input).map_err(|err| Error::SchemaMismatch {
            run_id: self.run_id,
            step: "input".into(),
            seq: -1,
            detail: format!(
                "the run's input does not decode as `{}`: {err}",
                std::any::type_name::<T>()
            ),
        })
    }
}

/// Longest signal name, in bytes.
const MAX_SIGNAL_NAME_LEN: usize = 200;

/// Signal names are 1 to 200 bytes of text without control characters (Postgres text
/// cannot hold NUL); they are only ever sent as bind parameters.
fn check_signal_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_SIGNAL_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "invalid signal name {:?}: use 1 to {MAX_SIGNAL_NAME_LEN} bytes of text without control characters",
            name.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// Name of the step a durable sleep records.
const SLEEP_STEP: &str = "pgqrs::sleep";
/// Prefix of the steps a `recv` records.
const RECV_STEP: &str = "pgqrs::recv:";

/// Inserts a run and its job, retrying once if the queue was created concurrently.
async fn insert_run(
    pool: &Db,
    name: &str,
    version: &str,
    input: &str,
    lease_time: Option<Duration>,
) -> Result<db::run::CreatedRow> {
    let queue = super::queue_name(name)?;
    let lease_secs = lease_time.map(|lease| lease.as_secs_f64());
    for _ in 0..3 {
        if let Some(created) =
            db::run::run_create(pool, name, version, input, &queue, lease_secs).await?
        {
            crate::metrics::jobs_enqueued(&queue, 1);
            return Ok(created);
        }
    }
    Err(Error::QueueNotFound { queue })
}
