// A run's typed state offers only the moves it allows: a succeeded run cannot be cancelled.
use pgqrs::workflow::{RunHandle, RunState};

async fn demo(handle: RunHandle) -> pgqrs::Result<()> {
    if let RunState::Succeeded(done) = handle.state().await? {
        done.cancel().await?;
    }
    Ok(())
}

fn main() {}
