//! The "Durable Workflows" example of the pgqrs overview, exactly as written there. The
//! macros come from `pgqrs_macros`, the name the overview uses: `Cargo.toml` maps it to
//! `pgqrs-derive` with one line,
//! `pgqrs_macros = { package = "pgqrs-derive", version = "0.1" }`.
//! (`pgqrs::{pgqrs_workflow, pgqrs_step}` are the same macros, re-exported.)
//!
//! Run it with the test `seed_workflow` in this crate.

// The overview's code follows, unchanged; `ctx` is unused in its steps.
#![allow(unused_variables)]

use pgqrs::workflow::Workflow;
use pgqrs_macros::{pgqrs_step, pgqrs_workflow};

/// Fetches a page.
#[pgqrs_step]
pub async fn fetch_data(ctx: &Workflow, url: &str) -> Result<String, anyhow::Error> {
    Ok(reqwest::get(url).await?.text().await?)
}

/// Counts its lines.
#[pgqrs_step]
pub async fn process_data(ctx: &Workflow, data: String) -> Result<i32, anyhow::Error> {
    Ok(data.lines().count() as i32)
}

/// Fetches a page and reports how many lines it has.
#[pgqrs_workflow]
pub async fn data_pipeline(ctx: &Workflow, url: &str) -> Result<String, anyhow::Error> {
    let data = fetch_data(ctx, url).await?;
    let count = process_data(ctx, data).await?;
    Ok(format!("Processed {} lines", count))
}
