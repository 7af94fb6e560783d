//! Payload traits and the job values producers and consumers hand out.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use typed_builder::TypedBuilder;

use crate::Lease;

/// Anything that can travel through a queue: it serializes to JSON and decodes back.
///
/// Implemented for every `Serialize + DeserializeOwned` type; [`serde_json::Value`] is the
/// payload of the untyped API.
///
/// ```
/// fn assert_payload<T: pgqrs::Payload>() {}
/// assert_payload::<serde_json::Value>();
/// assert_payload::<Vec<String>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a pgqrs payload: it must be `Serialize + DeserializeOwned + Send + Sync + 'static`",
    label = "not a payload",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}`; borrowed fields (`&str`) must become owned (`String`)"
)]
pub trait Payload: Serialize + DeserializeOwned + Send + Sync + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Payload for T {}

/// A payload type bound to one queue. Implement it with `#[derive(Job)]`:
///
/// ```
/// use pgqrs::Job;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Job)]
/// #[pgqrs(queue = "emails")]
/// struct SendEmail {
///     to: String,
/// }
///
/// assert_eq!(<SendEmail as pgqrs::JobType>::QUEUE, "emails");
/// ```
///
/// `Producer<SendEmail>` then only accepts `SendEmail`, and `Consumer<SendEmail>` only
/// yields it: sending another type to that queue does not compile.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a pgqrs job type",
    label = "`{Self}` is not bound to a queue",
    note = "add `#[derive(pgqrs::Job)]` and `#[pgqrs(queue = \"...\")]` to `{Self}`",
    note = "for untyped JSON use `Producer::new(&config, \"queue\")`, `Consumer::new(&config, \"queue\")` or `Worker::handle_queue`"
)]
pub trait JobType: Payload {
    /// The queue this type is enqueued to and dequeued from.
    const QUEUE: &'static str;
}

/// A job delivered to a consumer, with its decoded payload. The consumer holds a lease
/// on it until `lease_expires_at`.
///
/// ```
/// # fn show(job: pgqrs::Message) {
/// println!("job {} (delivery {}): {}", job.id, job.attempts, job.payload);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Job<T> {
    /// Job id, unique across queues and kept through archive and dead letters.
    pub id: i64,
    /// The decoded payload.
    pub payload: T,
    /// How many times the job has been delivered, this delivery included.
    pub attempts: i32,
    /// Higher runs first.
    pub priority: i16,
    /// When the job was enqueued.
    pub enqueued_at: DateTime<Utc>,
    /// When this consumer's lease ends unless extended.
    pub lease_expires_at: DateTime<Utc>,
    /// This delivery's fencing token and lease state.
    pub lease: Lease,
}

/// The job of the untyped API, as in `consumer.dequeue()` on a `Consumer` made with
/// [`Consumer::new`](crate::Consumer::new).
pub type Message = Job<serde_json::Value>;

/// What `enqueue` returns: the job's id and when it becomes runnable. With a
/// [`unique_key`](EnqueueOptions::unique_key) that a waiting or leased job already holds,
/// that job is returned with `duplicate` set and nothing is inserted.
///
/// ```
/// # async fn demo(producer: pgqrs::Producer) -> pgqrs::Result<()> {
/// let enqueued = producer.enqueue(&serde_json::json!({"n": 1})).await?;
/// println!("job {} runs at {}", enqueued.id, enqueued.run_at);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Enqueued {
    /// Job id.
    pub id: i64,
    /// Earliest time a consumer can claim the job.
    pub run_at: DateTime<Utc>,
    /// The job already existed under the same unique key.
    pub duplicate: bool,
}

/// Scheduling of an enqueue: priority and delay or start time.
///
/// ```
/// use std::time::Duration;
/// use pgqrs::EnqueueOptions;
///
/// let urgent = EnqueueOptions::builder().priority(10).build();
/// let once = EnqueueOptions::builder().unique_key("invoice-42").build();
/// let later = EnqueueOptions::builder().delay(Duration::from_secs(60)).build();
/// assert_eq!(urgent.priority, 10);
/// assert_eq!(later.delay, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Default, PartialEq, TypedBuilder)]
#[non_exhaustive]
pub struct EnqueueOptions {
    /// Higher runs first; default 0.
    #[builder(default)]
    pub priority: i16,
    /// Absolute earliest start; `None` means now (server clock).
    #[builder(default, setter(strip_option))]
    pub run_at: Option<DateTime<Utc>>,
    /// Added to `run_at` (or to now).
    #[builder(default)]
    pub delay: std::time::Duration,
    /// At most one waiting or leased job of the queue holds a key: enqueueing a duplicate
    /// returns the existing job. The key is free again once the job is archived, deleted or
    /// dead-lettered. Only for single enqueues.
    #[builder(default, setter(strip_option, into))]
    pub unique_key: Option<String>,
}

/// What became of a job handed back with [`Consumer::nack`](crate::Consumer::nack).
///
/// ```
/// # async fn demo(consumer: pgqrs::Consumer, id: i64) -> pgqrs::Result<()> {
/// use std::time::Duration;
/// match consumer.nack(id, Duration::from_secs(5)).await? {
///     pgqrs::Nacked::Retrying { run_at } => println!("retry at {run_at}"),
///     pgqrs::Nacked::DeadLettered => println!("out of attempts"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nacked {
    /// The job will be delivered again at `run_at`.
    Retrying {
        /// Next earliest start.
        run_at: DateTime<Utc>,
    },
    /// The job had used its `max_attempts` and moved to the queue's dead letters.
    DeadLettered,
}

/// Serializes a payload, a workflow input or output, or a signal to the JSON text pgqrs
/// stores, refusing up front what Postgres' `jsonb` cannot hold (a string with the NUL
/// character, `\u0000`) so that nothing is written half-way.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> crate::Result<String> {
    let json = serde_json::to_string(value).map_err(crate::Error::Encode)?;
    if has_nul_escape(&json) {
        return Err(nul_error());
    }
    Ok(json)
}

/// [`to_json`], refusing with `Error::PayloadTooLarge` a result over `limit` bytes.
pub(crate) fn to_json_within<T: Serialize + ?Sized>(
    value: &T,
    limit: usize,
) -> crate::Result<String> {
    let json = to_json(value)?;
    if json.len() > limit {
        return Err(crate::Error::PayloadTooLarge {
            size: json.len(),
            limit,
        });
    }
    Ok(json)
}

/// [`to_json`]'s check for a value already in `serde_json::Value` form (step inputs and
/// outputs): `Error::Encode` when a string or key holds the NUL character.
pub(crate) fn check_storable(value: &serde_json::Value) -> crate::Result<()> {
    fn has_nul(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(has_nul),
            serde_json::Value::Object(map) => {
                map.iter().any(|(k, v)| k.contains('\0') || has_nul(v))
            }
            _ => false,
        }
    }
    if has_nul(value) {
        return Err(nul_error());
    }
    Ok(())
}

fn nul_error() -> crate::Error {
    crate::Error::Encode(serde::ser::Error::custom(
        "a string contains the NUL character (\\u0000), which Postgres cannot store in jsonb",
    ))
}

/// Whether serialized JSON has a `\u0000` escape (not an escaped backslash before `u0000`).
fn has_nul_escape(json: &str) -> bool {
    let bytes = json.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1..i + 6) == Some(b"u0000".as_slice()) {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod json_tests {
    use super::to_json;

    #[test]
    fn nul_characters_are_refused_escaped_backslashes_are_not() {
        assert!(to_json(&"a\0b").is_err());
        assert!(to_json(&serde_json::json!({"k\0": 1})).is_err());
        assert_eq!(to_json(&"\\u0000").ok().as_deref(), Some(r#""\\u0000""#));
        assert_eq!(to_json(&"é\n").ok().as_deref(), Some("\"é\\n\""));
        assert!(super::check_storable(&serde_json::json!([{"a": "x\0"}])).is_err());
        assert!(super::check_storable(&serde_json::json!({"a\0": 1})).is_err());
        assert!(super::check_storable(&serde_json::json!({"a": ["\\u0000"]})).is_ok());
    }
}
