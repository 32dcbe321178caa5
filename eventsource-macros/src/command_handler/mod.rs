//! `#[command_handler]`: parse the arguments, recognise the placement, expand.

mod args;
mod expand;
mod validate;

use proc_macro2::TokenStream;

use crate::errors::Errors;

/// Expands the attribute, or its errors plus the item as written.
pub(crate) fn command_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = args::Args::parse(args, &mut errors);
    let target = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(parsed) => validate::validate(parsed, &args, &mut errors),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    match (target, errors.finish()) {
        (Some(target), Ok(())) => expand::expand(target, &args),
        (_, result) => {
            let mut tokens = result
                .err()
                .map(|e| e.to_compile_error())
                .unwrap_or_default();
            tokens.extend(expand::fallback(item));
            tokens
        }
    }
}
