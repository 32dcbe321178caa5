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
    errors.expand_or(
        plan,
        |plan| expand::expand(input, &plan),
        |_| expand::fallback(input, &args),
    )
}
