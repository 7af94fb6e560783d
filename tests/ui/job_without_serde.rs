// `#[derive(Job)]` needs the payload to (de)serialize.
#[derive(pgqrs::Job)]
#[pgqrs(queue = "emails")]
struct SendEmail {
    to: String,
}

fn main() {}
