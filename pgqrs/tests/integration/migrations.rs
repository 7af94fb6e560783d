//! Migrations are numbered, additive and never edited once released; `Admin::install`
//! upgrades a database from every earlier state without losing its rows.

use std::fmt::Write as _;

use pgqrs::{Admin, Config, Consumer, EnqueueOptions, Producer};
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, PgPool};

use crate::common::in_snapshots;

/// The same migrations `Admin::install` applies, with the same bookkeeping table
/// (`pgqrs/sqlx.toml`).
static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

const MIGRATIONS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");

fn migration_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(MIGRATIONS_DIR)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            (name, text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn migrations_are_numbered_contiguously() {
    let files = migration_files();
    assert!(!files.is_empty());
    for (i, (name, _)) in files.iter().enumerate() {
        let expected = format!("{:04}_", i + 1);
        assert!(
            name.starts_with(&expected) && name.ends_with(".sql") && !name.contains(".down."),
            "migration #{} is {name:?}: name them NNNN_what.sql, numbered from 0001 without gaps, no down migrations",
            i + 1
        );
    }
    let versions: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    let numbers: Vec<i64> = (1..=files.len() as i64).collect();
    assert_eq!(versions, numbers, "the embedded migrations are the files");
}

/// Additive: a migration may add tables, columns, indexes and constraints and may replace
/// an index or relax a constraint, but never drop or rewrite what holds data.
#[test]
fn migrations_are_additive() {
    let destructive = [
        "DROP TABLE",
        "DROP COLUMN",
        "DROP SCHEMA",
        "DROP TYPE",
        "DROP SEQUENCE",
        "TRUNCATE",
        "DELETE FROM",
        "RENAME",
    ];
    for (name, text) in migration_files() {
        // Comments may talk about anything.
        let code: String = text
            .lines()
            .map(|line| line.split("--").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase();
        // A function's body (dollar-quoted) runs when called, not when migrating.
        let code: String = code.split("$$").step_by(2).collect::<Vec<_>>().join(" ");
        let code = code.split_whitespace().collect::<Vec<_>>().join(" ");
        for statement in destructive {
            assert!(
                !code.contains(statement),
                "{name} contains `{statement}`: migrations are additive; keep old objects and add new ones"
            );
        }
        // A column's type is never rewritten in place (`ALTER COLUMN c [SET DATA] TYPE`).
        let tokens: Vec<&str> = code.split(' ').collect();
        for (i, pair) in tokens.windows(2).enumerate() {
            if pair == ["ALTER", "COLUMN"] {
                let next = tokens
                    .get(i + 3..(i + 6).min(tokens.len()))
                    .unwrap_or_default();
                assert!(
                    !next.contains(&"TYPE"),
                    "{name} changes a column's type: add a new column instead"
                );
            }
        }
    }
}

/// A released migration is never edited: its checksum is pinned here. Adding a migration
/// adds a line (review it with `cargo insta review`); changing a line means a released
/// migration was edited, which breaks every database that already applied it.
#[test]
fn released_migrations_are_never_edited() {
    let mut pinned = String::new();
    for migration in MIGRATOR.iter() {
        let checksum: String = migration
            .checksum
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        writeln!(
            pinned,
            "{:04} {} {checksum}",
            migration.version, migration.description
        )
        .unwrap();
    }
    in_snapshots(|| insta::assert_snapshot!("migration_checksums", pinned));
}

#[sqlx::test(migrations = false)]
async fn every_migration_applies_to_an_empty_database(pool: PgPool) -> pgqrs::Result<()> {
    let admin = Admin::new(&Config::from_pool(pool.clone())).await?;
    admin.install().await?;
    admin.verify().await?;
    let applied: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM pgqrs._sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        applied,
        MIGRATOR.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    Ok(())
}

/// The last migration whose release leased jobs in their row (0008 leases batches).
const LAST_IN_ROW_LEASE: i64 = 7;

/// Rows a database at migration `version` can hold, written the way that release wrote
/// them.
async fn seed(pool: &PgPool, version: i64) -> sqlx::Result<()> {
    if version >= 1 {
        sqlx::raw_sql(
            "INSERT INTO pgqrs.queues (name, max_attempts) VALUES ('legacy', 3);
             INSERT INTO pgqrs.jobs (queue_id, payload) SELECT id, '{\"n\": 1}' FROM pgqrs.queues;
             INSERT INTO pgqrs.archive (id, queue_id, payload, priority, attempts, enqueued_at, outcome)
                 SELECT 1000, id, '{\"n\": 0}', 0, 1, now(), 'done' FROM pgqrs.queues;
             INSERT INTO pgqrs.dead_letters (id, queue_id, payload, priority, attempts, enqueued_at, reason)
                 SELECT 1001, id, '{\"n\": -1}', 0, 3, now(), 'boom' FROM pgqrs.queues;",
        )
        .execute(pool)
        .await?;
    }
    if version >= 2 {
        sqlx::raw_sql(
            "INSERT INTO pgqrs.workers (name, pid, queues) VALUES ('old-worker', 1, '{legacy}');
             INSERT INTO pgqrs.periodic_ticks (name, last_tick) VALUES ('nightly', now());",
        )
        .execute(pool)
        .await?;
    }
    if (2..=LAST_IN_ROW_LEASE).contains(&version) {
        // A job leased in its row, by a worker that died: its lease has run out. It holds a
        // unique key.
        sqlx::raw_sql(
            "INSERT INTO pgqrs.jobs (queue_id, payload, attempts, lease_token, lease_expires_at, unique_key)
                 SELECT id, '{\"n\": 2}', 1, nextval('pgqrs.lease_tokens'), now() - interval '1 second',
                        'legacy-key'
                 FROM pgqrs.queues;",
        )
        .execute(pool)
        .await?;
    }
    if version >= 3 {
        sqlx::raw_sql(
            "INSERT INTO pgqrs.runs (workflow, input, status) VALUES ('legacy_flow', '1', 'pending');
             INSERT INTO pgqrs.steps (run_id, seq, name, input, output, fingerprint)
                 SELECT id, 0, 'first', '1', '2', 'f' FROM pgqrs.runs;
             INSERT INTO pgqrs.signals (run_id, name, payload) SELECT id, 'go', 'true' FROM pgqrs.runs;",
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM pgqrs.{table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// From every released state (the first k migrations applied, with rows in its tables),
/// `install` brings the schema to exactly what a fresh install creates, and every row
/// survives and is usable.
#[sqlx::test(migrations = false)]
async fn install_upgrades_every_earlier_state_keeping_the_rows(pool: PgPool) -> anyhow::Result<()> {
    let config = Config::from_pool(pool.clone());
    let admin = Admin::new(&config).await?;
    let versions: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    for &version in &versions {
        MIGRATOR.run_to(version, &pool).await?;
        match admin.verify().await {
            Err(pgqrs::Error::SchemaVersion { found, .. }) => assert_eq!(found, version),
            Ok(()) => assert_eq!(Some(&version), versions.last()),
            other => panic!("at {version}: {other:?}"),
        }
        seed(&pool, version).await?;

        admin.install().await?;
        admin.verify().await?;
        let leased_in_row = (2..=LAST_IN_ROW_LEASE).contains(&version);
        let tables: &[(&str, i64)] = &[
            ("queues", 1),
            ("jobs", 1 + i64::from(leased_in_row)),
            ("archive", 1),
            ("dead_letters", 1),
        ];
        for (table, rows) in tables {
            assert_eq!(count(&pool, table).await, *rows, "{table} after {version}");
        }
        if version >= 2 {
            assert_eq!(count(&pool, "workers").await, 1);
            assert_eq!(count(&pool, "periodic_ticks").await, 1);
        }
        if version >= 3 {
            assert_eq!(count(&pool, "runs").await, 1);
            assert_eq!(count(&pool, "steps").await, 1);
            assert_eq!(count(&pool, "signals").await, 1);
        }
        // The old job is claimable by today's code, its dead letter redrivable.
        let consumer = Consumer::new(&config, "legacy").await?;
        let job = consumer.dequeue().await?.expect("the pre-upgrade job");
        assert_eq!(job.payload, serde_json::json!({"n": 1}));
        consumer.archive(job.id, "done after upgrade").await?;
        if leased_in_row {
            // Its key still holds; its expired lease is handed back, and it is delivered again.
            let producer = Producer::new(&config, "legacy").await?;
            let key = EnqueueOptions::builder().unique_key("legacy-key").build();
            let again = producer.enqueue_with(&serde_json::json!(3), &key).await?;
            assert!(
                again.duplicate,
                "the key of a job leased in its row holds after {version}"
            );
            let job = consumer
                .dequeue()
                .await?
                .expect("the job whose lease ran out");
            assert_eq!((job.id, job.attempts), (again.id, 2));
            consumer.archive(job.id, "done after upgrade").await?;
            let fresh = producer.enqueue_with(&serde_json::json!(4), &key).await?;
            assert!(!fresh.duplicate, "the key is free once its job completed");
        }
        assert_eq!(admin.redrive_all("legacy").await?, vec![1001]);

        admin.uninstall().await?;
    }
    Ok(())
}
