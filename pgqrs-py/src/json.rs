//! Values cross the boundary as JSON, through Python's own `json` module (its functions
//! are looked up once). Batches cross in one `dumps` or `loads` call.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyString};
use serde_json::Value;

use crate::errors::InvalidArgument;

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn dumps<'py>(value: &Bound<'py, PyAny>) -> PyResult<String> {
    let py = value.py();
    let text = DUMPS
        .import(py, "json", "dumps")?
        .call1((value,))
        .map_err(|err| {
            InvalidArgument::new_err(format!("the value is not JSON-serializable: {err}"))
        })?;
    text.extract()
}

fn loads(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    Ok(LOADS.import(py, "json", "loads")?.call1((text,))?.unbind())
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> PyResult<T> {
    serde_json::from_str(text)
        .map_err(|err| InvalidArgument::new_err(format!("the payload is not valid JSON: {err}")))
}

/// A queue payload: a `str` is taken as JSON text already (as in
/// `producer.enqueue(json.dumps(...))`) and checked; anything else goes through
/// `json.dumps`.
pub(crate) fn to_json(value: &Bound<'_, PyAny>) -> PyResult<Value> {
    match value.cast::<PyString>() {
        Ok(text) => parse(&text.to_cow()?),
        Err(_) => to_json_value(value),
    }
}

/// Queue payloads as [`to_json`] takes them; without JSON text among them, in one
/// `json.dumps` call.
pub(crate) fn to_json_many(values: &Bound<'_, PyAny>) -> PyResult<Vec<Value>> {
    let list = PyList::new(
        values.py(),
        values.try_iter()?.collect::<PyResult<Vec<_>>>()?,
    )?;
    if list.iter().any(|value| value.is_instance_of::<PyString>()) {
        return list.iter().map(|value| to_json(&value)).collect();
    }
    parse(&dumps(list.as_any())?)
}

/// Any value `json.dumps` takes (a `str` is a JSON string): workflow inputs, step inputs
/// and outputs.
pub(crate) fn to_json_value(value: &Bound<'_, PyAny>) -> PyResult<Value> {
    parse(&dumps(value)?)
}

/// A JSON value as a Python object (through `json.loads`).
pub(crate) fn from_json(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    loads(py, &value.to_string())
}

/// JSON text as a Python object (through `json.loads`).
pub(crate) fn from_json_text(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    loads(py, text)
}

/// JSON values as Python objects, in one `json.loads` call.
pub(crate) fn from_json_many<'a>(
    py: Python<'_>,
    values: impl Iterator<Item = &'a Value>,
) -> PyResult<Vec<Py<PyAny>>> {
    let mut text = String::from("[");
    for (i, value) in values.enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&value.to_string());
    }
    text.push(']');
    loads(py, &text)?.bind(py).extract()
}
