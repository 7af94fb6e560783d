//! `pgqrs::Error` as a Python exception hierarchy rooted at `pgqrs.PgqrsError`.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(pgqrs, PgqrsError, PyException, "Every error pgqrs raises.");
create_exception!(
    pgqrs,
    NotInstalled,
    PgqrsError,
    "The database has no pgqrs schema: run `Admin.install()`."
);
create_exception!(
    pgqrs,
    SchemaVersionError,
    PgqrsError,
    "The schema is at another migration than this pgqrs expects."
);
create_exception!(
    pgqrs,
    QueueNotFound,
    PgqrsError,
    "No queue of that name exists."
);
create_exception!(
    pgqrs,
    InvalidQueueName,
    PgqrsError,
    "A queue name pgqrs refuses."
);
create_exception!(
    pgqrs,
    LeaseLost,
    PgqrsError,
    "The job's lease expired and another consumer holds it."
);
create_exception!(
    pgqrs,
    DecodeError,
    PgqrsError,
    "A stored payload does not decode; it moved to the dead letters."
);
create_exception!(
    pgqrs,
    PayloadTooLarge,
    PgqrsError,
    "A payload over the configured size limit."
);
create_exception!(pgqrs, InvalidDsn, PgqrsError, "A DSN that does not parse.");
create_exception!(
    pgqrs,
    InvalidArgument,
    PgqrsError,
    "An argument out of range."
);
create_exception!(
    pgqrs,
    PoolTimeout,
    PgqrsError,
    "No database connection became free in time."
);
create_exception!(
    pgqrs,
    RunNotFound,
    PgqrsError,
    "No workflow run has that id."
);
create_exception!(
    pgqrs,
    RunBusy,
    PgqrsError,
    "Another executor holds the run's lease."
);
create_exception!(
    pgqrs,
    IllegalTransition,
    PgqrsError,
    "The run's state does not allow that."
);
create_exception!(
    pgqrs,
    Suspended,
    PgqrsError,
    "The run sleeps or waits for a signal; a worker resumes it."
);
create_exception!(
    pgqrs,
    WorkflowFailed,
    PgqrsError,
    "The workflow ended with an error."
);
create_exception!(pgqrs, Cancelled, PgqrsError, "The run was cancelled.");
create_exception!(
    pgqrs,
    SchemaMismatch,
    PgqrsError,
    "A recorded step output has another type than the code expects."
);
create_exception!(
    pgqrs,
    WorkflowDiverged,
    PgqrsError,
    "A replay called other steps than were recorded."
);
create_exception!(
    pgqrs,
    VersionMismatch,
    PgqrsError,
    "The run was started by another version of the workflow."
);
create_exception!(
    pgqrs,
    DatabaseError,
    PgqrsError,
    "Any other database error."
);

/// Adds the exception classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("PgqrsError", py.get_type::<PgqrsError>())?;
    m.add("NotInstalled", py.get_type::<NotInstalled>())?;
    m.add("SchemaVersionError", py.get_type::<SchemaVersionError>())?;
    m.add("QueueNotFound", py.get_type::<QueueNotFound>())?;
    m.add("InvalidQueueName", py.get_type::<InvalidQueueName>())?;
    m.add("LeaseLost", py.get_type::<LeaseLost>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("PayloadTooLarge", py.get_type::<PayloadTooLarge>())?;
    m.add("InvalidDsn", py.get_type::<InvalidDsn>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("PoolTimeout", py.get_type::<PoolTimeout>())?;
    m.add("RunNotFound", py.get_type::<RunNotFound>())?;
    m.add("RunBusy", py.get_type::<RunBusy>())?;
    m.add("IllegalTransition", py.get_type::<IllegalTransition>())?;
    m.add("Suspended", py.get_type::<Suspended>())?;
    m.add("WorkflowFailed", py.get_type::<WorkflowFailed>())?;
    m.add("Cancelled", py.get_type::<Cancelled>())?;
    m.add("SchemaMismatch", py.get_type::<SchemaMismatch>())?;
    m.add("WorkflowDiverged", py.get_type::<WorkflowDiverged>())?;
    m.add("VersionMismatch", py.get_type::<VersionMismatch>())?;
    m.add("DatabaseError", py.get_type::<DatabaseError>())?;
    Ok(())
}

/// The Python exception for a pgqrs error, with pgqrs's message (which never contains a
/// password).
pub(crate) fn to_py(err: pgqrs::Error) -> PyErr {
    use pgqrs::Error as E;
    let message = err.to_string();
    match err {
        E::NotInstalled => NotInstalled::new_err(message),
        E::SchemaVersion { .. } | E::SchemaDrift { .. } => SchemaVersionError::new_err(message),
        E::QueueNotFound { .. } => QueueNotFound::new_err(message),
        E::InvalidQueueName { .. } => InvalidQueueName::new_err(message),
        E::LeaseLost { .. } => LeaseLost::new_err(message),
        E::Decode { .. } => DecodeError::new_err(message),
        E::PayloadTooLarge { .. } => PayloadTooLarge::new_err(message),
        E::InvalidDsn { .. } => InvalidDsn::new_err(message),
        E::InvalidArgument(_) | E::Encode(_) => InvalidArgument::new_err(message),
        E::PoolTimeout => PoolTimeout::new_err(message),
        E::RunNotFound { .. } => RunNotFound::new_err(message),
        E::RunBusy { .. } => RunBusy::new_err(message),
        E::IllegalTransition { .. } => IllegalTransition::new_err(message),
        E::Suspended { .. } => Suspended::new_err(message),
        E::WorkflowFailed { .. } => WorkflowFailed::new_err(message),
        E::Cancelled { .. } => Cancelled::new_err(message),
        E::SchemaMismatch { .. } => SchemaMismatch::new_err(message),
        E::WorkflowDiverged { .. } => WorkflowDiverged::new_err(message),
        E::VersionMismatch { .. } => VersionMismatch::new_err(message),
        _ => DatabaseError::new_err(message),
    }
}
