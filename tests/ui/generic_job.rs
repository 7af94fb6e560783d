// A queue holds one concrete payload type.
#[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
#[pgqrs(queue = "envelopes")]
struct Envelope<T> {
    body: T,
}

fn main() {}
