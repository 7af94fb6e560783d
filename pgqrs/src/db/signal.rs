//! `pgqrs.signals`: values sent to workflow runs, consumed once each by a `recv` step.

use sqlx::PgConnection;

use super::run::RunLease;

/// Stores a signal for a run (its row locked by the caller).
pub(crate) async fn signal_insert(
    conn: &mut PgConnection,
    run_id: i64,
    name: &str,
    payload: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO pgqrs.signals (run_id, name, payload) VALUES ($1, $2, $3::text::jsonb)",
        run_id,
        name,
        payload
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What taking a signal found.
#[derive(Debug)]
pub(crate) struct TakenRow {
    /// The oldest unconsumed signal of that name, now consumed by step `seq`.
    pub(crate) payload: Option<String>,
    /// The caller's lease on the run is valid.
    pub(crate) leased: bool,
}

/// Consumes the oldest pending signal `name` of a run (locked by the caller) as step `seq`,
/// recording the step; fenced by the run's lease.
pub(crate) async fn signal_take(
    conn: &mut PgConnection,
    lease: RunLease,
    seq: i32,
    name: &str,
    step_name: &str,
    fingerprint: &str,
) -> sqlx::Result<TakenRow> {
    sqlx::query_as!(
        TakenRow,
        r#"WITH lease AS (
             SELECT 1 FROM pgqrs.leases WHERE token = $3 AND $2 = ANY (ids) FOR SHARE
           ),
           signal AS (
             SELECT id, payload FROM pgqrs.signals
             WHERE run_id = $1 AND name = $5 AND consumed_seq IS NULL
             ORDER BY id
             LIMIT 1
             FOR UPDATE
           ),
           used AS (
             UPDATE pgqrs.signals s SET consumed_seq = $4
             FROM signal
             WHERE s.id = signal.id AND EXISTS (SELECT 1 FROM lease)
             RETURNING s.payload
           ),
           step AS (
             INSERT INTO pgqrs.steps (run_id, seq, name, input, output, fingerprint)
             SELECT $1, $4, $6, to_jsonb($5::text), payload, $7 FROM used
           )
           SELECT (SELECT payload::text FROM used) AS payload,
                  EXISTS (SELECT 1 FROM lease) AS "leased!""#,
        lease.run_id,
        lease.job_id,
        lease.token,
        seq,
        name,
        step_name,
        fingerprint
    )
    .fetch_one(conn)
    .await
}
