// A step returns `Result<T, E>`.
use pgqrs::workflow::Workflow;

#[pgqrs::pgqrs_step]
async fn answer(ctx: &Workflow) -> i64 {
    42
}

fn main() {}
