//! Procedural macros of [pgqrs](https://docs.rs/pgqrs). Use them through `pgqrs`
//! (`pgqrs::Job`), not directly.
//!
//! Each macro parses its input, validates it (errors point at the offending tokens and say
//! what to write instead) and expands to trait impls. None of them emits SQL: the library
//! runs all queries.

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

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
