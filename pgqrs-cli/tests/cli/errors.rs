//! Errors: one line, the right exit code, never the password.

use sqlx::PgPool;

use crate::common::{in_snapshots, on, pgqrs};

#[test]
fn no_dsn_is_a_usage_error() {
    let line = pgqrs(&["queue", "list"]).fails(2);
    assert_eq!(
        line,
        "error: no database given: pass --dsn or set DATABASE_URL"
    );
}

#[test]
fn malformed_dsns_get_one_clear_line_without_the_password() {
    let lines = [
        pgqrs(&[
            "--dsn",
            "postgres://u:s3cret@127.0.0.1:notaport/db",
            "queue",
            "list",
        ])
        .fails(2),
        pgqrs(&["--dsn", "mysql://u:s3cret@127.0.0.1/db", "queue", "list"]).fails(2),
        pgqrs(&["--dsn", "u:s3cret@127.0.0.1/db", "verify"]).fails(2),
    ];
    let text = lines.join("\n");
    assert!(!text.contains("s3cret"), "{text}");
    in_snapshots(|| insta::assert_snapshot!("cli_malformed_dsn", text));
}

#[test]
fn unreachable_server_exits_5_without_the_password() {
    let run = pgqrs(&[
        "--dsn",
        "postgres://u:s3cret@127.0.0.1:1/db",
        "--connect-timeout",
        "1",
        "queue",
        "list",
    ]);
    assert!(!run.stderr.contains("s3cret") && !run.stdout.contains("s3cret"));
    let line = run.fails(5);
    assert!(
        !line.contains("Error {") && !line.contains("Io("),
        "a debug dump: {line}"
    );
}

#[test]
fn unknown_database_exits_5_without_the_password() {
    let run = pgqrs(&[
        "--dsn",
        "postgres://postgres:s3cret@127.0.0.1:5432/pgqrs_cli_no_such_db",
        "verify",
    ]);
    assert!(!run.stderr.contains("s3cret") && !run.stdout.contains("s3cret"));
    let line = run.fails(5);
    assert!(line.contains("pgqrs_cli_no_such_db"), "{line}");
}

#[test]
fn the_password_of_a_working_dsn_is_never_printed() {
    // Trust auth accepts any password: a whole session of commands with one.
    let dsn = "postgres://postgres:s3cret@127.0.0.1:5432/postgres";
    for args in [
        &["--dsn", dsn, "verify"][..],
        &["--dsn", dsn, "--json", "queue", "list"],
        &["--dsn", dsn, "job", "show", "1"],
    ] {
        let run = pgqrs(args);
        assert!(
            !run.stderr.contains("s3cret") && !run.stdout.contains("s3cret"),
            "{run:?}"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn not_found_exits_4(pool: PgPool) {
    let lines = [
        on(&pool, &["queue", "stats", "nope"]).fails(4),
        on(&pool, &["queue", "delete", "nope", "--yes"]).fails(4),
        on(&pool, &["dlq", "list", "nope"]).fails(4),
        on(&pool, &["job", "show", "999"]).fails(4),
        on(&pool, &["job", "retry", "999"]).fails(4),
        on(&pool, &["job", "cancel", "999"]).fails(4),
        on(&pool, &["workflow", "show", "999"]).fails(4),
        on(&pool, &["workflow", "cancel", "999"]).fails(4),
        on(&pool, &["workflow", "retry", "999"]).fails(4),
    ];
    in_snapshots(|| insta::assert_snapshot!("cli_not_found", lines.join("\n")));
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_names_are_usage_errors(pool: PgPool) {
    let line = on(&pool, &["queue", "create", "Bad Name"]).fails(2);
    assert!(line.contains("invalid queue name"), "{line}");
    let line = on(&pool, &["queue", "create", "ok", "--max-attempts", "0"]).fails(2);
    assert!(line.contains("max_attempts"), "{line}");
}
