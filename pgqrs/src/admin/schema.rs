//! Installing, verifying and uninstalling the `pgqrs` schema, and the grants an
//! application role needs.

use std::collections::BTreeMap;

use super::Admin;
use crate::db::{self, MIGRATOR};
use crate::{Error, Result};

/// The schema this build's migrations create, as [`Admin::describe_schema`] prints it.
/// `tests/integration/schema.rs` keeps it current: after changing a migration run
/// `PGQRS_BLESS=1 cargo nextest run -p pgqrs -E 'test(schema_description_is_current)'`.
const EXPECTED_SCHEMA: &str = include_str!("../db/schema_expected.txt");

/// The latest migration this build of pgqrs embeds.
fn expected_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or_default()
}

fn newer_schema(found: i64) -> Error {
    Error::SchemaVersion {
        found,
        expected: expected_version(),
        hint: "the database was migrated by a newer pgqrs: upgrade this application's pgqrs",
    }
}

impl Admin {
    /// Creates the `pgqrs` schema or applies the migrations it lacks. Idempotent, and safe
    /// to call from several processes at once and through a transaction-mode pooler: all
    /// pending migrations apply in one transaction under a transaction-scoped lock.
    ///
    /// Creating or migrating the schema needs a role that may create schemas in the
    /// database and owns `pgqrs`. When every migration is already applied this only reads,
    /// so an application role with just the runtime grants ([`Admin::grant_sql`]) may
    /// call it at startup.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// admin.install().await?;
    /// admin.install().await?; // nothing left to do
    /// # Ok(()) }
    /// ```
    pub async fn install(&self) -> Result<()> {
        if let Some(applied) = self.applied_migrations().await? {
            if let Some(&found) = applied.last()
                && found > expected_version()
            {
                return Err(newer_schema(found));
            }
            if applied
                .iter()
                .copied()
                .eq(MIGRATOR.iter().map(|m| m.version))
            {
                tracing::debug!(version = expected_version(), "pgqrs schema is current");
                return Ok(());
            }
        }
        db::schema::schema_migrate(&self.pool, &MIGRATOR).await?;
        tracing::info!(version = expected_version(), "pgqrs schema installed");
        Ok(())
    }

    /// Checks that the schema is present, at the migration this build expects, and
    /// unchanged since: [`Error::NotInstalled`], [`Error::SchemaVersion`] (with a hint) or
    /// [`Error::SchemaDrift`] (naming what differs: a dropped index, an added column, a
    /// replaced function, a changed storage option...) otherwise.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) {
    /// match admin.verify().await {
    ///     Ok(()) => println!("ready"),
    ///     Err(pgqrs::Error::NotInstalled) => println!("run install first"),
    ///     Err(pgqrs::Error::SchemaDrift { differences }) => {
    ///         for difference in differences {
    ///             println!("{difference}");
    ///         }
    ///     }
    ///     Err(other) => println!("{other}"),
    /// }
    /// # }
    /// ```
    pub async fn verify(&self) -> Result<()> {
        let expected = expected_version();
        match self
            .applied_migrations()
            .await?
            .and_then(|v| v.last().copied())
        {
            None => return Err(Error::NotInstalled),
            Some(found) if found < expected => {
                return Err(Error::SchemaVersion {
                    found,
                    expected,
                    hint: "run `Admin::install()` to apply the pending migrations",
                });
            }
            Some(found) if found > expected => return Err(newer_schema(found)),
            Some(_) => {}
        }
        let differences = schema_differences(EXPECTED_SCHEMA, &self.describe_schema().await?);
        if differences.is_empty() {
            Ok(())
        } else {
            Err(Error::SchemaDrift { differences })
        }
    }

    /// The installed `pgqrs` schema as [`Admin::verify`] compares it, one line per table,
    /// column, constraint, index, trigger, function, sequence and type, sorted. Owners,
    /// privileges and the migration bookkeeping table are left out.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// for line in admin.describe_schema().await? {
    ///     println!("{line}"); // e.g. "index jobs_runnable: CREATE INDEX jobs_runnable ON ..."
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn describe_schema(&self) -> Result<Vec<String>> {
        Ok(db::schema::schema_describe(&self.pool).await?)
    }

    /// Removes pgqrs from the database: drops the schema `pgqrs` and everything in it.
    ///
    /// **This deletes all pgqrs data for good**: every queue, job, archived job, dead
    /// letter, workflow run, step and signal, and the migration history. Objects of your
    /// own that depend on pgqrs objects (a view over `pgqrs.jobs`, say) are dropped with
    /// it (`DROP SCHEMA pgqrs CASCADE`). Stop workers first: the drop waits for their
    /// transactions. Needs the role that owns the schema. Does nothing when pgqrs is not
    /// installed; [`Admin::install`] installs it afresh afterwards.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// admin.uninstall().await?; // all queues, jobs and runs are gone
    /// assert!(matches!(admin.verify().await, Err(pgqrs::Error::NotInstalled)));
    /// # Ok(()) }
    /// ```
    pub async fn uninstall(&self) -> Result<()> {
        db::schema::schema_drop(&self.pool).await?;
        tracing::warn!("pgqrs schema uninstalled: all pgqrs data was deleted");
        Ok(())
    }

    /// The SQL that grants role `role` what the pgqrs runtime needs and nothing more:
    /// use of the schema, reading and writing its rows (but not the migration history),
    /// its sequences and functions; plus default privileges so objects added by later
    /// migrations are granted too. Run it as the schema owner after
    /// [`Admin::install`]. No DDL is granted: the role cannot create, alter or drop
    /// anything in `pgqrs`, nor install, upgrade or uninstall it.
    ///
    /// `role` is used exactly as written (case-sensitive, always quoted): 1 to 63
    /// characters from `A-Z`, `a-z`, `0-9`, `_` and `-`, not `public` nor `pg_*`;
    /// anything else is [`Error::InvalidArgument`].
    ///
    /// ```
    /// let sql = pgqrs::Admin::grant_sql("app")?;
    /// assert!(sql.contains(r#"GRANT USAGE ON SCHEMA pgqrs TO "app";"#));
    /// assert!(pgqrs::Admin::grant_sql("app; DROP TABLE users").is_err());
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn grant_sql(role: &str) -> Result<String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let reserved = role.eq_ignore_ascii_case("public")
            || role.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("pg_"));
        if role.is_empty() || role.len() > 63 || !role.chars().all(allowed) || reserved {
            return Err(Error::InvalidArgument(format!(
                "invalid role name {:?}: use 1 to 63 characters from A-Z, a-z, 0-9, '_' and '-' (not `public` nor `pg_*`)",
                role.chars().take(64).collect::<String>()
            )));
        }
        Ok(db::schema::schema_grant_sql(&format!("\"{role}\"")))
    }

    /// The applied migrations, or `None` when pgqrs is not installed.
    async fn applied_migrations(&self) -> Result<Option<Vec<i64>>> {
        if !db::schema::schema_exists(&self.pool).await? {
            return Ok(None);
        }
        Ok(Some(
            db::schema::schema_migrations_applied(&self.pool).await?,
        ))
    }
}

/// What differs between the `expected` description (the embedded file: `#` comments and
/// blank lines ignored) and the `actual` one. Lines are `<kind> <name>: <definition>`.
fn schema_differences(expected: &str, actual: &[String]) -> Vec<String> {
    let split = |line: &str| match line.split_once(": ") {
        Some((key, definition)) => (key.to_owned(), definition.to_owned()),
        None => (line.to_owned(), String::new()),
    };
    let expected: BTreeMap<String, String> = expected
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(split)
        .collect();
    let actual: BTreeMap<String, String> = actual.iter().map(|line| split(line)).collect();
    let mut differences = Vec::new();
    for (key, want) in &expected {
        match actual.get(key) {
            None => differences.push(format!("missing {key}")),
            Some(found) if found != want => {
                differences.push(format!("changed {key}: expected `{want}`, found `{found}`"))
            }
            Some(_) => {}
        }
    }
    for (key, found) in &actual {
        if !expected.contains_key(key) {
            differences.push(format!("unexpected {key}: {found}"));
        }
    }
    differences
}

#[cfg(test)]
mod tests {
    use super::schema_differences;

    #[test]
    fn differences_name_the_objects() {
        let expected =
            "# comment\nindex a: CREATE INDEX a\ncolumn t.x: text\n\nfunction f(): md5 1\n";
        let actual = [
            "column t.x: text".to_owned(),
            "column t.y: integer".to_owned(),
            "function f(): md5 2".to_owned(),
        ];
        assert_eq!(
            schema_differences(expected, &actual),
            [
                "changed function f(): expected `md5 1`, found `md5 2`",
                "missing index a",
                "unexpected column t.y: integer",
            ]
        );
        assert!(schema_differences(expected, &actual[..1]).len() == 2);
    }

    #[test]
    fn role_names_are_checked_before_quoting() {
        for bad in [
            "",
            "a\"b",
            "app; DROP TABLE x",
            "public",
            "PG_monitor",
            "rôle",
            "a b",
        ] {
            assert!(crate::Admin::grant_sql(bad).is_err(), "{bad:?}");
        }
        let long = "r".repeat(64);
        assert!(crate::Admin::grant_sql(&long).is_err());
        let sql = crate::Admin::grant_sql("App-1").unwrap_or_default();
        assert!(sql.contains("TO \"App-1\";"), "{sql}");
    }
}
