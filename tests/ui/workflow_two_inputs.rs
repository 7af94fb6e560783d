// A workflow takes one input; several values go in a struct.
use pgqrs::workflow::Workflow;

#[pgqrs::pgqrs_workflow]
async fn transfer(ctx: &Workflow, from: String, to: String) -> Result<(), anyhow::Error> {
    Ok(())
}

fn main() {}
