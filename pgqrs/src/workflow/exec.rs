//! The traits and helpers `#[pgqrs_workflow]` and `#[pgqrs_step]` expand to. The
//! replay-or-record logic of steps is in `steps.rs`, the run lifecycle in `lifecycle.rs`.

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
use super::{PoolSource, RunHandle};
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
#[derive(Debug)]
pub(super) struct AbortOnDrop(pub(super) tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The fingerprint stored with outputs of steps whose type has no Rust schema (the
/// Python binding's steps): their JSON is decoded as it is.
pub(crate) const JSON_FINGERPRINT: &str = "json";

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
