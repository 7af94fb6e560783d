// A typed producer accepts only the type bound to its queue.
use pgqrs::{Job, Producer};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Job)]
#[pgqrs(queue = "emails")]
struct SendEmail {
    to: String,
}

#[derive(Serialize, Deserialize, Job)]
#[pgqrs(queue = "sms")]
struct SendSms {
    number: String,
}

async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    let emails = Producer::<SendEmail>::typed(&config).await?;
    emails.enqueue(&SendSms { number: "555".into() }).await?;
    Ok(())
}

fn main() {}
