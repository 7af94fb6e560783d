// A step's first parameter is the workflow context.
#[pgqrs::pgqrs_step]
async fn add_one(n: i64) -> Result<i64, anyhow::Error> {
    Ok(n + 1)
}

fn main() {}
