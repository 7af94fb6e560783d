//! The schema migration a database is at, and the one this build expects.

use super::Admin;
use crate::Result;
use crate::db::{self, MIGRATOR};

impl Admin {
    /// The latest migration applied in the database: `None` when pgqrs is not installed.
    /// Unlike [`Admin::verify`], this does not judge the version.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// match admin.schema_version().await? {
    ///     None => println!("not installed"),
    ///     Some(v) => println!("at migration {v} (this build expects {})", pgqrs::Admin::expected_schema_version()),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn schema_version(&self) -> Result<Option<i64>> {
        if !db::schema::schema_exists(&self.pool).await? {
            return Ok(None);
        }
        Ok(db::schema::schema_version(&self.pool).await?)
    }

    /// The latest migration this build of pgqrs embeds: what [`Admin::install`] migrates to.
    ///
    /// ```
    /// assert!(pgqrs::Admin::expected_schema_version() >= 1);
    /// ```
    pub fn expected_schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or_default()
    }
}
