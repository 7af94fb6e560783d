// `backoff` is a number and a unit.
use pgqrs::workflow::Workflow;

#[pgqrs::pgqrs_step(retries = 3, backoff = "a while")]
async fn flaky(ctx: &Workflow) -> Result<i64, anyhow::Error> {
    Ok(1)
}

fn main() {}
