//! One queue's loop inside a worker: claim in batches, run handlers, record their outcomes
//! in batches, and wind down on shutdown.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::Notify;
use tokio::task::{Id, JoinSet};
use tracing::Instrument;

use super::options::HandlerOptions;
use super::{Handled, JobHandler, Shared, Stats};
use crate::metrics::{self, millis};
use crate::{Consumer, Error, Job, Nacked, Payload};

/// How a handler run ended.
enum Outcome {
    Succeeded,
    /// The handler settled the job itself (a workflow run finished or suspended).
    Settled,
    Failed(String),
    Panicked(String),
    /// Aborted at shutdown: retried at once, the delivery still counts.
    Interrupted,
}

impl Outcome {
    /// The `outcome` field of the handler's event.
    fn name(&self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Settled => "settled",
            Outcome::Failed(_) => "failed",
            Outcome::Panicked(_) => "panicked",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// A handler run that ended and whose outcome is not recorded yet.
struct Finished {
    id: i64,
    attempts: i32,
    outcome: Outcome,
    /// The job's `pgqrs.job` span, for the event that records the outcome.
    span: tracing::Span,
    /// How long the handler ran.
    elapsed: Duration,
}

/// The loop of one queue. Generic over the payload and handler; the worker sees it only as
/// a future.
pub(super) struct Runner<T: Payload, H> {
    pub(super) shared: Arc<Shared>,
    pub(super) consumer: Arc<Consumer<T>>,
    pub(super) handler: Arc<H>,
    pub(super) options: HandlerOptions,
    pub(super) wake: Arc<Notify>,
}

/// Mutable state of a running loop.
struct State<T> {
    prefetched: VecDeque<Job<T>>,
    running: JoinSet<Finished>,
    running_jobs: HashMap<Id, i64>,
    finished: Vec<Finished>,
    /// The last claim came back short: wait for a wake-up or the poll before the next one.
    idle: bool,
    /// Consecutive database errors, for backing off.
    errors: u32,
}

impl<T: Payload, H: JobHandler<T>> Runner<T, H> {
    pub(super) async fn run(self) {
        let mut state = State {
            prefetched: VecDeque::new(),
            running: JoinSet::new(),
            running_jobs: HashMap::new(),
            finished: Vec::new(),
            idle: false,
            errors: 0,
        };
        let concurrency = self.options.concurrency.max(1);
        let capacity = concurrency + self.options.prefetch;
        loop {
            while let Some(joined) = state.running.try_join_next_with_id() {
                state
                    .finished
                    .push(self.finished(&mut state.running_jobs, joined));
            }
            // Successes wait to ride on the next claim; failures go now.
            self.record(&mut state, false).await;
            while state.running.len() < concurrency
                && let Some(job) = state.prefetched.pop_front()
            {
                self.start(&mut state, job);
            }
            if self.shared.stop.is_cancelled() {
                break;
            }
            let held = state.running.len() + state.prefetched.len();
            let free = capacity.saturating_sub(held);
            let slot_idle = state.running.len() < concurrency && state.prefetched.is_empty();
            if !state.idle && free > 0 && (slot_idle || free >= capacity.div_ceil(2)) {
                self.claim(&mut state, free).await;
                continue;
            }
            // No claim is coming soon: archive the successes on their own.
            self.record(&mut state, true).await;
            let poll = self.poll_delay(state.errors);
            tokio::select! {
                biased;
                () = self.shared.stop.cancelled() => {}
                Some(joined) = state.running.join_next_with_id(), if !state.running.is_empty() => {
                    state.finished.push(self.finished(&mut state.running_jobs, joined));
                }
                () = self.wake.notified() => state.idle = false,
                () = tokio::time::sleep(poll), if state.idle => state.idle = false,
            }
        }
        self.wind_down(state).await;
    }

    fn poll_delay(&self, errors: u32) -> Duration {
        let backoff = Duration::from_millis(100).saturating_mul(2u32.saturating_pow(errors.min(6)));
        if errors == 0 {
            self.shared.poll_interval
        } else {
            backoff.min(Duration::from_secs(5))
        }
    }

    /// Claims up to `n` jobs, archiving the finished successes in the same statement.
    async fn claim(&self, state: &mut State<T>, n: usize) {
        // A claim takes at most this many; a full one means there may be more.
        let n = n.min(crate::MAX_CLAIM_BATCH);
        let done: Vec<i64> = state
            .finished
            .iter()
            .filter(|f| matches!(f.outcome, Outcome::Succeeded))
            .map(|f| f.id)
            .collect();
        // The consumer traces the claim (span `pgqrs.claim`) and measures it.
        let claimed = self
            .consumer
            .archive_and_dequeue(&done, "completed", n)
            .await;
        // Unless the statement failed, it archived them; else they stay for the next try.
        if matches!(claimed, Ok(_) | Err(Error::Decode { .. })) {
            state
                .finished
                .retain(|f| !matches!(f.outcome, Outcome::Succeeded));
        }
        match claimed {
            Ok(handoff) => {
                state.errors = 0;
                state.idle = handoff.jobs.len() < n;
                Stats::add(
                    &self.shared.stats.succeeded,
                    done.len() - handoff.lost.len(),
                );
                self.lost(&handoff.lost);
                Stats::add(&self.shared.stats.claimed, handoff.jobs.len());
                state.prefetched.extend(handoff.jobs);
            }
            // The job is in the dead letters with the reason; the rest were handed back.
            Err(Error::Decode { id, .. }) => {
                Stats::add(&self.shared.stats.succeeded, done.len());
                tracing::warn!(queue = %self.consumer.queue().name, job_id = id, "undecodable job dead-lettered");
            }
            Err(err) => {
                state.errors = state.errors.saturating_add(1);
                state.idle = true;
                tracing::warn!(queue = %self.consumer.queue().name, error = %err, "claim failed; retrying");
            }
        }
    }

    fn start(&self, state: &mut State<T>, job: Job<T>) {
        let span = tracing::info_span!(
            "pgqrs.job",
            queue = %self.consumer.queue().name,
            job_id = job.id,
            attempt = job.attempts,
        );
        let (id, attempts) = (job.id, job.attempts);
        let handler = Arc::clone(&self.handler);
        let instruments = self.consumer.instruments();
        let (handler_duration, failures) = (
            instruments.handler_duration.clone(),
            instruments.failed.clone(),
        );
        let job_span = span.clone();
        let task = state.running.spawn(
            async move {
                let started = Instant::now();
                let run = async move { handler.handle(job).await };
                let outcome = match AssertUnwindSafe(run).catch_unwind().await {
                    Ok(Handled::Succeeded) => Outcome::Succeeded,
                    Ok(Handled::Settled) => Outcome::Settled,
                    Ok(Handled::Failed(error)) => Outcome::Failed(error),
                    Err(panic) => Outcome::Panicked(panic_message(panic.as_ref())),
                };
                let elapsed = started.elapsed();
                handler_duration.record(elapsed.as_secs_f64());
                match &outcome {
                    Outcome::Failed(error) | Outcome::Panicked(error) => {
                        failures.increment(1);
                        tracing::warn!(outcome = outcome.name(), elapsed_ms = millis(elapsed), %error, "handler failed");
                    }
                    _ => {
                        tracing::debug!(outcome = outcome.name(), elapsed_ms = millis(elapsed), "handler finished");
                    }
                }
                Finished {
                    id,
                    attempts,
                    outcome,
                    span: job_span,
                    elapsed,
                }
            }
            .instrument(span),
        );
        state.running_jobs.insert(task.id(), id);
    }

    fn finished(
        &self,
        running_jobs: &mut HashMap<Id, i64>,
        joined: Result<(Id, Finished), tokio::task::JoinError>,
    ) -> Finished {
        match joined {
            Ok((task, finished)) => {
                running_jobs.remove(&task);
                finished
            }
            // Panics are caught inside the task; this is an abort at shutdown.
            Err(err) => Finished {
                id: running_jobs.remove(&err.id()).unwrap_or_default(),
                attempts: 0,
                outcome: Outcome::Interrupted,
                span: tracing::Span::none(),
                elapsed: Duration::ZERO,
            },
        }
    }

    /// Records finished runs in at most two round trips: nack the failures, archive the
    /// successes (unless `successes` is false: they wait to ride on the next claim). What a
    /// database error kept from being recorded stays for the next pass.
    async fn record(&self, state: &mut State<T>, successes: bool) {
        let stats = &self.shared.stats;
        let settled = take(&mut state.finished, |f| {
            matches!(f.outcome, Outcome::Settled)
        });
        if !settled.is_empty() {
            let ids: Vec<i64> = settled.iter().map(|f| f.id).collect();
            self.consumer.forget_settled(&ids);
            Stats::add(&stats.succeeded, ids.len());
            metrics::add(&self.consumer.instruments().completed, ids.len());
        }
        let failed = take(&mut state.finished, |f| {
            !matches!(f.outcome, Outcome::Succeeded | Outcome::Settled)
        });
        if !failed.is_empty() {
            let nacks: Vec<(i64, Duration, Option<String>)> = failed
                .iter()
                .map(|f| match &f.outcome {
                    Outcome::Interrupted => (
                        f.id,
                        Duration::ZERO,
                        Some("the worker stopped before the handler finished".to_owned()),
                    ),
                    Outcome::Failed(error) | Outcome::Panicked(error) => (
                        f.id,
                        self.options.backoff.delay(f.attempts),
                        Some(error.clone()),
                    ),
                    Outcome::Succeeded | Outcome::Settled => (f.id, Duration::ZERO, None),
                })
                .collect();
            match self.consumer.nack_many(&nacks).await {
                Ok(outcomes) => {
                    let mut lost = Vec::new();
                    for ((id, nacked), f) in outcomes.into_iter().zip(&failed) {
                        match nacked {
                            Some(Nacked::Retrying { run_at }) => {
                                Stats::add(&stats.retried, 1);
                                tracing::debug!(parent: &f.span, outcome = "retry", %run_at, elapsed_ms = millis(f.elapsed), "job nacked for retry");
                            }
                            Some(Nacked::DeadLettered) => {
                                Stats::add(&stats.dead_lettered, 1);
                                tracing::warn!(parent: &f.span, outcome = "dead_letter", elapsed_ms = millis(f.elapsed), "job moved to dead letters: out of attempts");
                            }
                            None => lost.push(id),
                        }
                    }
                    self.lost(&lost);
                    let panicked = failed
                        .iter()
                        .filter(|f| matches!(f.outcome, Outcome::Panicked(_)))
                        .count();
                    Stats::add(&stats.panicked, panicked);
                }
                Err(err) => {
                    state.finished.extend(failed);
                    return self.record_failed(state, &err);
                }
            }
        }
        if !successes {
            return;
        }
        let succeeded = take(&mut state.finished, |f| {
            matches!(f.outcome, Outcome::Succeeded)
        });
        if succeeded.is_empty() {
            return;
        }
        let ids: Vec<i64> = succeeded.iter().map(|f| f.id).collect();
        match self.consumer.archive_batch(&ids, "completed").await {
            Ok(()) => Stats::add(&stats.succeeded, ids.len()),
            Err(Error::LeaseLost { job_ids }) => {
                Stats::add(&stats.succeeded, ids.len() - job_ids.len());
                self.lost(&job_ids);
            }
            Err(err) => {
                state.finished.extend(succeeded);
                self.record_failed(state, &err);
            }
        }
    }

    fn record_failed(&self, state: &mut State<T>, err: &Error) {
        state.errors = state.errors.saturating_add(1);
        state.idle = true;
        tracing::warn!(queue = %self.consumer.queue().name, error = %err, "recording job outcomes failed; retrying");
    }

    fn lost(&self, job_ids: &[i64]) {
        if job_ids.is_empty() {
            return;
        }
        Stats::add(&self.shared.stats.lost, job_ids.len());
        tracing::warn!(
            queue = %self.consumer.queue().name,
            ?job_ids,
            "lease lost before the outcome was recorded: another consumer has these jobs; result not recorded"
        );
    }

    /// Stops claiming, hands back prefetched jobs, lets running handlers finish until the
    /// shutdown deadline, then aborts the rest and hands their jobs back as failed runs.
    async fn wind_down(self, mut state: State<T>) {
        let queue = self.consumer.queue().name.clone();
        let unstarted: Vec<i64> = state.prefetched.drain(..).map(|job| job.id).collect();
        if !unstarted.is_empty()
            && let Err(err) = self.consumer.release_batch(&unstarted).await
        {
            tracing::warn!(%queue, error = %err, "releasing prefetched jobs failed; their leases will expire");
        }
        let deadline = tokio::time::Instant::now() + self.shared.shutdown_timeout();
        while !state.running.is_empty() {
            tokio::select! {
                Some(joined) = state.running.join_next_with_id() => {
                    state.finished.push(self.finished(&mut state.running_jobs, joined));
                }
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(%queue, running = state.running.len(), "shutdown timeout: aborting handlers");
                    state.running.abort_all();
                }
            }
        }
        for attempt in 0..5 {
            self.record(&mut state, true).await;
            if state.finished.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        if !state.finished.is_empty() {
            tracing::error!(%queue, jobs = state.finished.len(), "could not record outcomes at shutdown; the leases will expire and the jobs run again");
        }
    }
}

/// Removes and returns the finished runs that match.
fn take(finished: &mut Vec<Finished>, matches: impl Fn(&Finished) -> bool) -> Vec<Finished> {
    let (taken, kept) = std::mem::take(finished).into_iter().partition(matches);
    *finished = kept;
    taken
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    format!("handler panicked: {detail}")
}
