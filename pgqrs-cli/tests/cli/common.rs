//! Running the built binary, and making its output deterministic for snapshots.

use std::process::Command;

use sqlx::PgPool;

/// What one run of `pgqrs` did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub(crate) fn ok(self) -> String {
        assert_eq!(self.code, 0, "pgqrs failed: {self:?}");
        assert!(self.stderr.is_empty(), "stderr: {}", self.stderr);
        self.stdout
    }

    /// Asserts failure with `code`, a single `error: ` line on stderr and nothing on
    /// stdout; returns the error line.
    #[track_caller]
    pub(crate) fn fails(self, code: i32) -> String {
        assert_eq!(self.code, code, "unexpected exit code: {self:?}");
        assert!(self.stdout.is_empty(), "stdout: {}", self.stdout);
        let line = self.stderr.trim_end_matches('\n');
        assert!(!line.contains('\n'), "more than one line: {line}");
        assert!(line.starts_with("error: "), "not an error line: {line}");
        line.to_owned()
    }
}

/// Runs `pgqrs` with `args` (no DSN unless the args give one).
pub(crate) fn pgqrs(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_pgqrs"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CLICOLOR_FORCE")
        .env("NO_COLOR", "1")
        .output()
        .expect("run pgqrs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

/// The DSN of the test's database.
pub(crate) fn dsn(pool: &PgPool) -> String {
    let db = pool
        .connect_options()
        .get_database()
        .expect("test database")
        .to_owned();
    format!("postgres://postgres@127.0.0.1:5432/{db}")
}

/// Runs `pgqrs --dsn <test db> args..`.
pub(crate) fn on(pool: &PgPool, args: &[&str]) -> Run {
    let dsn = dsn(pool);
    let mut all = vec!["--dsn", dsn.as_str()];
    all.extend_from_slice(args);
    pgqrs(&all)
}

/// Snapshots go to the workspace's `snapshots/`, named without the module.
pub(crate) fn in_snapshots<R>(f: impl FnOnce() -> R) -> R {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(f)
}

/// Human output with every `YYYY-MM-DD HH:MM:SSZ` timestamp replaced by that very
/// placeholder (same width, so columns stay aligned).
pub(crate) fn redact_times(text: &str) -> String {
    const TEMPLATE: &[u8] = b"dddd-dd-dd dd:dd:ddZ";
    const PLACEHOLDER: &str = "YYYY-MM-DD HH:MM:SSZ";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let fits = bytes.len() - i >= TEMPLATE.len()
            && TEMPLATE.iter().zip(&bytes[i..]).all(|(t, b)| match t {
                b'd' => b.is_ascii_digit(),
                t => t == b,
            });
        if fits {
            out.push_str(PLACEHOLDER);
            i += TEMPLATE.len();
        } else {
            let c = text[i..].chars().next().expect("a char");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `--json` output parsed, with timestamps, ages and pids replaced by placeholders.
pub(crate) fn redact_json(text: &str) -> String {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    let volatile = key.ends_with("_at") || key.ends_with("_secs") || key == "pid";
                    if volatile && !v.is_null() {
                        *v = serde_json::Value::String(format!("[{key}]"));
                    } else {
                        walk(v);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_str(text).expect("one JSON document");
    walk(&mut value);
    serde_json::to_string_pretty(&value).expect("json")
}
