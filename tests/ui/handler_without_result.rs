// A handler reports success or failure: it returns `Result<(), E>`.
#[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
#[pgqrs(queue = "emails")]
struct SendEmail {
    to: String,
}

fn main() {
    let config = pgqrs::Config::from_dsn("postgresql://localhost/db").unwrap();
    let _worker = pgqrs::Worker::builder()
        .config(config)
        .build()
        .handle(|_job: pgqrs::Job<SendEmail>| async {});
}
