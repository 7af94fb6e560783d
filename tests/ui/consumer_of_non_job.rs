// A typed consumer needs a type bound to a queue by `#[derive(Job)]`.
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Invoice {
    total: u64,
}

async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    let _invoices = pgqrs::Consumer::<Invoice>::typed(&config).await?;
    Ok(())
}

fn main() {}
