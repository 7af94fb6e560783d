//! Errors of the command-line tool and the exit codes scripts can rely on.

use std::fmt;

/// Success.
pub(crate) const OK: u8 = 0;
/// Any other error.
pub(crate) const ERROR: u8 = 1;
/// Bad arguments (clap uses 2 as well), a malformed DSN, a missing `--yes`.
pub(crate) const USAGE: u8 = 2;
/// The schema is missing, at another version, or drifted.
pub(crate) const SCHEMA: u8 = 3;
/// No such queue, job or run.
pub(crate) const NOT_FOUND: u8 = 4;
/// The database cannot be reached.
pub(crate) const CONNECT: u8 = 5;

/// What a command can fail with.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The library said no.
    Pgqrs(pgqrs::Error),
    /// The command line was wrong in a way clap cannot see.
    Usage(String),
    /// Writing the output failed.
    Output(String),
}

impl From<pgqrs::Error> for CliError {
    fn from(err: pgqrs::Error) -> Self {
        CliError::Pgqrs(err)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The library's advice names its API; on the command line, name the command.
            CliError::Pgqrs(pgqrs::Error::NotInstalled) => f.write_str(
                "pgqrs is not installed in this database: run `pgqrs install` (it is idempotent)",
            ),
            CliError::Pgqrs(pgqrs::Error::QueueNotFound { queue }) => write!(
                f,
                "queue `{queue}` does not exist: create it with `pgqrs queue create {queue}`"
            ),
            CliError::Pgqrs(pgqrs::Error::SchemaVersion {
                found, expected, ..
            }) if found < expected => write!(
                f,
                "the pgqrs schema is at migration {found}, this build expects {expected}: run `pgqrs migrate`"
            ),
            CliError::Pgqrs(err) => write!(f, "{err}"),
            CliError::Usage(message) | CliError::Output(message) => f.write_str(message),
        }
    }
}

impl CliError {
    /// The process exit code for this error.
    pub(crate) fn code(&self) -> u8 {
        match self {
            CliError::Pgqrs(err) => code_of(err),
            CliError::Usage(_) => USAGE,
            CliError::Output(_) => ERROR,
        }
    }
}

/// SQLSTATE classes and codes that mean "this connection could not be made": connection
/// exceptions (08), bad credentials (28), an unknown database (3D000), a server that is
/// starting or shutting down (57P01-57P03).
fn is_connect_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("28")
        || matches!(code, "3D000" | "57P01" | "57P02" | "57P03")
}

fn code_of(err: &pgqrs::Error) -> u8 {
    use pgqrs::Error;
    match err {
        Error::NotInstalled | Error::SchemaVersion { .. } | Error::SchemaDrift { .. } => SCHEMA,
        Error::QueueNotFound { .. } | Error::JobNotFound { .. } | Error::RunNotFound { .. } => {
            NOT_FOUND
        }
        Error::InvalidDsn { .. } | Error::InvalidQueueName { .. } | Error::InvalidArgument(_) => {
            USAGE
        }
        Error::PoolTimeout => CONNECT,
        Error::Database(db) => match db {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => CONNECT,
            sqlx::Error::Database(e) if e.code().is_some_and(|c| is_connect_sqlstate(&c)) => {
                CONNECT
            }
            _ => ERROR,
        },
        _ => ERROR,
    }
}

/// Replaces the DSN's password, wherever it appears in `text`, with `***`: the library
/// never prints it, and this makes sure the tool does not either.
pub(crate) fn scrub(text: &str, dsn: Option<&str>) -> String {
    let password = dsn
        .and_then(|dsn| dsn.split_once("://"))
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|password| !password.is_empty());
    match password {
        Some(password) => text.replace(password, "***"),
        None => text.to_owned(),
    }
}
