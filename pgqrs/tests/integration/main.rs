//! Integration tests against the real local Postgres. Every test gets its own database
//! (`#[sqlx::test]`), created from `DATABASE_URL` and dropped afterwards.

// Tests assert by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod bad_input;
mod claim_plan;
mod common;
mod controls;
mod error_messages;
mod exactly_once;
mod fault;
mod fault_workflow;
mod inspect;
mod lease_plan;
mod leases;
mod least_privilege;
mod metrics_plan;
mod migrations;
mod observability;
mod pool;
mod round_trips;
mod schema;
mod takeover;
mod wake_ups;
mod worker;
mod workflow;
