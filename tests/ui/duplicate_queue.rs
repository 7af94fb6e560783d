// A job type belongs to exactly one queue.
#[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
#[pgqrs(queue = "emails")]
#[pgqrs(queue = "newsletters")]
struct SendEmail {
    to: String,
}

fn main() {}
