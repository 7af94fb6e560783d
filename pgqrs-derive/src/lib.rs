//! Procedural macros of [pgqrs](https://docs.rs/pgqrs). Use them through `pgqrs`
//! (`pgqrs::Job`), not directly.
//!
//! Each macro parses its input, validates it (errors point at the offending tokens and say
//! what to write instead) and expands to trait impls. None of them emits SQL: the library
//! runs all queries.

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

mod durable;
mod job;

/// Binds a payload type to a pgqrs queue: `#[derive(Job)] #[pgqrs(queue = "emails")]`.
///
/// Expands to an `impl pgqrs::JobType` whose `QUEUE` is the validated name, so that
/// `Producer<T>` / `Consumer<T>` accept and yield only `T`.
///
/// ```ignore
/// #[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
/// #[pgqrs(queue = "emails")]
/// struct SendEmail { to: String }
/// ```
#[proc_macro_derive(Job, attributes(pgqrs))]
pub fn derive_job(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    job::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes an `async fn(ctx: &Workflow, ...) -> Result<T, E>` a durable workflow step: its
/// output is recorded once and returned from storage when the run is replayed.
///
/// Attributes: `name = "..."` (default: the function's name), `retries = N` and
/// `backoff = "500ms"` (retry a failing body N times, doubling the backoff).
///
/// ```ignore
/// #[pgqrs_step(retries = 3, backoff = "1s")]
/// async fn fetch_data(ctx: &Workflow, url: &str) -> Result<String, anyhow::Error> { ... }
/// ```
#[proc_macro_attribute]
pub fn pgqrs_step(attr: TokenStream, item: TokenStream) -> TokenStream {
    durable::expand(durable::Kind::Step, attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes an `async fn(ctx: &Workflow, input) -> Result<T, E>` a durable workflow: calling
/// it with a context executes (or resumes) the run, and a type of the same name implements
/// `pgqrs::workflow::WorkflowFn` for workers.
///
/// Attributes: `name = "..."` (default: the function's name) and `version = "..."`.
///
/// ```ignore
/// #[pgqrs_workflow(version = "2")]
/// async fn data_pipeline(ctx: &Workflow, url: &str) -> Result<String, anyhow::Error> { ... }
/// ```
#[proc_macro_attribute]
pub fn pgqrs_workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    durable::expand(durable::Kind::Workflow, attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[cfg(test)]
mod test_support {
    /// insta settings that write to the workspace's `snapshots/`.
    pub(crate) fn snapshot_settings() -> insta::Settings {
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("../../snapshots");
        settings.set_prepend_module_to_snapshot(false);
        settings
    }
}
