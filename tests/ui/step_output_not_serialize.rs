// A step's output is stored as JSON: it must be serde-serializable.
use pgqrs::workflow::Workflow;

struct Handle {
    file: std::fs::File,
}

#[pgqrs::pgqrs_step]
async fn open(ctx: &Workflow) -> Result<Handle, anyhow::Error> {
    Ok(Handle { file: std::fs::File::open("/dev/null")? })
}

fn main() {}
