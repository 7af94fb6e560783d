// Queue names are at most 63 characters.
#[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
#[pgqrs(queue = "a-very-long-queue-name-that-goes-on-and-on-well-past-what-postgres-allows")]
struct SendEmail {
    to: String,
}

fn main() {}
