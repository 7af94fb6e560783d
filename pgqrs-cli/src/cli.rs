//! The command line, as clap types.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The exit codes, shown at the end of `pgqrs --help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error (a refused action, a database error, ...)
  2  usage error: bad arguments, a malformed DSN, a missing --yes
  3  the pgqrs schema is not installed, at another version than this build expects,
     or changed outside its migrations
  4  not found: no such queue, job or workflow run
  5  cannot connect to the database (refused, timed out, authentication failed)

The DSN comes from --dsn or DATABASE_URL. Passwords are never printed.";

/// Operate pgqrs: install its schema, manage queues, dead letters, jobs, workflow runs
/// and workers.
#[derive(Debug, Parser)]
#[command(name = "pgqrs", version, after_help = EXIT_CODES, term_width = 0)]
pub(crate) struct Cli {
    /// PostgreSQL URL of the database (postgres://user:password@host:port/database).
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub(crate) dsn: Option<String>,

    /// Print one JSON document instead of a table (for scripts).
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Seconds to wait for a database connection before giving up (exit code 5).
    #[arg(long, global = true, default_value_t = 10, value_name = "SECS")]
    pub(crate) connect_timeout: u64,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Install the pgqrs schema (idempotent: on an installed database it migrates).
    Install,
    /// Apply the pending schema migrations and print the version before and after.
    Migrate,
    /// Check that the schema is installed at the version this build expects (exit code 3 if not).
    Verify,
    /// Drop the pgqrs schema with every queue, job, archive and workflow run in it.
    Uninstall(Confirm),
    /// Manage queues.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Inspect and redrive dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Show, retry or cancel a single job.
    #[command(subcommand)]
    Job(JobCommand),
    /// Inspect, cancel and retry workflow runs.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Inspect the registered workers.
    #[command(subcommand)]
    Worker(WorkerCommand),
}

/// The confirmation destructive commands require.
#[derive(Debug, Args)]
pub(crate) struct Confirm {
    /// Confirm the destructive action (required).
    #[arg(long)]
    pub(crate) yes: bool,
}

/// A queue named on the command line.
#[derive(Debug, Args)]
pub(crate) struct QueueArg {
    /// The queue's name.
    pub(crate) name: String,
}

/// `pgqrs queue ...`
#[derive(Debug, Subcommand)]
pub(crate) enum QueueCommand {
    /// Create a queue (idempotent: an existing queue is returned unchanged).
    Create {
        /// The queue's name: 1 to 63 characters from a-z, 0-9, '_' and '-'.
        name: String,
        /// Deliveries a job gets before it moves to the dead letters.
        #[arg(long, value_name = "N", default_value_t = pgqrs::DEFAULT_MAX_ATTEMPTS)]
        max_attempts: i32,
    },
    /// List the queues.
    List,
    /// Show ready, leased, delayed and dead counts of one queue, or of every queue
    /// (`--json`: an object for one queue, an array for all).
    Stats {
        /// The queue (default: every queue).
        name: Option<String>,
    },
    /// Stop consumers and workers from claiming jobs of a queue.
    Pause(QueueArg),
    /// Let consumers and workers claim jobs of a paused queue again.
    Resume(QueueArg),
    /// Delete every waiting and leased job of a queue (archive and dead letters stay).
    Purge {
        /// The queue's name.
        name: String,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Delete a queue with its jobs, archive and dead letters.
    Delete {
        /// The queue's name.
        name: String,
        #[command(flatten)]
        confirm: Confirm,
    },
}

/// `pgqrs dlq ...`
#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List a queue's dead letters, by job id.
    List {
        /// The queue's name.
        queue: String,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Move dead letters back into their queue (same ids, attempts reset).
    #[command(group = clap::ArgGroup::new("which").required(true).args(["ids", "all"]))]
    Redrive {
        /// The queue's name.
        queue: String,
        /// The job ids to redrive.
        ids: Vec<i64>,
        /// Redrive all of the queue's dead letters.
        #[arg(long)]
        all: bool,
    },
}

/// A job named on the command line.
#[derive(Debug, Args)]
pub(crate) struct JobArg {
    /// The job's id.
    pub(crate) id: i64,
}

/// `pgqrs job ...`
#[derive(Debug, Subcommand)]
pub(crate) enum JobCommand {
    /// Show a job, wherever it is: in its queue, the archive or the dead letters.
    Show(JobArg),
    /// Make a job runnable now: a delayed job is due at once, an archived or dead one goes
    /// back into its queue.
    Retry(JobArg),
    /// Cancel a waiting job: it is archived with the outcome `cancelled`.
    Cancel(JobArg),
}

/// A run status, as the command line spells it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StatusArg {
    /// Created, waiting for an executor.
    Pending,
    /// An executor holds it.
    Running,
    /// In a durable sleep.
    Sleeping,
    /// Waiting for a signal.
    Waiting,
    /// Done, with an output.
    Succeeded,
    /// Done, with an error.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl From<StatusArg> for pgqrs::workflow::RunStatus {
    fn from(status: StatusArg) -> Self {
        use pgqrs::workflow::RunStatus;
        match status {
            StatusArg::Pending => RunStatus::Pending,
            StatusArg::Running => RunStatus::Running,
            StatusArg::Sleeping => RunStatus::Sleeping,
            StatusArg::Waiting => RunStatus::Waiting,
            StatusArg::Succeeded => RunStatus::Succeeded,
            StatusArg::Failed => RunStatus::Failed,
            StatusArg::Cancelled => RunStatus::Cancelled,
        }
    }
}

/// A run named on the command line.
#[derive(Debug, Args)]
pub(crate) struct RunArg {
    /// The run's id.
    pub(crate) id: i64,
}

/// `pgqrs workflow ...`
#[derive(Debug, Subcommand)]
pub(crate) enum WorkflowCommand {
    /// List workflow runs, the most recent first.
    List {
        /// Only runs with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only runs of this workflow.
        #[arg(long, value_name = "NAME")]
        workflow: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show a run with its recorded steps.
    Show(RunArg),
    /// Cancel an active run (pending, running, sleeping or waiting).
    Cancel(RunArg),
    /// Make a failed or cancelled run pending again: it resumes after its last recorded step.
    Retry(RunArg),
}

/// `pgqrs worker ...`
#[derive(Debug, Subcommand)]
pub(crate) enum WorkerCommand {
    /// List the registered workers, the most recently started first.
    List,
}
