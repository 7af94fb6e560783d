//! Schema presence, migration version, description (for drift detection) and removal.

use sqlx::PgExecutor;

use super::pool::Db;

/// Whether the `pgqrs` schema and its migration table exist.
pub(crate) async fn schema_exists<'c>(db: impl PgExecutor<'c>) -> sqlx::Result<bool> {
    sqlx::query_scalar!(r#"SELECT to_regclass('pgqrs._sqlx_migrations') IS NOT NULL AS "exists!""#)
        .fetch_one(db)
        .await
}

/// The latest successfully applied migration, if any.
pub(crate) async fn schema_version<'c>(db: impl PgExecutor<'c>) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!("SELECT max(version) FROM pgqrs._sqlx_migrations WHERE success")
        .fetch_one(db)
        .await
}

/// The successfully applied migrations, in order.
pub(crate) async fn schema_migrations_applied<'c>(
    db: impl PgExecutor<'c>,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!("SELECT version FROM pgqrs._sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(db)
        .await
}

/// The installed schema described from the catalogs, one sorted line per table, column,
/// constraint, index, trigger, function, sequence and type (see
/// `sql/schema_describe.sql`). Pins `search_path` for the transaction so that the
/// catalog functions print names the same way for every role.
pub(crate) async fn schema_describe(db: &Db) -> sqlx::Result<Vec<String>> {
    let mut tx = db.begin().await?;
    sqlx::query_scalar!(
        r#"SELECT set_config('search_path', 'pg_catalog', true) AS "search_path!""#
    )
    .fetch_one(&mut *tx)
    .await?;
    let lines = sqlx::query_file_scalar!("src/db/sql/schema_describe.sql")
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(lines)
}

/// First key of the advisory lock installers take ('pgqs'; the second key is 0).
const INSTALL_LOCK_SPACE: i32 = 0x7067_7173;

/// Applies the migrations `migrator` holds that the database lacks, all in one transaction
/// under a transaction-scoped advisory lock: concurrent installers wait for each other, a
/// failed migration leaves nothing behind, and no session lock is left on a server
/// connection a transaction-mode pooler hands to someone else (sqlx's own migrator lock is
/// session-scoped, so it is turned off).
pub(crate) async fn schema_migrate(
    db: &Db,
    migrator: &sqlx::migrate::Migrator,
) -> Result<(), sqlx::migrate::MigrateError> {
    let unlocked = sqlx::migrate::Migrator {
        migrations: migrator.migrations.clone(),
        ignore_missing: migrator.ignore_missing,
        locking: false,
        no_tx: migrator.no_tx,
        table_name: migrator.table_name.clone(),
        create_schemas: migrator.create_schemas.clone(),
    };
    let mut tx = db.begin().await?;
    sqlx::query_scalar!(
        r#"SELECT 1 AS "locked!" FROM pg_advisory_xact_lock($1, 0)"#,
        INSTALL_LOCK_SPACE
    )
    .fetch_one(&mut *tx)
    .await?;
    unlocked.run_direct(None, &mut *tx, false).await?;
    tx.commit().await?;
    Ok(())
}

/// Drops the `pgqrs` schema with everything in it, its migration table included.
pub(crate) async fn schema_drop<'c>(db: impl PgExecutor<'c>) -> sqlx::Result<()> {
    sqlx::query!("DROP SCHEMA IF EXISTS pgqrs CASCADE")
        .execute(db)
        .await?;
    Ok(())
}

/// The grants the runtime needs, for `role` (already validated and quoted): see
/// `Admin::grant_sql`. Run by the schema owner.
pub(crate) fn schema_grant_sql(role: &str) -> String {
    format!(
        "GRANT USAGE ON SCHEMA pgqrs TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgqrs TO {role};
REVOKE INSERT, UPDATE, DELETE ON pgqrs._sqlx_migrations FROM {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA pgqrs TO {role};
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pgqrs TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA pgqrs GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA pgqrs GRANT USAGE, SELECT ON SEQUENCES TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA pgqrs GRANT EXECUTE ON FUNCTIONS TO {role};
"
    )
}
