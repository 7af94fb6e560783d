//! The one error type of pgqrs.

/// Shorthand for `std::result::Result<T, pgqrs::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in pgqrs, as variants a caller can match on.
///
/// Messages say what happened and what to do about it; none of them ever contains a
/// database password.
///
/// ```
/// use pgqrs::Error;
///
/// fn retryable(err: &Error) -> bool {
///     matches!(err, Error::PoolTimeout | Error::Database(_))
/// }
/// assert!(!retryable(&Error::NotInstalled));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database has no pgqrs schema.
    #[error(
        "pgqrs is not installed in this database: run `Admin::install()` (it is idempotent) before using queues"
    )]
    NotInstalled,

    /// The pgqrs schema exists but is at another migration than this build expects.
    #[error(
        "the pgqrs schema is at migration {found}, this build of pgqrs expects {expected}: {hint}"
    )]
    SchemaVersion {
        /// Latest migration applied in the database.
        found: i64,
        /// Latest migration this build embeds.
        expected: i64,
        /// What to do about it.
        hint: &'static str,
    },

    /// The installed `pgqrs` schema differs from the one this build's migrations create:
    /// someone changed it by hand (dropped an index, added a column, replaced a function).
    /// Each difference names the object, e.g. `missing index jobs_runnable`.
    #[error(
        "the pgqrs schema was changed outside its migrations ({}): undo those changes, pgqrs relies on the schema its migrations create",
        drift_summary(.differences)
    )]
    SchemaDrift {
        /// One line per differing object: `missing ...`, `unexpected ...` or `changed ...`.
        differences: Vec<String>,
    },

    /// The database role lacks a privilege the operation needs. Installing, migrating and
    /// uninstalling need the owner of the `pgqrs` schema; the runtime needs the grants
    /// that `Admin::grant_sql` prints.
    #[error(
        "{}: installing, upgrading and uninstalling need the schema owner's role; the application role needs the grants from `Admin::grant_sql`",
        server_message(.0)
    )]
    PermissionDenied(#[source] sqlx::Error),

    /// No queue of that name exists.
    #[error(
        "queue `{queue}` does not exist: create it first with `Admin::create_queue(\"{queue}\")`"
    )]
    QueueNotFound {
        /// The queue that was asked for.
        queue: String,
    },

    /// A queue name that pgqrs refuses (it is never sent to SQL).
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidQueueName {
        /// The rejected name, shortened to 64 characters.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// This consumer no longer holds the lease on these jobs: it expired and another
    /// consumer claimed them, or this consumer never dequeued them. Nothing was recorded.
    #[error(
        "lease lost on job(s) {job_ids:?}: the lease expired and the job was claimed again, or this consumer never held it; nothing was recorded"
    )]
    LeaseLost {
        /// The jobs whose lease was not held.
        job_ids: Vec<i64>,
    },

    /// No job has this id: it is not in its queue, nor in the archive or the dead letters.
    #[error("job {id} does not exist: it is not in a queue, the archive or the dead letters")]
    JobNotFound {
        /// The id asked for.
        id: i64,
    },

    /// The job is leased by a consumer or worker, so an operator cannot change it now.
    #[error(
        "job {id} is leased by a consumer: it can be changed once that delivery ends (the job is settled or its lease runs out)"
    )]
    JobLeased {
        /// The job.
        id: i64,
    },

    /// A stored payload does not decode as the consumer's payload type. The job was moved
    /// to the queue's dead letters with this reason: nothing is lost.
    #[error(
        "job {id} in queue `{queue}` does not decode as `{type_name}` ({source}); it was moved to the dead letters"
    )]
    Decode {
        /// The undecodable job.
        id: i64,
        /// Its queue.
        queue: String,
        /// The payload type the consumer expected.
        type_name: &'static str,
        /// What serde said.
        source: serde_json::Error,
    },

    /// A payload could not be serialized to JSON.
    #[error("payload does not serialize to JSON: {0}")]
    Encode(#[source] serde_json::Error),

    /// A serialized payload is larger than `Config::max_payload_bytes`.
    #[error(
        "payload is {size} bytes, over the limit of {limit} bytes (see `Config::max_payload_bytes`)"
    )]
    PayloadTooLarge {
        /// Serialized size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// The DSN could not be parsed. The reason never contains the password.
    #[error("invalid DSN: {reason}")]
    InvalidDsn {
        /// What is wrong with it.
        reason: String,
    },

    /// An argument is out of range (a zero batch size, a negative delay, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// No pooled connection became free within the acquire timeout.
    #[error(
        "timed out waiting for a database connection: the pool is exhausted or the server is unreachable"
    )]
    PoolTimeout,

    /// No workflow run has this id.
    #[error("workflow run {run_id} does not exist")]
    RunNotFound {
        /// The id asked for.
        run_id: i64,
    },

    /// The run's state machine does not allow this transition.
    #[error("workflow run {run_id} has status {from}: it cannot become {to}")]
    IllegalTransition {
        /// The run.
        run_id: i64,
        /// Its status.
        from: crate::workflow::RunStatus,
        /// The status asked for.
        to: crate::workflow::RunStatus,
    },

    /// Another executor holds the run's lease: it cannot be taken over until that lease
    /// runs out.
    #[error(
        "workflow run {run_id} is being executed elsewhere (its lease is held); it can be taken over once that lease runs out"
    )]
    RunBusy {
        /// The run.
        run_id: i64,
    },

    /// The run paused in a durable sleep or to wait for a signal. It resumes by itself in a
    /// workflow worker when the time comes or the signal arrives.
    #[error("workflow run {run_id} is suspended ({reason}); a workflow worker resumes it")]
    Suspended {
        /// The run.
        run_id: i64,
        /// What it waits for.
        reason: String,
    },

    /// The workflow returned an error; the run is `failed`.
    #[error("workflow run {run_id} failed: {error}")]
    WorkflowFailed {
        /// The run.
        run_id: i64,
        /// The workflow's error, as text.
        error: String,
    },

    /// The run was cancelled.
    #[error("workflow run {run_id} was cancelled")]
    Cancelled {
        /// The run.
        run_id: i64,
    },

    /// A recorded step's output was stored under another JSON schema than the step's
    /// output type has now (the code changed), or no longer decodes: the stored value is
    /// not returned as something it is not.
    #[error(
        "step `{step}` (#{seq}) of run {run_id} was recorded with another output type: {detail}; finish or cancel runs before changing a step's output type, or rename the step"
    )]
    SchemaMismatch {
        /// The run.
        run_id: i64,
        /// The step's name.
        step: String,
        /// Its call sequence number in the run.
        seq: i32,
        /// What differs.
        detail: String,
    },

    /// Replaying a run met a different step call than the one recorded at this position:
    /// the workflow is not deterministic, or its code changed under a running run.
    #[error(
        "workflow run {run_id} diverged at step #{seq}: recorded `{recorded}`, now called `{called}`; workflow code must call the same steps with the same inputs on every replay"
    )]
    WorkflowDiverged {
        /// The run.
        run_id: i64,
        /// The position.
        seq: i32,
        /// The recorded step (name and input).
        recorded: String,
        /// The step called now.
        called: String,
    },

    /// The run was started by another version of the workflow than the code at hand.
    #[error(
        "workflow run {run_id} of `{workflow}` was started by version {run_version:?}, this code is version {code_version:?}; run it with a worker of that version"
    )]
    VersionMismatch {
        /// The run.
        run_id: i64,
        /// The workflow's name.
        workflow: String,
        /// The version recorded when the run was created.
        run_version: String,
        /// The version of the code trying to run it.
        code_version: String,
    },

    /// A pgqrs task failed in a way that is a bug in pgqrs; please report it.
    #[error("internal error in pgqrs: {0}")]
    Internal(String),

    /// Applying the schema migrations failed.
    #[error("installing the pgqrs schema failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),

    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

/// SQLSTATEs that mean the pgqrs schema or one of its tables is missing.
const UNDEFINED_TABLE: &str = "42P01";
const INVALID_SCHEMA_NAME: &str = "3F000";
/// SQLSTATE `insufficient_privilege`.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// What the server said, without sqlx's prefix.
fn server_message(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// The first differences of a schema drift, for its message.
fn drift_summary(differences: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = differences
        .iter()
        .take(SHOWN)
        .map(|line| {
            let mut line = line.clone();
            if line.chars().count() > 200 {
                line = line.chars().take(200).collect::<String>() + "...";
            }
            line
        })
        .collect::<Vec<_>>()
        .join("; ");
    if differences.len() > SHOWN {
        text.push_str(&format!("; and {} more", differences.len() - SHOWN));
    }
    text
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut => Error::PoolTimeout,
            sqlx::Error::Database(db)
                if matches!(
                    db.code().as_deref(),
                    Some(UNDEFINED_TABLE | INVALID_SCHEMA_NAME)
                ) && db.message().contains("pgqrs") =>
            {
                Error::NotInstalled
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some(INSUFFICIENT_PRIVILEGE) => {
                Error::PermissionDenied(err)
            }
            _ => Error::Database(err),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Error::Migrate(err)
    }
}
