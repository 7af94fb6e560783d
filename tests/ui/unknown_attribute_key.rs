// A typo in the attribute is an error, not silently ignored.
#[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
#[pgqrs(queu = "emails")]
struct SendEmail {
    to: String,
}

fn main() {}
