//! Connection poolers between pgqrs and Postgres (pgbouncer and the like).

use std::fmt;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::Error;

/// What sits between pgqrs and Postgres, set with [`Config::pooler`](crate::Config::pooler).
///
/// pgqrs keeps no session state between transactions (it only uses `SET LOCAL` and
/// transaction-scoped advisory locks), so a pooler in **session** mode needs nothing, and
/// neither does one in **transaction** mode that handles prepared statements itself
/// (pgbouncer ≥ 1.21 with `max_prepared_statements` set, which current managed poolers run).
/// What transaction mode cannot carry is `LISTEN`: workers then poll, or listen over a
/// separate direct URL (see [`Worker`](crate::Worker)'s `listen_config`).
///
/// | value | use it for | prepared statements | workers LISTEN |
/// |---|---|---|---|
/// | `None` (default) | direct connections, session-mode poolers | cached per connection | yes |
/// | `Transaction` | pgbouncer ≥ 1.21 with `max_prepared_statements > 0` | cached per connection | no: poll |
/// | `TransactionLegacy` | pgbouncer < 1.21, or `max_prepared_statements = 0` | no cache, deallocated per transaction | no: poll |
///
/// `TransactionLegacy` runs every statement pgqrs sends in a transaction of its own that
/// starts with `DEALLOCATE ALL` (and every transaction of pgqrs likewise), so that the pooler
/// keeps the statement's messages on one server connection and a statement name prepared by
/// another client there can never be executed by mistake. It costs two extra round trips
/// per statement. Old poolers with sqlx defaults fail with `prepared statement "sqlx_s_N"
/// does not exist` or, worse, run another client's statement: never use them without it.
///
/// ```
/// use pgqrs::{Config, Pooler};
///
/// let config = Config::from_dsn("postgresql://app@pgbouncer:6432/app")?
///     .pooler("transaction".parse::<Pooler>()?);
/// assert_eq!(config.get_pooler(), Pooler::Transaction);
/// assert!(!Pooler::Transaction.supports_listen());
/// # Ok::<(), pgqrs::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pooler {
    /// A direct connection, or a pooler in session mode.
    #[default]
    None,
    /// A pooler in transaction mode that keeps prepared statements working
    /// (pgbouncer ≥ 1.21 with `max_prepared_statements` > 0).
    Transaction,
    /// A pooler in transaction mode without prepared-statement support.
    TransactionLegacy,
}

impl Pooler {
    /// Whether `LISTEN` works through this pooler (only without one, or in session mode).
    ///
    /// ```
    /// assert!(pgqrs::Pooler::None.supports_listen());
    /// assert!(!pgqrs::Pooler::TransactionLegacy.supports_listen());
    /// ```
    pub fn supports_listen(self) -> bool {
        self == Pooler::None
    }

    /// The name [`FromStr`] accepts for this value.
    ///
    /// ```
    /// assert_eq!(pgqrs::Pooler::TransactionLegacy.as_str(), "transaction-legacy");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Pooler::None => "none",
            Pooler::Transaction => "transaction",
            Pooler::TransactionLegacy => "transaction-legacy",
        }
    }

    pub(crate) fn connect_options(self, connect: PgConnectOptions) -> PgConnectOptions {
        match self {
            Pooler::TransactionLegacy => connect.statement_cache_capacity(0),
            Pooler::None | Pooler::Transaction => connect,
        }
    }
}

impl fmt::Display for Pooler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Pooler {
    type Err = Error;

    /// Parses `none` (or `session`), `transaction` and `transaction-legacy`.
    fn from_str(text: &str) -> Result<Self, Error> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" | "session" | "" => Ok(Pooler::None),
            "transaction" => Ok(Pooler::Transaction),
            "transaction-legacy" | "transaction_legacy" => Ok(Pooler::TransactionLegacy),
            _ => Err(Error::InvalidArgument(format!(
                "unknown pooler mode {:?}: use none, session, transaction or transaction-legacy",
                text.chars().take(40).collect::<String>()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_their_names() {
        for mode in [Pooler::None, Pooler::Transaction, Pooler::TransactionLegacy] {
            assert_eq!(mode.as_str().parse::<Pooler>().ok(), Some(mode));
        }
        assert_eq!("session".parse::<Pooler>().ok(), Some(Pooler::None));
        assert!("statement".parse::<Pooler>().is_err());
    }
}
