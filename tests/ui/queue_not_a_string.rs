// The queue is a string literal.
#[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
#[pgqrs(queue = emails)]
struct SendEmail {
    to: String,
}

fn main() {}
