//! `install`, `migrate`, `verify`, `uninstall`.

use pgqrs::Admin;
use serde::Serialize;

use crate::exit::CliError;
use crate::output::Output;

/// What `install` and `migrate` did.
#[derive(Debug, Serialize)]
struct Migrated {
    /// The migration before (`None`: not installed).
    from: Option<i64>,
    /// The migration after.
    to: Option<i64>,
    /// Whether anything was applied.
    changed: bool,
}

/// `install` and `migrate`: applies the pending migrations (installing on an empty
/// database) and tells the version before and after.
pub(super) async fn migrate(admin: &Admin) -> Result<Output, CliError> {
    let from = admin.schema_version().await?;
    admin.install().await?;
    let to = admin.schema_version().await?;
    let version = |v: Option<i64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
    let human = match (from, to) {
        (None, _) => format!("installed the pgqrs schema at migration {}", version(to)),
        (Some(before), Some(after)) if before == after => {
            format!("the pgqrs schema is already at migration {after}: nothing to do")
        }
        (Some(before), _) => format!(
            "migrated the pgqrs schema from migration {before} to {}",
            version(to)
        ),
    };
    Output::new(
        human,
        &Migrated {
            from,
            to,
            changed: from != to,
        },
    )
}

/// What `verify` found.
#[derive(Debug, Serialize)]
struct Verified {
    /// Always `true`: a failed verification is an error (exit code 3).
    ok: bool,
    /// The installed migration.
    version: Option<i64>,
}

/// `verify`: the library's check, exit code 3 when it fails.
pub(super) async fn verify(admin: &Admin) -> Result<Output, CliError> {
    admin.verify().await?;
    let version = admin.schema_version().await?;
    let human = format!(
        "the pgqrs schema is installed at migration {}, as this build expects",
        version.unwrap_or_default()
    );
    Output::new(human, &Verified { ok: true, version })
}

/// What `uninstall` did.
#[derive(Debug, Serialize)]
struct Uninstalled {
    /// The migration pgqrs was at (`None`: it was not installed).
    was: Option<i64>,
    /// Whether the schema was dropped.
    uninstalled: bool,
}

/// `uninstall` (confirmed): drops the schema.
pub(super) async fn uninstall(admin: &Admin) -> Result<Output, CliError> {
    let was = admin.schema_version().await?;
    admin.uninstall().await?;
    let human = match was {
        None => "pgqrs was not installed in this database: nothing to do".to_owned(),
        Some(_) => "dropped the schema `pgqrs` and all its data".to_owned(),
    };
    Output::new(
        human,
        &Uninstalled {
            was,
            uninstalled: was.is_some(),
        },
    )
}
