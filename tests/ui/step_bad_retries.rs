// `retries` is a number.
use pgqrs::workflow::Workflow;

#[pgqrs::pgqrs_step(retries = "three")]
async fn flaky(ctx: &Workflow) -> Result<i64, anyhow::Error> {
    Ok(1)
}

fn main() {}
