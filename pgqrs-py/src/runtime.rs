//! Running pgqrs futures from Python: blocking with the GIL released (and Ctrl-C honoured),
//! or as asyncio futures completed from the shared Tokio runtime.
//!
//! Runtime threads enter Python only through [`with_python`], a gate that `atexit` closes
//! (see `_shutdown`). Without it, a future completing while the interpreter finalizes
//! would take the GIL on a Tokio thread, which CPython answers by ending that thread in
//! the middle of Rust code: a crash at exit (pyo3-async-runtimes issue #40). That is also
//! why asyncio futures are completed here rather than with `future_into_py`.

use std::future::Future;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{IntoPyObject, IntoPyObjectExt};

use crate::errors::to_py;

struct Gate {
    closed: bool,
    inside: usize,
}

static GATE: Mutex<Gate> = Mutex::new(Gate {
    closed: false,
    inside: 0,
});
static LEFT: Condvar = Condvar::new();

/// Runs `f` with the GIL on a thread Python did not start, unless the interpreter is
/// exiting (then `None`, and `f` is dropped without running).
fn with_python<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    {
        let mut gate = GATE.lock().unwrap_or_else(PoisonError::into_inner);
        if gate.closed {
            return None;
        }
        gate.inside += 1;
    }
    let result = Python::attach(f);
    GATE.lock().unwrap_or_else(PoisonError::into_inner).inside -= 1;
    LEFT.notify_all();
    Some(result)
}

/// Registered with `atexit` by the package: no runtime thread enters Python from now on,
/// and those inside leave before the interpreter finalizes.
#[pyfunction]
pub(crate) fn _shutdown(py: Python<'_>) {
    py.detach(|| {
        let mut gate = GATE.lock().unwrap_or_else(PoisonError::into_inner);
        gate.closed = true;
        while gate.inside > 0 {
            let (next, timeout) = LEFT
                .wait_timeout(gate, Duration::from_secs(5))
                .unwrap_or_else(PoisonError::into_inner);
            gate = next;
            if timeout.timed_out() {
                break;
            }
        }
    });
}

/// Runs `future` to completion on the shared runtime with the GIL released. Every 50 ms it
/// checks for a pending signal, so Ctrl-C interrupts a blocking call with
/// `KeyboardInterrupt` (the future is dropped: pgqrs operations are single statements, so
/// nothing is left half-done).
pub(crate) fn block_on<T, F>(py: Python<'_>, future: F) -> PyResult<T>
where
    F: Future<Output = pgqrs::Result<T>> + Send,
    T: Send,
{
    py.detach(|| {
        pyo3_async_runtimes::tokio::get_runtime().block_on(async move {
            tokio::pin!(future);
            loop {
                tokio::select! {
                    result = &mut future => return result.map_err(to_py),
                    () = tokio::time::sleep(Duration::from_millis(50)) => {
                        with_python(|py| py.check_signals()).unwrap_or(Ok(()))?;
                    }
                }
            }
        })
    })
}

/// An asyncio future of the running loop for `future`, which runs on the shared runtime;
/// its value is made a Python object by `convert`. Cancelling the asyncio future drops
/// `future`.
pub(crate) fn spawn_with<'py, R, F, C>(
    py: Python<'py>,
    future: F,
    convert: C,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = pgqrs::Result<R>> + Send + 'static,
    R: Send + 'static,
    C: FnOnce(Python<'_>, R) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let event_loop = pyo3_async_runtimes::get_running_loop(py)?;
    let awaitable = event_loop.call_method0("create_future")?;
    let (event_loop, target) = (event_loop.unbind(), awaitable.clone().unbind());
    let task = pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
        let result = future.await;
        with_python(move |py| {
            let (ok, value) = match result.map_err(to_py).and_then(|value| convert(py, value)) {
                Ok(value) => (true, value),
                Err(err) => (false, err.into_value(py).into_any()),
            };
            // A closed loop has nobody left to tell.
            let _ = complete(py, &event_loop, target, ok, value);
        });
    });
    let on_done = AbortOnCancel {
        task: task.abort_handle(),
    };
    awaitable.call_method1("add_done_callback", (on_done,))?;
    Ok(awaitable)
}

/// [`spawn_with`] for values that convert to Python by themselves.
pub(crate) fn spawn<'py, R, F>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = pgqrs::Result<R>> + Send + 'static,
    R: for<'a> IntoPyObject<'a> + Send + 'static,
{
    spawn_with(py, future, |py, value| value.into_py_any(py))
}

static SET_FUTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn complete(
    py: Python<'_>,
    event_loop: &Py<PyAny>,
    target: Py<PyAny>,
    ok: bool,
    value: Py<PyAny>,
) -> PyResult<()> {
    let setter = SET_FUTURE.get_or_try_init(py, || {
        PyResult::Ok(wrap_pyfunction!(set_future, py)?.into_any().unbind())
    })?;
    event_loop.call_method1(py, "call_soon_threadsafe", (setter, target, ok, value))?;
    Ok(())
}

/// Sets the outcome of an asyncio future unless it was cancelled meanwhile (runs on the
/// loop's thread).
#[pyfunction]
fn set_future(target: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if target.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    let method = if ok { "set_result" } else { "set_exception" };
    target.call_method1(method, (value,))?;
    Ok(())
}

/// Drops the Rust future of a cancelled asyncio future.
#[pyclass]
struct AbortOnCancel {
    task: tokio::task::AbortHandle,
}

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, target: &Bound<'_, PyAny>) -> PyResult<()> {
        if target.call_method0("cancelled")?.is_truthy()? {
            self.task.abort();
        }
        Ok(())
    }
}
