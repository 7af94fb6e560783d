// A worker handler takes `Job<T>` of a type bound to a queue.
#[derive(serde::Serialize, serde::Deserialize)]
struct Invoice {
    total: u64,
}

fn main() {
    let config = pgqrs::Config::from_dsn("postgresql://localhost/db").unwrap();
    let _worker = pgqrs::Worker::builder()
        .config(config)
        .build()
        .handle(|_job: pgqrs::Job<Invoice>| async { Ok::<(), String>(()) });
}
