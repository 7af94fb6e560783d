// A workflow version is a string.
use pgqrs::workflow::Workflow;

#[pgqrs::pgqrs_workflow(version = 2)]
async fn report(ctx: &Workflow) -> Result<(), anyhow::Error> {
    Ok(())
}

fn main() {}
