//! Schema discipline: the embedded description of the schema is current, `verify` catches
//! drift, `uninstall` removes everything and `install` brings it back.

use pgqrs::{Admin, Config, Error, Producer};
use serde_json::json;
use sqlx::PgPool;

const EXPECTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/db/schema_expected.txt");

async fn installed(pool: &PgPool) -> pgqrs::Result<Admin> {
    let admin = Admin::new(&Config::from_pool(pool.clone())).await?;
    admin.install().await?;
    Ok(admin)
}

/// The file `Admin::verify` compares with is what the migrations create. After changing a
/// migration, regenerate it: `PGQRS_BLESS=1 cargo nextest run -p pgqrs -E
/// 'test(schema_description_is_current)'`, and review the diff.
#[sqlx::test(migrations = false)]
async fn schema_description_is_current(pool: PgPool) -> anyhow::Result<()> {
    let admin = installed(&pool).await?;
    let described = admin.describe_schema().await?;
    let file = std::fs::read_to_string(EXPECTED)?;
    let header: String = file
        .lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    let wanted = format!("{header}{}\n", described.join("\n"));
    if std::env::var_os("PGQRS_BLESS").is_some() {
        std::fs::write(EXPECTED, &wanted)?;
    } else {
        assert!(
            file == wanted,
            "{EXPECTED} is out of date: regenerate it with PGQRS_BLESS=1 cargo nextest run -p pgqrs -E 'test(schema_description_is_current)'\n--- described:\n{}",
            described.join("\n")
        );
    }
    admin.verify().await?;
    Ok(())
}

fn drift(result: pgqrs::Result<()>) -> Vec<String> {
    match result {
        Err(Error::SchemaDrift { differences }) => differences,
        other => panic!("expected SchemaDrift, got {other:?}"),
    }
}

#[sqlx::test(migrations = false)]
async fn verify_names_every_change_made_outside_the_migrations(pool: PgPool) -> anyhow::Result<()> {
    let admin = installed(&pool).await?;
    admin.verify().await?;
    let cases: [(&str, &str); 7] = [
        (
            "DROP INDEX pgqrs.jobs_runnable",
            "missing index jobs_runnable",
        ),
        (
            "ALTER TABLE pgqrs.jobs ADD COLUMN note text",
            "unexpected column jobs.note: text",
        ),
        (
            "CREATE OR REPLACE FUNCTION pgqrs.runs_check_transition() RETURNS trigger
             LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
            "changed function runs_check_transition(): expected `returns trigger language plpgsql volatile body md5 ",
        ),
        (
            "ALTER TABLE pgqrs.jobs SET (fillfactor = 90)",
            "changed table jobs: expected `options (autovacuum_analyze_scale_factor=0.05, autovacuum_vacuum_scale_factor=0.02, fillfactor=100)`, found `options (autovacuum_analyze_scale_factor=0.05, autovacuum_vacuum_scale_factor=0.02, fillfactor=90)`",
        ),
        (
            "ALTER TABLE pgqrs.queues DROP CONSTRAINT queues_name_valid",
            "missing constraint queues.queues_name_valid",
        ),
        (
            "ALTER TABLE pgqrs.runs ALTER COLUMN error SET NOT NULL",
            "changed column runs.error: expected `text`, found `text not null`",
        ),
        (
            "DROP TRIGGER runs_status_transition ON pgqrs.runs",
            "missing trigger runs.runs_status_transition",
        ),
    ];
    for (change, expected) in cases {
        sqlx::raw_sql(change).execute(&pool).await?;
        let result = admin.verify().await;
        let message = result.as_ref().map_err(|e| e.to_string()).err();
        let differences = drift(result);
        assert_eq!(differences.len(), 1, "{change}: {differences:#?}");
        assert!(
            differences[0].starts_with(expected),
            "{change}: {differences:#?}"
        );
        let message = message.unwrap_or_default();
        assert!(
            message.contains(expected.split(':').next().unwrap_or_default()),
            "{message}"
        );
        // Put the schema back the only supported way: reinstall.
        admin.uninstall().await?;
        admin.install().await?;
        admin.verify().await?;
    }

    // Several changes: the message lists the first few and counts the rest.
    sqlx::raw_sql(
        "ALTER TABLE pgqrs.jobs ADD COLUMN a int, ADD COLUMN b int, ADD COLUMN c int, ADD COLUMN d int",
    )
    .execute(&pool)
    .await?;
    let err = admin.verify().await.unwrap_err();
    assert!(err.to_string().contains("; and 1 more"), "{err}");
    assert_eq!(drift(Err(err)).len(), 4);
    Ok(())
}

#[sqlx::test(migrations = false)]
async fn verify_does_not_depend_on_the_search_path(pool: PgPool) -> anyhow::Result<()> {
    installed(&pool).await?;
    // A role named `pgqrs` has `pgqrs` first on its default search path ("$user").
    let options = (*pool.connect_options())
        .clone()
        .options([("search_path", "pgqrs, public")]);
    let admin = Admin::new(&Config::from_connect_options(options)).await?;
    admin.verify().await?;
    Ok(())
}

#[sqlx::test(migrations = false)]
async fn uninstall_removes_everything_and_install_starts_over(pool: PgPool) -> anyhow::Result<()> {
    let admin = installed(&pool).await?;
    admin.create_queue("tasks").await?;
    let config = admin.config().clone();
    Producer::new(&config, "tasks")
        .await?
        .enqueue(&json!(1))
        .await?;

    admin.uninstall().await?;
    assert!(matches!(admin.verify().await, Err(Error::NotInstalled)));
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgqrs'
         UNION ALL SELECT count(*) FROM pg_class WHERE relname = '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await?
    .iter()
    .sum();
    assert_eq!(left, 0, "the schema and its migration table are gone");
    assert!(matches!(
        Producer::new(&config, "tasks").await,
        Err(Error::NotInstalled)
    ));
    admin.uninstall().await?; // nothing left: still fine

    admin.install().await?;
    admin.verify().await?;
    assert!(admin.list_queues().await?.is_empty(), "a fresh install");
    Ok(())
}
