//! What commands print: a human rendering (aligned tables, key-value lists, sentences) and
//! one JSON document for `--json`.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::exit::CliError;

/// A command's result, in both renderings.
#[derive(Debug)]
pub(crate) struct Output {
    /// For people.
    pub(crate) human: String,
    /// For scripts (`--json`).
    pub(crate) json: serde_json::Value,
}

impl Output {
    /// `human` for people, `value` serialized for scripts.
    pub(crate) fn new(human: String, value: &impl Serialize) -> Result<Self, CliError> {
        let json = serde_json::to_value(value)
            .map_err(|err| CliError::Output(format!("cannot encode the output as JSON: {err}")))?;
        Ok(Output { human, json })
    }

    /// The text to print, ending with a newline.
    pub(crate) fn render(&self, json: bool) -> Result<String, CliError> {
        let mut text = if json {
            serde_json::to_string_pretty(&self.json).map_err(|err| {
                CliError::Output(format!("cannot encode the output as JSON: {err}"))
            })?
        } else {
            self.human.clone()
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }
}

/// Columns aligned on the widest cell, two spaces apart.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub(crate) fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per header).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, or `empty` when it has no rows.
    pub(crate) fn render(&self, empty: &str) -> String {
        if self.rows.is_empty() {
            return format!("{empty}\n");
        }
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let _ = write!(line, "{cell:<width$}");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned.
pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let key = format!("{key}:");
        let _ = writeln!(out, "{key:<width$} {value}");
    }
    out
}

/// A timestamp for people: UTC, to the second.
pub(crate) fn time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An optional timestamp for people, `-` when absent.
pub(crate) fn opt_time(at: Option<&DateTime<Utc>>) -> String {
    at.map(time).unwrap_or_else(|| "-".into())
}

/// An optional value for people, `-` when absent.
pub(crate) fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// A duration for people, in whole seconds.
pub(crate) fn age(duration: Option<Duration>) -> String {
    duration
        .map(|d| format!("{}s", d.as_secs()))
        .unwrap_or_else(|| "-".into())
}

/// Text cut to `max` characters (with an ellipsis) and flattened to one line, for a table
/// cell.
pub(crate) fn cell(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// JSON for people: compact, on one line.
pub(crate) fn json_inline(value: &serde_json::Value) -> String {
    value.to_string()
}
