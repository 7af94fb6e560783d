//! The `pgqrs` binary, run against a fresh database per test.

// Tests assert by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod errors;
mod help;
mod jobs;
mod queues;
mod schema;
mod workflows;
