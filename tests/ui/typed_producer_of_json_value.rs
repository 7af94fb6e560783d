// `serde_json::Value` has no queue of its own: the untyped API names the queue instead.
async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    let _producer = pgqrs::Producer::<serde_json::Value>::typed(&config).await?;
    Ok(())
}

fn main() {}
