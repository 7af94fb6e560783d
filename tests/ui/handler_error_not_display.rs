// A handler's error is recorded as text: it must implement `Display`.
#[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
#[pgqrs(queue = "emails")]
struct SendEmail {
    to: String,
}

struct Opaque;

fn main() {
    let config = pgqrs::Config::from_dsn("postgresql://localhost/db").unwrap();
    let _worker = pgqrs::Worker::builder()
        .config(config)
        .build()
        .handle(|_job: pgqrs::Job<SendEmail>| async { Err::<(), Opaque>(Opaque) });
}
