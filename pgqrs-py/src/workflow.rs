//! `PyWorkflow`: a workflow run held by this process, the `ctx` of Python workflow and step
//! functions. The decorators in `pgqrs.decorators` drive it; its underscore methods are
//! their protocol, not an API.

use std::sync::{Arc, Mutex};

use pgqrs::workflow::{Begin, PendingStep, StepCall, Workflow};
use pyo3::prelude::*;
use serde_json::Value;

use crate::errors::{InvalidArgument, to_py};
use crate::json::{from_json, from_json_text, to_json_value};
use crate::queue::seconds_to_duration;
use crate::runtime::{spawn, spawn_with};

/// A workflow run executed by this process: pass it as `ctx` to `@workflow` and `@step`
/// functions. Made by `Admin.create_workflow`, `Admin.next_workflow` or
/// `Admin.resume_workflow`.
#[pyclass(name = "PyWorkflow", module = "pgqrs", frozen)]
pub(crate) struct PyWorkflow {
    inner: Arc<Workflow>,
    input: Value,
}

impl PyWorkflow {
    pub(crate) fn new(inner: Arc<Workflow>, input: Value) -> Self {
        PyWorkflow { inner, input }
    }
}

/// One step call: replayed (with its recorded output) or to run and record.
#[pyclass(name = "StepCall", module = "pgqrs", frozen)]
pub(crate) struct PyStepCall {
    /// The step ran before in this run: `output` is its recorded output.
    #[pyo3(get)]
    replayed: bool,
    /// The recorded output of a replayed step (else `None`).
    #[pyo3(get)]
    output: Py<PyAny>,
    pending: Mutex<Option<PendingStep>>,
}

#[pymethods]
impl PyStepCall {
    /// Counts one more attempt of the step body (it failed and is retried).
    fn _note_attempt(&self) {
        if let Ok(mut pending) = self.pending.lock()
            && let Some(step) = pending.as_mut()
        {
            step.note_attempt();
        }
    }
}

#[pymethods]
impl PyWorkflow {
    /// The run's id.
    #[getter]
    fn run_id(&self) -> i64 {
        self.inner.run_id()
    }

    /// The workflow's name.
    #[getter]
    fn workflow_name(&self) -> &str {
        self.inner.workflow_name()
    }

    /// The run's input.
    #[getter]
    fn input(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        from_json(py, &self.input)
    }

    /// Starts executing the body of workflow `name`: `(False, None)` to run it, or
    /// `(True, output)` when the run succeeded before.
    fn _begin(&self, py: Python<'_>, name: &str, version: &str) -> PyResult<(bool, Py<PyAny>)> {
        // The lease heartbeat is a task on the shared runtime.
        let _runtime = pyo3_async_runtimes::tokio::get_runtime().enter();
        match self.inner.__workflow_begin(name, version).map_err(to_py)? {
            Begin::Run => Ok((false, py.None())),
            Begin::Done(output) => Ok((true, from_json_text(py, &output)?)),
        }
    }

    /// Records the body's result; awaitable, returns the result as a replay would.
    fn _finish_ok<'py>(
        &self,
        py: Python<'py>,
        result: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let result = to_json_value(result)?;
        let inner = Arc::clone(&self.inner);
        let finished = async move {
            inner.__workflow_finish(Ok(&result.to_string())).await?;
            Ok(result)
        };
        spawn_with(py, finished, |py, result| from_json(py, &result))
    }

    /// Records that the body raised `error`; awaitable. Raises `Suspended` or `LeaseLost`
    /// instead when the run was suspended or lost (nothing is recorded then).
    fn _finish_err<'py>(&self, py: Python<'py>, error: String) -> PyResult<Bound<'py, PyAny>> {
        let inner = Arc::clone(&self.inner);
        spawn(
            py,
            async move { inner.__workflow_finish(Err(&error)).await },
        )
    }

    /// The body was cancelled: stop renewing the lease, record nothing.
    fn _abandon(&self) {
        self.inner.__workflow_abandon();
    }

    /// Starts step `name` called with `input` at the next position of the run.
    fn _step_begin(
        &self,
        py: Python<'_>,
        name: &str,
        input: &Bound<'_, PyAny>,
    ) -> PyResult<PyStepCall> {
        let input = to_json_value(input)?;
        Ok(
            match self.inner.__step_begin_json(name, input).map_err(to_py)? {
                StepCall::Replayed(output) => PyStepCall {
                    replayed: true,
                    output: from_json(py, &output)?,
                    pending: Mutex::new(None),
                },
                StepCall::Run(step) => PyStepCall {
                    replayed: false,
                    output: py.None(),
                    pending: Mutex::new(Some(step)),
                },
            },
        )
    }

    /// Records the output of a step that ran; awaitable, returns the output as a replay
    /// would (through JSON).
    fn _step_complete<'py>(
        &self,
        py: Python<'py>,
        call: &PyStepCall,
        output: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let output = to_json_value(output)?;
        let step = call
            .pending
            .lock()
            .ok()
            .and_then(|mut pending| pending.take())
            .ok_or_else(|| {
                InvalidArgument::new_err("this step call was replayed or recorded already")
            })?;
        let inner = Arc::clone(&self.inner);
        let recorded = async move {
            inner.__step_complete_json(step, output.clone()).await?;
            Ok(output)
        };
        spawn_with(py, recorded, |py, output| from_json(py, &output))
    }

    /// A durable sleep of `seconds`: the run is suspended (the awaitable raises
    /// `Suspended`) and resumed by the next claim after that time; once resumed, the same
    /// call returns.
    fn sleep<'py>(&self, py: Python<'py>, seconds: f64) -> PyResult<Bound<'py, PyAny>> {
        let duration = seconds_to_duration(seconds)?;
        let inner = Arc::clone(&self.inner);
        spawn(py, async move { inner.sleep(duration).await })
    }

    /// Receives the next signal `name` (sent with `Admin.send_signal`); without one the run
    /// is suspended (raises `Suspended`) until it arrives.
    fn recv<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let inner = Arc::clone(&self.inner);
        let received = async move { inner.recv::<Value>(&name).await };
        spawn_with(py, received, |py, value| from_json(py, &value))
    }

    fn __repr__(&self) -> String {
        format!(
            "PyWorkflow(run_id={}, workflow={:?})",
            self.inner.run_id(),
            self.inner.workflow_name()
        )
    }
}
