// Unions cannot be payloads.
#[derive(pgqrs::Job)]
#[pgqrs(queue = "raw")]
union Raw {
    int: u32,
    float: f32,
}

fn main() {}
