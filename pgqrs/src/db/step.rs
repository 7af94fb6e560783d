//! `pgqrs.steps`: completed workflow steps, recorded once each, fenced by the run's lease.

use sqlx::PgExecutor;

use super::run::RunLease;

/// A step to record.
#[derive(Debug)]
pub(crate) struct NewStep<'a> {
    pub(crate) lease: RunLease,
    pub(crate) seq: i32,
    pub(crate) name: &'a str,
    pub(crate) input: &'a str,
    pub(crate) output: &'a str,
    pub(crate) fingerprint: &'a str,
    pub(crate) attempts: i32,
}

/// Records a completed step if the caller still holds the run's lease and the step is not
/// recorded yet; `false` otherwise. The lease is checked as of the statement's snapshot
/// (no row lock: locking the lease row would cost a write per step); the primary key
/// `(run_id, seq)` is what makes a second record of one step impossible, whoever writes it.
///
/// A second record fails on that key rather than using `ON CONFLICT DO NOTHING`: a
/// speculative insertion costs an extra WAL record and about 0.03 ms per step (pgbench),
/// and a conflict only happens to an executor that lost its lease. The failed insert
/// aborts the caller's transaction, if it runs in one, and the server logs it as an error.
pub(crate) async fn step_complete<'c>(
    db: impl PgExecutor<'c>,
    step: &NewStep<'_>,
) -> sqlx::Result<bool> {
    let recorded = sqlx::query_scalar!(
        r#"WITH lease AS (
             SELECT 1 FROM pgqrs.leases WHERE token = $3 AND $2 = ANY (ids)
           )
           INSERT INTO pgqrs.steps (run_id, seq, name, input, output, fingerprint, attempts)
           SELECT $1, $4, $5, $6::text::jsonb, $7::text::jsonb, $8, $9 FROM lease
           RETURNING seq"#,
        step.lease.run_id,
        step.lease.job_id,
        step.lease.token,
        step.seq,
        step.name,
        step.input,
        step.output,
        step.fingerprint,
        step.attempts
    )
    .fetch_optional(db)
    .await;
    match recorded {
        Ok(seq) => Ok(seq.is_some()),
        Err(sqlx::Error::Database(err)) if err.constraint() == Some("steps_pkey") => Ok(false),
        Err(err) => Err(err),
    }
}

/// A recorded step, as shown to an operator.
#[derive(Debug)]
pub(crate) struct StepRow {
    pub(crate) seq: i32,
    pub(crate) name: String,
    pub(crate) input: serde_json::Value,
    pub(crate) output: serde_json::Value,
    pub(crate) attempts: i32,
    pub(crate) completed_at: chrono::DateTime<chrono::Utc>,
}

/// The recorded steps of a run, by sequence number.
pub(crate) async fn step_list<'c>(
    db: impl PgExecutor<'c>,
    run_id: i64,
) -> sqlx::Result<Vec<StepRow>> {
    sqlx::query_as!(
        StepRow,
        "SELECT seq, name, input, output, attempts, completed_at
         FROM pgqrs.steps WHERE run_id = $1 ORDER BY seq",
        run_id
    )
    .fetch_all(db)
    .await
}
