//! `#[pgqrs_workflow]` and `#[pgqrs_step]`: parse the function, validate its shape and
//! attributes, expand to a wrapper that calls the library's replay-or-record logic.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Error, FnArg, Ident, ItemFn, LitInt, LitStr, Meta, Pat, Result, ReturnType, Token, Type,
    TypeReference,
};

/// Which macro is expanding.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Workflow,
    Step,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Workflow => "workflow",
            Kind::Step => "step",
        }
    }
}

/// A validated workflow or step function.
struct DurableFn {
    item: ItemFn,
    ctx: Ident,
    params: Vec<(Ident, Type)>,
    /// The declared return type: `Result<T, E>` or an alias of it.
    ret: Type,
}

impl DurableFn {
    /// `T` of the return type, whatever alias spells it.
    fn output(&self) -> TokenStream {
        let ret = &self.ret;
        quote_spanned! {ret.span()=> <#ret as ::pgqrs::workflow::StepResult>::Output }
    }

    /// `E` of the return type.
    fn error(&self) -> TokenStream {
        let ret = &self.ret;
        quote_spanned! {ret.span()=> <#ret as ::pgqrs::workflow::StepResult>::Error }
    }
}

/// The attribute's settings.
#[derive(Default)]
struct Attrs {
    name: Option<LitStr>,
    version: Option<LitStr>,
    retries: Option<LitInt>,
    backoff_ms: Option<u64>,
}

pub(crate) fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> Result<TokenStream> {
    let attrs = parse_attrs(kind, attr)?;
    let item: ItemFn = syn::parse2(item)?;
    let function = validate(kind, item)?;
    Ok(match kind {
        Kind::Workflow => expand_workflow(&function, &attrs)?,
        Kind::Step => expand_step(&function, &attrs)?,
    })
}

fn parse_attrs(kind: Kind, attr: TokenStream) -> Result<Attrs> {
    let mut attrs = Attrs::default();
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in metas {
        let Meta::NameValue(pair) = &meta else {
            return Err(Error::new(meta.span(), usage(kind)));
        };
        let key = pair
            .path
            .get_ident()
            .map(Ident::to_string)
            .unwrap_or_default();
        let value = &pair.value;
        match (kind, key.as_str()) {
            (_, "name") => attrs.name = Some(lit_str(value, "name")?),
            (Kind::Workflow, "version") => attrs.version = Some(lit_str(value, "version")?),
            (Kind::Step, "retries") => {
                let retries: LitInt = syn::parse2(value.to_token_stream()).map_err(|_| {
                    Error::new(
                        value.span(),
                        "`retries` takes a whole number, as in `retries = 3`",
                    )
                })?;
                retries.base10_parse::<u32>().map_err(|_| {
                    Error::new(
                        retries.span(),
                        "`retries` must be a whole number from 0 to 4294967295",
                    )
                })?;
                attrs.retries = Some(retries);
            }
            (Kind::Step, "backoff") => {
                let text = lit_str(value, "backoff")?;
                attrs.backoff_ms = Some(parse_duration_ms(&text)?);
            }
            _ => {
                return Err(Error::new(
                    pair.path.span(),
                    format!("unknown key `{key}`: {}", usage(kind)),
                ));
            }
        }
    }
    Ok(attrs)
}

fn usage(kind: Kind) -> &'static str {
    match kind {
        Kind::Workflow => {
            "`#[pgqrs_workflow]` takes `name = \"...\"` and `version = \"...\"`, as in `#[pgqrs_workflow(version = \"2\")]`"
        }
        Kind::Step => {
            "`#[pgqrs_step]` takes `name = \"...\"`, `retries = N` and `backoff = \"1s\"`, as in `#[pgqrs_step(retries = 3, backoff = \"500ms\")]`"
        }
    }
}

fn lit_str(value: &syn::Expr, key: &str) -> Result<LitStr> {
    syn::parse2(value.to_token_stream()).map_err(|_| {
        Error::new(
            value.span(),
            format!("`{key}` takes a string literal, as in `{key} = \"...\"`"),
        )
    })
}

/// `"250ms"`, `"1s"`, `"2m"`, `"1h"` in milliseconds.
fn parse_duration_ms(text: &LitStr) -> Result<u64> {
    let value = text.value();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let scale = match unit.trim() {
        "ms" => Some(1),
        "s" => Some(1_000),
        "m" => Some(60_000),
        "h" => Some(3_600_000),
        _ => None,
    };
    match (digits.parse::<u64>(), scale) {
        (Ok(n), Some(scale)) => Ok(n.saturating_mul(scale)),
        _ => Err(Error::new(
            text.span(),
            format!(
                "invalid backoff {value:?}: write a whole number and a unit (ms, s, m, h), as in \"500ms\" or \"2s\""
            ),
        )),
    }
}

fn validate(kind: Kind, item: ItemFn) -> Result<DurableFn> {
    let noun = kind.noun();
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        return Err(Error::new(
            sig.fn_token.span(),
            format!(
                "a {noun} must be an `async fn`: write `async fn {}(ctx: &Workflow, ...)`",
                sig.ident
            ),
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new(
            sig.generics.params.span(),
            format!(
                "a {noun} cannot be generic: its inputs and output are stored as JSON of one fixed type"
            ),
        ));
    }
    let mut inputs = sig.inputs.iter();
    let ctx = match inputs.next() {
        Some(FnArg::Typed(first)) if is_workflow_ref(&first.ty) => ident_of(&first.pat, noun)?,
        Some(FnArg::Receiver(receiver)) => {
            return Err(Error::new(
                receiver.span(),
                format!("a {noun} is a free function, not a method"),
            ));
        }
        other => {
            let span = other.map_or(sig.ident.span(), Spanned::span);
            return Err(Error::new(
                span,
                format!(
                    "the first parameter of a {noun} is the workflow context: `ctx: &Workflow`"
                ),
            ));
        }
    };
    let mut params = Vec::new();
    for input in inputs {
        let FnArg::Typed(typed) = input else {
            return Err(Error::new(
                input.span(),
                format!("a {noun} is a free function, not a method"),
            ));
        };
        params.push((ident_of(&typed.pat, noun)?, (*typed.ty).clone()));
    }
    if kind == Kind::Workflow && params.len() > 1 {
        return Err(Error::new(
            params[1].0.span(),
            "a workflow takes one input after the context: put several values in a struct",
        ));
    }
    let ReturnType::Type(_, ret) = &sig.output else {
        return Err(Error::new(
            sig.ident.span(),
            format!("a {noun} returns `Result<T, E>`: its output and its error"),
        ));
    };
    let ret = (**ret).clone();
    Ok(DurableFn {
        ctx,
        params,
        ret,
        item,
    })
}

/// `&Workflow` or `&path::to::Workflow`.
fn is_workflow_ref(ty: &Type) -> bool {
    let Type::Reference(TypeReference {
        elem,
        mutability: None,
        ..
    }) = ty
    else {
        return false;
    };
    matches!(&**elem, Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Workflow"))
}

fn ident_of(pat: &Pat, noun: &str) -> Result<Ident> {
    match pat {
        Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
            Ok(ident.ident.clone())
        }
        other => Err(Error::new(
            other.span(),
            format!("{noun} parameters must be plain names (`name: Type`), not patterns"),
        )),
    }
}

/// Compile-time checks of the output and error types, reported at their spans.
fn type_checks(function: &DurableFn) -> TokenStream {
    let ret = &function.ret;
    quote_spanned! {ret.span()=>
        let _ = ::pgqrs::workflow::__assert_result::<#ret>;
    }
}

fn expand_step(function: &DurableFn, attrs: &Attrs) -> Result<TokenStream> {
    let DurableFn {
        item, ctx, params, ..
    } = function;
    let (output, error) = (function.output(), function.error());
    let name = match &attrs.name {
        Some(name) if name.value().is_empty() || name.value().starts_with("pgqrs::") => {
            return Err(Error::new(
                name.span(),
                "a step name is not empty and does not start with `pgqrs::`",
            ));
        }
        Some(name) => name.value(),
        None => item.sig.ident.to_string(),
    };
    let retries = attrs
        .retries
        .as_ref()
        .map_or_else(|| quote!(0u32), |n| quote!(#n));
    let backoff_ms = attrs.backoff_ms.unwrap_or(1_000);
    let body = &item.block;
    let names = params.iter().map(|(ident, _)| ident);
    let checks = type_checks(function);
    let convert = quote! { <#error as ::core::convert::From<::pgqrs::Error>>::from };
    let run_body = if attrs.retries.is_some() {
        quote! {
            let __pgqrs_outcome: ::core::result::Result<#output, #error> = loop {
                match ::pgqrs::workflow::__typed::<#output, #error, _>(async #body).await {
                    ::core::result::Result::Ok(__value) => break ::core::result::Result::Ok(__value),
                    ::core::result::Result::Err(__err) => {
                        if !__pgqrs_call.retry(&__PGQRS_STEP).await {
                            break ::core::result::Result::Err(__err);
                        }
                    }
                }
            };
        }
    } else {
        quote! {
            let __pgqrs_outcome = ::pgqrs::workflow::__typed::<#output, #error, _>(async #body).await;
        }
    };
    let attrs_out = &item.attrs;
    let vis = &item.vis;
    let sig = &item.sig;
    Ok(quote! {
        #(#attrs_out)*
        #vis #sig {
            #checks
            const __PGQRS_STEP: ::pgqrs::workflow::StepMeta = ::pgqrs::workflow::StepMeta {
                name: #name,
                retries: #retries,
                backoff: ::core::time::Duration::from_millis(#backoff_ms),
            };
            #[allow(unused_mut)]
            let mut __pgqrs_call = match #ctx.__step_begin::<#output, _>(&__PGQRS_STEP, &(#(&#names,)*)) {
                ::core::result::Result::Ok(::pgqrs::workflow::StepCall::Replayed(__value)) => {
                    return ::core::result::Result::Ok(__value);
                }
                ::core::result::Result::Ok(::pgqrs::workflow::StepCall::Run(__call)) => __call,
                ::core::result::Result::Err(__err) => return ::core::result::Result::Err(#convert(__err)),
            };
            #run_body
            match __pgqrs_outcome {
                ::core::result::Result::Ok(__value) => {
                    #ctx.__step_complete(__pgqrs_call, __value).await.map_err(#convert)
                }
                ::core::result::Result::Err(__err) => ::core::result::Result::Err(__err),
            }
        }
    })
}

fn expand_workflow(function: &DurableFn, attrs: &Attrs) -> Result<TokenStream> {
    let DurableFn {
        item, ctx, params, ..
    } = function;
    let (output, error) = (function.output(), function.error());
    let ident = &item.sig.ident;
    let name = match &attrs.name {
        Some(name) => {
            check_workflow_name(&name.value(), name.span())?;
            name.value()
        }
        None => {
            check_workflow_name(&ident.to_string(), ident.span())?;
            ident.to_string()
        }
    };
    let version = attrs
        .version
        .as_ref()
        .map(LitStr::value)
        .unwrap_or_default();
    let body = &item.block;
    let checks = type_checks(function);
    let (input_ty, call) = match params.first() {
        None => (quote!(()), quote!(#ident(ctx))),
        Some((_, ty)) => {
            let (owned, borrowed) = owned_type(ty)?;
            let arg = if borrowed {
                quote!(&__input)
            } else {
                quote!(__input)
            };
            (owned, quote!(#ident(ctx, #arg)))
        }
    };
    let attrs_out = &item.attrs;
    let vis = &item.vis;
    let sig = &item.sig;
    let type_doc = format!(
        "The workflow `{name}` as a type: register it with `Worker::workflow::<{ident}>()`, create runs with `<{ident} as WorkflowFn>::enqueue`."
    );
    let marker = format_ident!("{}", ident);
    Ok(quote! {
        #(#attrs_out)*
        #vis #sig {
            #checks
            #ctx.__run_workflow::<#output, #error, _>(
                #name,
                #version,
                ::pgqrs::workflow::__typed::<#output, #error, _>(async move #body),
            )
            .await
        }

        #[doc = #type_doc]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #marker {}

        impl ::pgqrs::workflow::WorkflowFn for #marker {
            const NAME: &'static str = #name;
            const VERSION: &'static str = #version;
            type Input = #input_ty;

            fn __execute(ctx: &::pgqrs::workflow::Workflow) -> ::pgqrs::__private::BoxFuture<'_, ()> {
                ::std::boxed::Box::pin(async move {
                    #[allow(unused_variables)]
                    let __input: #input_ty = match ctx.__input::<#input_ty>() {
                        ::core::result::Result::Ok(__input) => __input,
                        ::core::result::Result::Err(__err) => return ctx.__fail_input(__err).await,
                    };
                    let _ = #call.await;
                })
            }
        }
    })
}

/// The owned type a stored input decodes into, and whether the function borrows it.
fn owned_type(ty: &Type) -> Result<(TokenStream, bool)> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_some() => Err(Error::new(
            ty.span(),
            "a workflow input cannot be `&mut`: it is decoded from the stored input",
        )),
        Type::Reference(reference) => Ok((
            match &*reference.elem {
                Type::Path(path) if path.path.is_ident("str") => quote!(::std::string::String),
                Type::Slice(slice) => {
                    let elem = &slice.elem;
                    quote!(::std::vec::Vec<#elem>)
                }
                elem => quote!(#elem),
            },
            true,
        )),
        other => Ok((quote!(#other), false)),
    }
}

fn check_workflow_name(name: &str, span: Span) -> Result<()> {
    let valid = (1..=60).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::new(
            span,
            format!(
                "invalid workflow name {name:?}: use 1 to 60 characters from a-z, 0-9, '_' and '-' (set one with `#[pgqrs_workflow(name = \"...\")]`)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::snapshot_settings;

    fn expanded(kind: Kind, attr: TokenStream, item: TokenStream) -> String {
        match expand(kind, attr, item) {
            Ok(tokens) => prettyplease::unparse(&syn::parse2(tokens).unwrap()),
            Err(err) => format!("error: {err}"),
        }
    }

    #[test]
    fn step_and_workflow_expansions() {
        let step = expanded(
            Kind::Step,
            quote!(retries = 3, backoff = "250ms"),
            quote! {
                async fn fetch_data(ctx: &Workflow, url: &str) -> Result<String, anyhow::Error> {
                    Ok(reqwest::get(url).await?.text().await?)
                }
            },
        );
        let workflow = expanded(
            Kind::Workflow,
            quote!(version = "2"),
            quote! {
                async fn data_pipeline(ctx: &Workflow, url: &str) -> Result<String, anyhow::Error> {
                    let data = fetch_data(ctx, url).await?;
                    Ok(data)
                }
            },
        );
        snapshot_settings().bind(|| {
            insta::assert_snapshot!("durable_step_expansion", step);
            insta::assert_snapshot!("durable_workflow_expansion", workflow);
        });
    }

    #[test]
    fn errors_say_what_to_write() {
        let cases = [
            (
                Kind::Step,
                quote!(),
                quote!(
                    fn sync_step(ctx: &Workflow) -> Result<i32, E> {
                        Ok(1)
                    }
                ),
            ),
            (
                Kind::Step,
                quote!(),
                quote!(
                    async fn no_ctx(x: i32) -> Result<i32, E> {
                        Ok(x)
                    }
                ),
            ),
            (
                Kind::Step,
                quote!(),
                quote!(
                    async fn no_result(ctx: &Workflow) -> i32 {
                        1
                    }
                ),
            ),
            (
                Kind::Step,
                quote!(retries = "x"),
                quote!(
                    async fn s(ctx: &Workflow) -> Result<i32, E> {
                        Ok(1)
                    }
                ),
            ),
            (
                Kind::Step,
                quote!(backoff = "1 fortnight"),
                quote!(
                    async fn s(ctx: &Workflow) -> Result<i32, E> {
                        Ok(1)
                    }
                ),
            ),
            (
                Kind::Step,
                quote!(retry = 3),
                quote!(
                    async fn s(ctx: &Workflow) -> Result<i32, E> {
                        Ok(1)
                    }
                ),
            ),
            (
                Kind::Step,
                quote!(),
                quote!(
                    async fn generic<T>(ctx: &Workflow, t: T) -> Result<T, E> {
                        Ok(t)
                    }
                ),
            ),
            (
                Kind::Workflow,
                quote!(),
                quote!(
                    async fn two(ctx: &Workflow, a: i32, b: i32) -> Result<i32, E> {
                        Ok(a)
                    }
                ),
            ),
            (
                Kind::Workflow,
                quote!(name = "Bad Name"),
                quote!(
                    async fn w(ctx: &Workflow) -> Result<i32, E> {
                        Ok(1)
                    }
                ),
            ),
            (
                Kind::Workflow,
                quote!(retries = 3),
                quote!(
                    async fn w(ctx: &Workflow) -> Result<i32, E> {
                        Ok(1)
                    }
                ),
            ),
        ];
        let messages: Vec<String> = cases
            .into_iter()
            .map(|(kind, attr, item)| expanded(kind, attr, item))
            .collect();
        snapshot_settings().bind(|| insta::assert_snapshot!("durable_errors", messages.join("\n")));
    }
}
