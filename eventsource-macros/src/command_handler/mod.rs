//! `#[command_handler]`: parse the arguments, recognise the placement, expand.

mod args;
mod expand;
mod validate;

use proc_macro2::TokenStream;

use crate::args::Arguments as _;
use crate::errors::Errors;

/// Expands the attribute, or its errors plus the item as written.
pub(crate) fn command_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = args::Args::parse(args, &mut errors);
    let target = errors
        .record(syn::parse2::<syn::Item>(item.clone()))
        .and_then(|parsed| validate::validate(parsed, &args, &mut errors));
    // A well-formed item whose only errors are in the arguments' expressions still expands
    // (with placeholders), so the command keeps its impls and no error cascades.
    let well_formed = errors.is_empty();
    if let Some(target) = &target {
        validate::check_arguments(target, &args, &mut errors);
    }
    errors.expand_or(
        target,
        |target| expand::expand(target, &args),
        |target| expand::fallback(item, target.filter(|_| well_formed), &args),
    )
}
