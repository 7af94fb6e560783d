//! Schema presence and migration version.

use sqlx::PgExecutor;

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
