//! The SQL layer: the only place in pgqrs that talks SQL.
//!
//! One module per table family, functions named noun_verb, every statement checked by
//! `sqlx::query!` against the schema (offline data in the workspace's `.sqlx/`). Callers
//! pass any executor: a pool, a connection or the caller's own transaction.

pub(crate) mod dead_letter;
pub(crate) mod job;
pub(crate) mod periodic;
pub(crate) mod pool;
pub(crate) mod queue;
pub(crate) mod run;
pub(crate) mod schema;
pub(crate) mod signal;
pub(crate) mod step;
pub(crate) mod worker;

pub use pool::Db;

/// The embedded schema migrations (`migrations/`), tracked in `pgqrs._sqlx_migrations`.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Seconds as the `float8` that `make_interval(secs => ...)` takes.
pub(crate) fn secs(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64()
}

/// Whether Postgres aborted the statement to break a deadlock (SQLSTATE 40P01).
pub(crate) fn is_deadlock(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("40P01"))
}
