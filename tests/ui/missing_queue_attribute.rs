// Every job type names its queue.
#[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
struct SendEmail {
    to: String,
}

fn main() {}
