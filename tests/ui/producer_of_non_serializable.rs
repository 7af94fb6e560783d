// Payloads travel as JSON, so a producer's type must be serde-serializable.
struct Opaque {
    handle: std::fs::File,
}

fn main() {
    let _producer: Option<pgqrs::Producer<Opaque>> = None;
}
