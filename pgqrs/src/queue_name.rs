//! Validated queue names.

use std::fmt;

use crate::{Error, Result};

/// Longest accepted queue name, in bytes (Postgres' identifier length).
pub const MAX_QUEUE_NAME_LEN: usize = 63;

/// A queue name that passed validation: 1 to 63 characters from `a-z`, `0-9`, `_` and `-`.
///
/// Names are only ever sent to Postgres as bind parameters; the same rule is also a `CHECK`
/// constraint on `pgqrs.queues`, so nothing else can slip in through another client.
///
/// ```
/// use pgqrs::QueueName;
///
/// assert_eq!(QueueName::new("emails")?.as_str(), "emails");
/// assert!(QueueName::new("emails; DROP TABLE users").is_err());
/// # Ok::<(), pgqrs::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    /// Validates `name`, returning [`Error::InvalidQueueName`] with the reason when it is refused.
    pub fn new(name: &str) -> Result<Self> {
        match invalid_reason(name) {
            None => Ok(QueueName(name.to_owned())),
            Some(reason) => Err(Error::InvalidQueueName {
                name: name.chars().take(64).collect(),
                reason,
            }),
        }
    }

    /// A name read back from `pgqrs.queues`, whose CHECK constraint enforces the rule.
    pub(crate) fn trusted(name: String) -> Self {
        QueueName(name)
    }

    /// The name as a string slice.
    ///
    /// ```
    /// assert_eq!(pgqrs::QueueName::new("a-b_1")?.as_str(), "a-b_1");
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `name` is not a valid queue name, or `None` when it is. `pgqrs-derive` applies the
/// same rule to `#[pgqrs(queue = "...")]` at compile time.
fn invalid_reason(name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Some("it is empty; use 1 to 63 characters from a-z, 0-9, '_' and '-'");
    }
    if bytes.len() > MAX_QUEUE_NAME_LEN {
        return Some("it is longer than 63 characters");
    }
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-';
    if !bytes.iter().all(allowed) {
        return Some("only lowercase ASCII letters, digits, '_' and '-' are allowed");
    }
    None
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for QueueName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for QueueName {
    type Error = Error;

    fn try_from(name: &str) -> Result<Self> {
        QueueName::new(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for name in ["a", "tasks", "emails-high_prio", "0", &"x".repeat(63)] {
            assert!(QueueName::new(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_hostile_names() {
        let long = "a".repeat(10_000);
        for name in [
            "",
            "Tasks",
            "tasks ",
            "ta'sks",
            "tasks\"; DROP TABLE pgqrs.jobs; --",
            "tâches",
            "tasks\0",
            "pgqrs.jobs",
            &long,
            &"x".repeat(64),
        ] {
            let err = QueueName::new(name).unwrap_err();
            match err {
                Error::InvalidQueueName { name: shown, .. } => assert!(shown.chars().count() <= 64),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
