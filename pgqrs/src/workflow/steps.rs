//! Steps: replay a recorded output, or run the step and record its output once, fenced by
//! the run's lease. Typed entry points for `#[pgqrs_step]`, JSON ones for the bindings.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use super::context::Workflow;
use super::exec::{JSON_FINGERPRINT, RecordedStep, StepMeta, StepOutput, fingerprint};
use super::observe::StepObs;
use crate::db;
use crate::db::step::NewStep;
use crate::{Error, Result};

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
    input: Value,
    attempts: u32,
    /// The step's name, span and start; counts the step failed if it is dropped unrecorded.
    obs: StepObs,
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

    /// Counts one more attempt (for bindings that retry on their side).
    pub fn note_attempt(&mut self) {
        self.attempts += 1;
    }
}

/// A step call at its position in the run.
enum Begun {
    Recorded(i32, RecordedStep),
    Run(PendingStep),
}

impl Workflow {
    /// Takes the next sequence number for step `name` called with `input`.
    fn begin_step(&self, name: Cow<'static, str>, input: Value) -> Result<Begun> {
        crate::job::check_storable(&input)?;
        self.check_interrupt()?;
        let seq = self.next_seq();
        if let Some(step) = self.recorded(seq) {
            if step.name != name || step.input != input {
                return Err(self.diverged(seq, &step, &format!("{name}({input})")));
            }
            self.step_replayed(&name, seq);
            return Ok(Begun::Recorded(seq, step));
        }
        if self.lease.is_lost() {
            return Err(self.lose());
        }
        Ok(Begun::Run(PendingStep {
            seq,
            input,
            attempts: 1,
            obs: self.step_started(name, seq),
        }))
    }

    /// Records a step's output, fenced by the run's lease.
    async fn complete_step(
        &self,
        step: PendingStep,
        output: Value,
        fingerprint: String,
    ) -> Result<()> {
        crate::job::check_storable(&output)?;
        let recorded = db::step::step_complete(
            self.pool(),
            &NewStep {
                lease: self.hold(),
                seq: step.seq,
                name: &step.obs.name,
                input: &step.input.to_string(),
                output: &output.to_string(),
                fingerprint: &fingerprint,
                attempts: i32::try_from(step.attempts).unwrap_or(i32::MAX),
            },
        )
        .await
        .map_err(|err| self.interrupted(err.into()))?;
        if !recorded {
            return Err(self.lose());
        }
        self.state().steps.insert(
            step.seq,
            RecordedStep {
                seq: step.seq,
                name: step.obs.name.to_string(),
                input: step.input,
                output,
                fingerprint,
            },
        );
        step.obs.completed();
        Ok(())
    }

    /// Starts a step call at the next sequence number: replays it if it is recorded.
    #[doc(hidden)]
    pub fn __step_begin<T: StepOutput, I: Serialize + ?Sized>(
        &self,
        meta: &StepMeta,
        input: &I,
    ) -> Result<StepCall<T>> {
        let input = serde_json::to_value(input).map_err(Error::Encode)?;
        Ok(match self.begin_step(Cow::Borrowed(meta.name), input)? {
            Begun::Recorded(seq, step) => StepCall::Replayed(self.replay(seq, &step)?),
            Begun::Run(step) => StepCall::Run(step),
        })
    }

    /// Records a step's output, fenced by the run's lease, and hands it back.
    #[doc(hidden)]
    pub async fn __step_complete<T: StepOutput>(&self, step: PendingStep, output: T) -> Result<T> {
        let json = serde_json::to_value(&output).map_err(Error::Encode)?;
        self.complete_step(step, json, fingerprint::<T>()).await?;
        Ok(output)
    }

    /// [`Workflow::__step_begin`] for a step whose output is plain JSON (no Rust type).
    #[doc(hidden)]
    pub fn __step_begin_json(&self, name: &str, input: Value) -> Result<StepCall<Value>> {
        Ok(match self.begin_step(Cow::Owned(name.to_owned()), input)? {
            Begun::Recorded(_, step) if step.fingerprint == JSON_FINGERPRINT => {
                StepCall::Replayed(step.output)
            }
            Begun::Recorded(seq, step) => {
                return Err(Error::SchemaMismatch {
                    run_id: self.run_id,
                    step: step.name,
                    seq,
                    detail: format!(
                        "recorded by typed code (schema {}), replayed as plain JSON",
                        step.fingerprint
                    ),
                });
            }
            Begun::Run(step) => StepCall::Run(step),
        })
    }

    /// [`Workflow::__step_complete`] for a plain JSON output.
    #[doc(hidden)]
    pub async fn __step_complete_json(&self, step: PendingStep, output: Value) -> Result<()> {
        self.complete_step(step, output, JSON_FINGERPRINT.to_owned())
            .await
    }
}
