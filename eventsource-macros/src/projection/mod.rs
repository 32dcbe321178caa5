//! `#[projection]`: parse the arguments, read the handlers of the impl block, expand.

mod args;
mod expand;
mod validate;

use proc_macro2::TokenStream;

use crate::args::Arguments as _;
use crate::errors::Errors;

/// Expands the attribute, or its errors plus the item as written and a minimal
/// `Projection` impl.
pub(crate) fn projection(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = args::Args::parse(args, &mut errors);
    let parsed = errors.record(syn::parse2::<syn::Item>(item.clone()));
    let plan = parsed
        .as_ref()
        .and_then(|parsed| validate::validate(parsed, &args, &mut errors));
    errors.expand_or(
        plan,
        |plan| expand::expand(&plan, &args),
        |_| expand::fallback(item, parsed.as_ref(), &args),
    )
}
