// Untyped JSON cannot sneak into a typed queue.
use pgqrs::{Job, Producer};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Job)]
#[pgqrs(queue = "emails")]
struct SendEmail {
    to: String,
}

async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    let emails = Producer::<SendEmail>::typed(&config).await?;
    emails.enqueue(&serde_json::json!({"to": 5})).await?;
    Ok(())
}

fn main() {}
