//! `#[derive(Aggregate)]`: parse `#[aggregate(...)]`, validate, expand.

mod args;
mod expand;
mod validate;

use proc_macro2::TokenStream;
use syn::DeriveInput;

use crate::errors::Errors;

/// Expands the derive, or its errors plus a minimal fallback impl.
pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let args = args::Args::from_attributes(&input.attrs, &mut errors);
    let plan = validate::validate(input, &args, &mut errors);
    match (plan, errors.finish()) {
        (Some(plan), Ok(())) => expand::expand(input, &plan),
        (_, result) => {
            let mut tokens = result
                .err()
                .map(|e| e.to_compile_error())
                .unwrap_or_default();
            tokens.extend(expand::fallback(input, &args));
            tokens
        }
    }
}
