//! The seed's job-queue example, unchanged but for the DSN (the local Postgres).
//! Run it with `cargo run -p pgqrs --example quickstart`.

use pgqrs::{Admin, Config, Consumer, Producer};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Connect to PostgreSQL
    let config = Config::from_dsn("postgresql://postgres@127.0.0.1:5432/test")?;

    // Set up pgqrs (run once)
    let admin = Admin::new(&config).await?;
    admin.install().await?;
    admin.create_queue("tasks").await?;

    // Producer: enqueue a job
    let producer = Producer::new(&config, "tasks").await?;
    let message = producer
        .enqueue(&json!({"task": "send_email", "to": "user@example.com"}))
        .await?;
    println!("Enqueued message: {}", message.id);

    // Consumer: process jobs
    let consumer = Consumer::new(&config, "tasks").await?;
    if let Some(msg) = consumer.dequeue().await? {
        println!("Processing: {}", msg.payload);

        // Mark as complete
        consumer.archive(msg.id, "completed").await?;
    }

    Ok(())
}
