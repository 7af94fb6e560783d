// A workflow has one concrete input and output type.
use pgqrs::workflow::Workflow;

#[pgqrs::pgqrs_workflow]
async fn echo<T: serde::Serialize>(ctx: &Workflow, value: T) -> Result<T, anyhow::Error> {
    Ok(value)
}

fn main() {}
