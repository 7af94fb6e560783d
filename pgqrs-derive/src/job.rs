//! `#[derive(Job)]`: parse the `#[pgqrs(...)]` attribute, validate, expand.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Error, LitStr, Result};

/// What `#[pgqrs(...)]` on a job type says.
struct JobAttrs {
    queue: LitStr,
}

/// Expands the derive, or explains why it cannot.
pub(crate) fn expand(input: &DeriveInput) -> Result<TokenStream> {
    validate_shape(input)?;
    let attrs = parse_attrs(input)?;
    let ident = &input.ident;
    let queue = &attrs.queue;
    Ok(quote! {
        #[automatically_derived]
        impl ::pgqrs::JobType for #ident {
            const QUEUE: &'static str = #queue;
        }
    })
}

fn validate_shape(input: &DeriveInput) -> Result<()> {
    if let Data::Union(data) = &input.data {
        return Err(Error::new(
            data.union_token.span(),
            "`#[derive(Job)]` does not support unions: serde cannot (de)serialize them; \
             use a struct or an enum as the payload",
        ));
    }
    if let Some(lifetime) = input.generics.lifetimes().next() {
        return Err(Error::new(
            lifetime.span(),
            "a job payload cannot borrow: it is stored as JSON and decoded into an owned value; \
             replace borrowed fields such as `&'a str` with owned ones such as `String`",
        ));
    }
    if !input.generics.params.is_empty() {
        return Err(Error::new(
            input.generics.params.span(),
            "a job type cannot be generic: a queue holds one concrete payload type; \
             derive `Job` on a concrete struct, e.g. one that wraps `Inner<T>` for a fixed `T`",
        ));
    }
    Ok(())
}

fn parse_attrs(input: &DeriveInput) -> Result<JobAttrs> {
    let mut queue: Option<LitStr> = None;
    for attr in input
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("pgqrs"))
    {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("queue") {
                if queue.is_some() {
                    return Err(meta.error("duplicate `queue`: a job type belongs to exactly one queue"));
                }
                let value = meta.value()?;
                let lit: syn::Lit = value.parse()?;
                let syn::Lit::Str(name) = lit else {
                    return Err(Error::new(
                        lit.span(),
                        "`queue` takes a string literal: `#[pgqrs(queue = \"emails\")]`",
                    ));
                };
                check_queue_name(&name)?;
                queue = Some(name);
                Ok(())
            } else {
                let key = meta
                    .path
                    .get_ident()
                    .map_or_else(|| "this key".to_owned(), |ident| format!("`{ident}`"));
                Err(meta.error(format!(
                    "unknown pgqrs attribute {key}: the only key is `queue`, as in `#[pgqrs(queue = \"emails\")]`"
                )))
            }
        })?;
    }
    let queue = queue.ok_or_else(|| {
        Error::new(
            input.ident.span(),
            format!(
                "`#[derive(Job)]` needs the queue `{}` belongs to: add `#[pgqrs(queue = \"...\")]` \
                 below the derive",
                input.ident
            ),
        )
    })?;
    Ok(JobAttrs { queue })
}

/// The rule of `pgqrs::QueueName` (1 to 63 of `a-z 0-9 _ -`), checked at compile time.
fn check_queue_name(name: &LitStr) -> Result<()> {
    let value = name.value();
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > 63 {
        Some("it is longer than 63 characters")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Some("only lowercase ASCII letters, digits, '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::new(
            name.span(),
            format!(
                "invalid queue name {value:?}: {reason}; use 1 to 63 characters from a-z, 0-9, '_' and '-'"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::snapshot_settings;

    fn expand_to_string(input: DeriveInput) -> String {
        let tokens = expand(&input).unwrap_or_else(Error::into_compile_error);
        prettyplease::unparse(&syn::parse2(tokens).unwrap())
    }

    #[test]
    fn expands_to_a_job_type_impl_only() {
        let input: DeriveInput = syn::parse_quote! {
            #[derive(Serialize, Deserialize, Job)]
            #[pgqrs(queue = "emails")]
            struct SendEmail { to: String, subject: String }
        };
        snapshot_settings()
            .bind(|| insta::assert_snapshot!("derive_job_expansion", expand_to_string(input)));
    }

    #[test]
    fn errors_point_at_the_attribute() {
        let cases: Vec<DeriveInput> = vec![
            syn::parse_quote! { struct NoAttr; },
            syn::parse_quote! { #[pgqrs(queue = "Bad Name")] struct BadName; },
            syn::parse_quote! { #[pgqrs(queue = 7)] struct NotAString; },
            syn::parse_quote! { #[pgqrs(queu = "x")] struct Typo; },
            syn::parse_quote! { #[pgqrs(queue = "a", queue = "b")] struct Twice; },
            syn::parse_quote! { #[pgqrs(queue = "x")] struct Borrowed<'a> { s: &'a str } },
            syn::parse_quote! { #[pgqrs(queue = "x")] struct Generic<T> { t: T } },
            syn::parse_quote! { #[pgqrs(queue = "x")] union U { a: u32 } },
        ];
        let messages: Vec<String> = cases
            .iter()
            .map(|input| match expand(input) {
                Ok(_) => "expanded".to_owned(),
                Err(err) => format!("{}: {}", input.ident, err),
            })
            .collect();
        snapshot_settings()
            .bind(|| insta::assert_snapshot!("derive_job_errors", messages.join("\n")));
    }
}
