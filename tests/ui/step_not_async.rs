// Steps are async functions.
use pgqrs::workflow::Workflow;

#[pgqrs::pgqrs_step]
fn add_one(ctx: &Workflow, n: i64) -> Result<i64, anyhow::Error> {
    Ok(n + 1)
}

fn main() {}
