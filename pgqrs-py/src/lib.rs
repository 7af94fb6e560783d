//! The `pgqrs` Python package's native module (`pgqrs._pgqrs`): the Rust core behind the
//! Python API. Blocking calls release the GIL and can be interrupted with Ctrl-C; every
//! call also has an `_async` variant that returns an awaitable.

mod admin;
mod errors;
mod json;
mod queue;
mod runtime;
mod workflow;

use pyo3::prelude::*;

#[pymodule]
fn _pgqrs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<queue::PyConfig>()?;
    m.add_class::<queue::PyProducer>()?;
    m.add_class::<queue::PyConsumer>()?;
    m.add_class::<queue::PyMessage>()?;
    m.add_class::<queue::PyEnqueued>()?;
    m.add_class::<admin::PyAdmin>()?;
    m.add_class::<admin::PyQueueInfo>()?;
    m.add_class::<admin::PyQueueStats>()?;
    m.add_class::<admin::PyDeadLetter>()?;
    m.add_class::<workflow::PyWorkflow>()?;
    m.add_class::<workflow::PyStepCall>()?;
    m.add_function(wrap_pyfunction!(queue::bench_rust, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::_shutdown, m)?)?;
    Ok(())
}
