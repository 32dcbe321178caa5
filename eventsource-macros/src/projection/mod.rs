//! `#[projection]`: parse the arguments, read the handlers of the impl block, expand.

mod args;
mod expand;
mod validate;

use proc_macro2::TokenStream;

use crate::errors::Errors;

/// Expands the attribute, or its errors plus the item as written and a minimal
/// `Projection` impl.
pub(crate) fn projection(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = args::Args::parse(args, &mut errors);
    let parsed = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(parsed) => Some(parsed),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let plan = parsed
        .as_ref()
        .and_then(|parsed| validate::validate(parsed, &args, &mut errors));
    match (plan, errors.finish()) {
        (Some(plan), Ok(())) => expand::expand(&plan, &args),
        (_, result) => {
            let mut tokens = result
                .err()
                .map(|e| e.to_compile_error())
                .unwrap_or_default();
            tokens.extend(expand::fallback(item, parsed.as_ref(), &args));
            tokens
        }
    }
}
