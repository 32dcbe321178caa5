//! `#[traced(...)]`: parse the arguments, validate them against the function, expand.

mod args;
mod expand;
mod validate;

use proc_macro2::TokenStream;
use syn::{Item, ItemFn, TraitItemFn};

use crate::args::Arguments as _;
use crate::errors::Errors;

/// Expands the attribute, or its errors plus the function unchanged (so the user sees those
/// errors and no cascade).
pub(crate) fn traced(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = args::Args::parse(args, &mut errors);
    let function = function(item.clone(), &mut errors);
    let plan = function
        .as_ref()
        .map(|function| validate::validate(function, &args, &mut errors));
    errors.expand_or(
        function.as_ref().zip(plan),
        |(function, plan)| expand::expand(function, &plan),
        |_| item,
    )
}

/// The function the attribute is on, or an error saying where it goes instead.
fn function(item: TokenStream, errors: &mut Errors) -> Option<ItemFn> {
    let parsed = errors.record(syn::parse2::<Item>(item))?;
    match &parsed {
        Item::Fn(function) => return Some(function.clone()),
        Item::Verbatim(tokens) => {
            if let Ok(declaration) = syn::parse2::<TraitItemFn>(tokens.clone())
                && declaration.default.is_none()
            {
                errors.at(
                    &declaration.sig,
                    "#[traced] needs the function's body: put it on the method of each \
                     `impl Trait for Type`, or give the trait method a default body",
                );
                return None;
            }
        }
        Item::Impl(i) => {
            errors.at(
                i.impl_token,
                "#[traced] goes on a function, not on an `impl` block: put `#[traced]` on each method to trace",
            );
            return None;
        }
        _ => {}
    }
    let (what, at) = crate::syntax::describe(&parsed);
    errors.at(
        at,
        format!(
            "#[traced] goes on a function (`fn` or `async fn`), not on {what}: \
             put it on the function or method to trace"
        ),
    );
    None
}
