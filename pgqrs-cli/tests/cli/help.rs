//! The help texts, pinned: they are the tool's documentation.

use crate::common::{in_snapshots, pgqrs};

#[test]
fn help_texts_are_pinned() {
    let groups: &[(&str, &[&str])] = &[
        ("cli_help", &["--help"]),
        ("cli_help_queue", &["queue", "--help"]),
        ("cli_help_dlq", &["dlq", "--help"]),
        ("cli_help_job", &["job", "--help"]),
        ("cli_help_workflow", &["workflow", "--help"]),
        ("cli_help_worker", &["worker", "--help"]),
        ("cli_help_uninstall", &["uninstall", "--help"]),
    ];
    for (name, args) in groups {
        let text = pgqrs(args).ok();
        in_snapshots(|| insta::assert_snapshot!(*name, text));
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let text = pgqrs(&["--help"]).ok();
    for line in [
        "0  success",
        "2  usage error",
        "3  the pgqrs schema is not installed",
        "4  not found",
        "5  cannot connect",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn usage_errors_exit_with_2() {
    assert_eq!(pgqrs(&[]).code, 2);
    assert_eq!(pgqrs(&["queue", "frobnicate"]).code, 2);
    assert_eq!(pgqrs(&["dlq", "redrive", "tasks"]).code, 2, "ids or --all");
    assert_eq!(pgqrs(&["job", "show", "not-a-number"]).code, 2);
    assert_eq!(pgqrs(&["workflow", "list", "--status", "sleepy"]).code, 2);
}
