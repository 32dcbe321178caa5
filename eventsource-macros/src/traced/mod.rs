//! `#[traced(...)]`: parse the arguments, validate them against the function, expand.

mod args;
mod expand;
mod validate;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Item, ItemFn, TraitItemFn};

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
    match (&function, plan, errors.finish()) {
        (Some(function), Some(plan), Ok(())) => expand::expand(function, &plan),
        (_, _, result) => {
            let mut tokens = result
                .err()
                .map(|e| e.to_compile_error())
                .unwrap_or_default();
            tokens.extend(item);
            tokens
        }
    }
}

/// The function the attribute is on, or an error saying where it goes instead.
fn function(item: TokenStream, errors: &mut Errors) -> Option<ItemFn> {
    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(parsed) => parsed,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let (what, at): (&str, &dyn ToTokens) = match &parsed {
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
            ("this item", tokens)
        }
        Item::Struct(s) => ("a struct", &s.struct_token),
        Item::Enum(e) => ("an enum", &e.enum_token),
        Item::Union(u) => ("a union", &u.union_token),
        Item::Impl(i) => {
            errors.at(
                i.impl_token,
                "#[traced] goes on a function, not on an `impl` block: put `#[traced]` on each method to trace",
            );
            return None;
        }
        Item::Trait(t) => ("a trait", &t.trait_token),
        Item::Mod(m) => ("a module", &m.mod_token),
        Item::Const(c) => ("a constant", &c.const_token),
        Item::Static(s) => ("a static", &s.static_token),
        Item::Type(t) => ("a type alias", &t.type_token),
        Item::Use(u) => ("a `use`", &u.use_token),
        Item::Macro(m) => ("a macro", &m.mac.path),
        Item::ForeignMod(f) => ("an `extern` block", &f.abi),
        _ => ("this item", &parsed),
    };
    errors.at(
        at,
        format!(
            "#[traced] goes on a function (`fn` or `async fn`), not on {what}: \
             put it on the function or method to trace"
        ),
    );
    None
}
