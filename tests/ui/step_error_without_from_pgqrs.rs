// A step's error type must be able to carry pgqrs's own errors (a lost lease, ...).
use pgqrs::workflow::Workflow;

#[derive(Debug)]
struct MyError;

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

#[pgqrs::pgqrs_step]
async fn fallible(ctx: &Workflow) -> Result<i64, MyError> {
    Err(MyError)
}

fn main() {}
