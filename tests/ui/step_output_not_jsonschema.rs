// A step's output is stored with its JSON schema: it must derive `JsonSchema`.
use pgqrs::workflow::Workflow;

#[derive(serde::Serialize, serde::Deserialize)]
struct Report {
    lines: u32,
}

#[pgqrs::pgqrs_step]
async fn build_report(ctx: &Workflow) -> Result<Report, anyhow::Error> {
    Ok(Report { lines: 1 })
}

fn main() {}
