// Payloads are decoded into owned values.
#[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
#[pgqrs(queue = "emails")]
struct SendEmail<'a> {
    to: &'a str,
}

fn main() {}
