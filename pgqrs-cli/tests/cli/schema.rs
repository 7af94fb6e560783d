//! install, migrate, verify, uninstall; exit code 3 for a missing or old schema.

use sqlx::PgPool;

use crate::common::on;

#[sqlx::test(migrations = false)]
async fn install_verify_migrate_uninstall(pool: PgPool) {
    let latest = pgqrs::Admin::expected_schema_version();

    // Nothing installed: verify and every other command exit 3.
    let line = on(&pool, &["verify"]).fails(3);
    assert!(line.contains("pgqrs is not installed"), "{line}");
    on(&pool, &["queue", "list"]).fails(3);
    on(&pool, &["job", "show", "1"]).fails(3);
    on(&pool, &["workflow", "list"]).fails(3);

    let out = on(&pool, &["install"]).ok();
    assert_eq!(
        out,
        format!("installed the pgqrs schema at migration {latest}\n")
    );
    let out = on(&pool, &["verify"]).ok();
    assert_eq!(
        out,
        format!("the pgqrs schema is installed at migration {latest}, as this build expects\n")
    );
    let out = on(&pool, &["migrate"]).ok();
    assert_eq!(
        out,
        format!("the pgqrs schema is already at migration {latest}: nothing to do\n")
    );
    let json: serde_json::Value =
        serde_json::from_str(&on(&pool, &["--json", "migrate"]).ok()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"from": latest, "to": latest, "changed": false})
    );
    let json: serde_json::Value =
        serde_json::from_str(&on(&pool, &["--json", "verify"]).ok()).unwrap();
    assert_eq!(json, serde_json::json!({"ok": true, "version": latest}));

    // Uninstall needs --yes, and leaves the schema alone without it.
    let line = on(&pool, &["uninstall"]).fails(2);
    assert_eq!(
        line,
        "error: uninstall drops the schema `pgqrs` with all its data: pass --yes to confirm"
    );
    on(&pool, &["verify"]).ok();
    let out = on(&pool, &["uninstall", "--yes"]).ok();
    assert_eq!(out, "dropped the schema `pgqrs` and all its data\n");
    on(&pool, &["verify"]).fails(3);
    let out = on(&pool, &["uninstall", "--yes"]).ok();
    assert_eq!(
        out,
        "pgqrs was not installed in this database: nothing to do\n"
    );

    // `install` works afresh after an uninstall.
    on(&pool, &["install"]).ok();
    on(&pool, &["verify"]).ok();
}

#[sqlx::test(migrations = "../migrations")]
async fn an_old_schema_fails_verify_with_3_and_migrate_reports_it(pool: PgPool) {
    let latest = pgqrs::Admin::expected_schema_version();
    // Pretend the latest migration was never applied.
    sqlx::query("DELETE FROM pgqrs._sqlx_migrations WHERE version = $1")
        .bind(latest)
        .execute(&pool)
        .await
        .unwrap();
    let line = on(&pool, &["verify"]).fails(3);
    assert!(
        line.contains(&format!("expects {latest}")),
        "no version in: {line}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_drifted_schema_fails_verify_with_3(pool: PgPool) {
    sqlx::query("DROP INDEX pgqrs.jobs_leased")
        .execute(&pool)
        .await
        .unwrap();
    let line = on(&pool, &["verify"]).fails(3);
    assert!(line.contains("jobs_leased"), "{line}");
}
