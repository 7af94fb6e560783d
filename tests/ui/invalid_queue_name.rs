// Queue names are checked at compile time with the same rule as at run time.
#[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
#[pgqrs(queue = "Emails; DROP TABLE users")]
struct SendEmail {
    to: String,
}

fn main() {}
