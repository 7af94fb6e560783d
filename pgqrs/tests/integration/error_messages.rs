//! Every error message, pinned: they are part of the user interface.

use pgqrs::workflow::RunStatus;
use pgqrs::{Config, Error, QueueName};

use crate::common::in_snapshots;

#[test]
fn error_messages_read_as_advice() {
    let decode_source = serde_json::from_str::<u32>("\"x\"").unwrap_err();
    let errors = vec![
        Error::NotInstalled,
        Error::SchemaVersion {
            found: 1,
            expected: 2,
            hint: "run `Admin::install()` to apply the pending migrations",
        },
        Error::SchemaDrift {
            differences: vec![
                "missing index jobs_runnable".into(),
                "unexpected column jobs.note: text".into(),
                "changed table jobs: expected `options (fillfactor=85)`, found `options (fillfactor=100)`".into(),
                "missing trigger runs.runs_status_transition".into(),
            ],
        },
        Error::QueueNotFound {
            queue: "emails".into(),
        },
        QueueName::new("emails; DROP TABLE users").unwrap_err(),
        QueueName::new(&"q".repeat(10_000)).unwrap_err(),
        Error::LeaseLost {
            job_ids: vec![7, 9],
        },
        Error::JobNotFound { id: 7 },
        Error::JobLeased { id: 7 },
        Error::Decode {
            id: 7,
            queue: "emails".into(),
            type_name: "app::SendEmail",
            source: decode_source,
        },
        Error::PayloadTooLarge {
            size: 2_000_000,
            limit: 1_048_576,
        },
        Config::from_dsn("postgresql://app:hunter2@db:port/x").unwrap_err(),
        Config::from_dsn("mysql://app:hunter2@db/x").unwrap_err(),
        Error::InvalidArgument("batch size must be at least 1".into()),
        Error::PoolTimeout,
        Error::RunNotFound { run_id: 42 },
        Error::RunBusy { run_id: 42 },
        Error::IllegalTransition {
            run_id: 42,
            from: RunStatus::Succeeded,
            to: RunStatus::Running,
        },
        Error::Suspended {
            run_id: 42,
            reason: "waiting for signal \"approval\"".into(),
        },
        Error::WorkflowDiverged {
            run_id: 42,
            seq: 1,
            recorded: "first(1)".into(),
            called: "first(2)".into(),
        },
    ];
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let text = text.join("\n");
    assert!(!text.contains("hunter2"));
    in_snapshots(|| insta::assert_snapshot!("error_messages", text));
}
