//! One module per command group; each command returns its [`Output`].

mod dlq;
mod job;
mod queue;
mod schema;
mod worker;
mod workflow;

use std::time::Duration;

use pgqrs::{Admin, Config};

use crate::cli::{Cli, Command, Confirm};
use crate::exit::CliError;
use crate::output::Output;

/// Runs the command the command line names.
pub(crate) async fn run(cli: &Cli) -> Result<Output, CliError> {
    match &cli.command {
        Command::Install => schema::migrate(&connect(cli).await?).await,
        Command::Migrate => schema::migrate(&connect(cli).await?).await,
        Command::Verify => schema::verify(&connect(cli).await?).await,
        Command::Uninstall(confirm) => {
            require(
                confirm,
                "uninstall drops the schema `pgqrs` with all its data",
            )?;
            schema::uninstall(&connect(cli).await?).await
        }
        Command::Queue(command) => {
            queue::precheck(command)?;
            queue::run(&connect(cli).await?, command).await
        }
        Command::Dlq(command) => dlq::run(&connect(cli).await?, command).await,
        Command::Job(command) => job::run(&connect(cli).await?, command).await,
        Command::Workflow(command) => workflow::run(&connect(cli).await?, command).await,
        Command::Worker(command) => worker::run(&connect(cli).await?, command).await,
    }
}

/// Connects with a small pool that gives up after `--connect-timeout`.
async fn connect(cli: &Cli) -> Result<Admin, CliError> {
    let dsn = cli.dsn.as_deref().ok_or_else(|| {
        CliError::Usage("no database given: pass --dsn or set DATABASE_URL".into())
    })?;
    let config = Config::from_dsn(dsn)?
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(cli.connect_timeout));
    Ok(Admin::new(&config).await?)
}

/// Refuses a destructive command without `--yes`.
fn require(confirm: &Confirm, what: &str) -> Result<(), CliError> {
    if confirm.yes {
        Ok(())
    } else {
        Err(CliError::Usage(format!("{what}: pass --yes to confirm")))
    }
}
