//! Per-queue settings of a worker: concurrency, prefetch and retry backoff.

use std::time::Duration;

use typed_builder::TypedBuilder;

/// How one queue is worked in this process.
///
/// ```
/// use std::time::Duration;
/// use pgqrs::{Backoff, HandlerOptions};
///
/// let options = HandlerOptions::builder()
///     .concurrency(4)
///     .prefetch(8)
///     .backoff(Backoff::builder().base(Duration::from_millis(500)).build())
///     .build();
/// assert_eq!(options.concurrency, 4);
/// ```
#[derive(Debug, Clone, PartialEq, TypedBuilder)]
#[non_exhaustive]
pub struct HandlerOptions {
    /// Most handlers of this queue running at once in this process (default 10).
    #[builder(default = 10)]
    pub concurrency: usize,
    /// Jobs claimed ahead of free handler slots, so that claims come in batches
    /// (default 10). Prefetched jobs are leased (and heartbeated) until they start.
    #[builder(default = 10)]
    pub prefetch: usize,
    /// Delay before a failed job is retried.
    #[builder(default)]
    pub backoff: Backoff,
}

impl Default for HandlerOptions {
    fn default() -> Self {
        HandlerOptions::builder().build()
    }
}

/// Exponential backoff with jitter: delivery `n` that fails waits about
/// `base * 2^(n-1)`, at most `max`, spread by `± jitter` (a fraction).
///
/// ```
/// use std::time::Duration;
/// let backoff = pgqrs::Backoff::builder()
///     .base(Duration::from_secs(1))
///     .max(Duration::from_secs(60))
///     .jitter(0.0)
///     .build();
/// assert_eq!(backoff.delay(1), Duration::from_secs(1));
/// assert_eq!(backoff.delay(4), Duration::from_secs(8));
/// assert_eq!(backoff.delay(30), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, PartialEq, TypedBuilder)]
#[non_exhaustive]
pub struct Backoff {
    /// Delay after the first failed delivery (default 1 s).
    #[builder(default = Duration::from_secs(1))]
    pub base: Duration,
    /// Longest delay (default 1 hour).
    #[builder(default = Duration::from_secs(3600))]
    pub max: Duration,
    /// Random spread as a fraction of the delay, 0.0 to 1.0 (default 0.2).
    #[builder(default = 0.2)]
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::builder().build()
    }
}

impl Backoff {
    /// The delay after failed delivery number `attempt` (1 for the first).
    ///
    /// ```
    /// let backoff = pgqrs::Backoff::default();
    /// let delay = backoff.delay(3).as_secs_f64();
    /// assert!((3.2..=4.8).contains(&delay), "{delay}");
    /// ```
    pub fn delay(&self, attempt: i32) -> Duration {
        let exponent = attempt.saturating_sub(1).clamp(0, 62);
        let nominal = self.base.as_secs_f64() * 2f64.powi(exponent);
        let capped = nominal.min(self.max.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let spread = 1.0 + jitter * (2.0 * fastrand::f64() - 1.0);
        Duration::from_secs_f64((capped * spread).max(0.0))
    }
}
