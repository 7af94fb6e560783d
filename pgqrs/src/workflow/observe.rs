//! Tracing and metrics of workflow runs and steps: the spans `pgqrs.run` and `pgqrs.step`,
//! their outcome events, and the counters and histograms of [`crate::metrics`].

use std::borrow::Cow;
use std::time::Instant;

use super::context::Workflow;
use crate::metrics::{self, millis};

/// A step that is running: its span and start. Counted `failed` if it is dropped before
/// its output was recorded (the body failed after its retries, or recording failed).
#[derive(Debug)]
pub(super) struct StepObs {
    pub(super) name: Cow<'static, str>,
    workflow: String,
    span: tracing::Span,
    started: Instant,
    done: bool,
}

impl StepObs {
    /// The step's output was recorded.
    pub(super) fn completed(mut self) {
        self.end("completed");
    }

    fn end(&mut self, outcome: &'static str) {
        self.done = true;
        let elapsed = self.started.elapsed();
        metrics::step_finished(&self.workflow, &self.name, outcome, Some(elapsed));
        if self.span.is_disabled() {
            return;
        }
        self.span.record("outcome", outcome);
        self.span.record("elapsed_ms", millis(elapsed));
        if outcome == "completed" {
            tracing::debug!(parent: &self.span, outcome, elapsed_ms = millis(elapsed), "step completed");
        } else {
            tracing::warn!(parent: &self.span, outcome, elapsed_ms = millis(elapsed), "step failed");
        }
    }
}

impl Drop for StepObs {
    fn drop(&mut self) {
        if !self.done {
            self.end("failed");
        }
    }
}

impl Workflow {
    /// Opens the span of a step about to run at `seq`.
    pub(super) fn step_started(&self, name: Cow<'static, str>, seq: i32) -> StepObs {
        let span = tracing::info_span!(
            parent: &self.state().run_span,
            "pgqrs.step",
            workflow = %self.workflow,
            run_id = self.run_id,
            step = %name,
            seq,
            cached = false,
            outcome = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        );
        StepObs {
            name,
            workflow: self.workflow.clone(),
            span,
            started: Instant::now(),
            done: false,
        }
    }

    /// A step call at `seq` returned its recorded output.
    pub(super) fn step_replayed(&self, name: &str, seq: i32) {
        metrics::step_finished(&self.workflow, name, "replayed", None);
        let span = tracing::info_span!(
            parent: &self.state().run_span,
            "pgqrs.step",
            workflow = %self.workflow,
            run_id = self.run_id,
            step = %name,
            seq,
            cached = true,
            outcome = "replayed",
        );
        if !span.is_disabled() {
            tracing::debug!(parent: &span, outcome = "replayed", "step replayed from its recorded output");
        }
    }

    /// Opens the span of an execution of the run's body.
    pub(super) fn run_started(&self) {
        let span = tracing::info_span!(
            "pgqrs.run",
            workflow = %self.workflow,
            run_id = self.run_id,
            attempt = self.attempt,
            outcome = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        );
        let mut state = self.state();
        state.run_span = span;
        state.run_started = Some(Instant::now());
    }

    /// The span of the current execution of the body (disabled before it started).
    pub(super) fn run_span(&self) -> tracing::Span {
        self.state().run_span.clone()
    }

    /// Counts the end of an execution of the body and closes its span. `outcome`:
    /// `succeeded`, `failed`, `suspended` or `interrupted`.
    pub(super) fn run_ended(&self, outcome: &'static str) {
        metrics::run_finished(&self.workflow, outcome);
        let (span, started) = {
            let mut state = self.state();
            (
                std::mem::replace(&mut state.run_span, tracing::Span::none()),
                state.run_started.take(),
            )
        };
        let elapsed_ms = started.map(|at| millis(at.elapsed()));
        span.record("outcome", outcome);
        if let Some(elapsed_ms) = elapsed_ms {
            span.record("elapsed_ms", elapsed_ms);
        }
        let (workflow, run_id) = (self.workflow.as_str(), self.run_id);
        match outcome {
            "failed" => {
                tracing::warn!(parent: &span, workflow, run_id, outcome, elapsed_ms, "workflow run failed");
            }
            "interrupted" => {
                tracing::warn!(parent: &span, workflow, run_id, outcome, elapsed_ms, "workflow run interrupted; it will be resumed");
            }
            _ => {
                tracing::info!(parent: &span, workflow, run_id, outcome, elapsed_ms, "workflow run ended");
            }
        }
    }
}
