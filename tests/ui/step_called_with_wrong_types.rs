// A step keeps its signature: calling it with the wrong input type does not compile.
use pgqrs::workflow::Workflow;

#[pgqrs::pgqrs_step]
async fn add_one(ctx: &Workflow, n: i64) -> Result<i64, anyhow::Error> {
    Ok(n + 1)
}

#[pgqrs::pgqrs_workflow]
async fn count(ctx: &Workflow, start: i64) -> Result<i64, anyhow::Error> {
    add_one(ctx, "ten").await
}

fn main() {}
