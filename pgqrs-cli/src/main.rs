//! `pgqrs`: the command-line tool over the pgqrs library. Install and verify the schema,
//! inspect and manage queues, dead letters, jobs, workflow runs and workers.
//!
//! Every command prints a human rendering by default and one JSON document with
//! `--json`. Errors print one line, `error: <message>`, to stderr, and the exit code says
//! what kind of error it was (see `pgqrs --help` and [`exit`]).

mod cli;
mod commands;
mod exit;
mod output;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let result = runtime
        .block_on(commands::run(&cli))
        .and_then(|output| output.render(cli.json));
    match result {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`pgqrs queue list | head -1`) is not an error worth reporting.
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
            ExitCode::from(exit::OK)
        }
        Err(err) => {
            let message = exit::scrub(&err.to_string(), cli.dsn.as_deref());
            // One line, whatever the message contains.
            let message = message.replace(['\r', '\n'], " ");
            eprintln!("error: {message}");
            ExitCode::from(err.code())
        }
    }
}
