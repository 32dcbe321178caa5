//! Argument-list parsing shared by every macro: recovery after a malformed argument, and
//! the once-only rule.

use quote::ToTokens;
use syn::Token;
use syn::parse::{Parse, ParseStream};

use crate::errors::Errors;

/// Parses `arg, arg, ...`, handing each argument to `add`. An argument that fails to parse
/// is reported and skipped up to the next top-level `,`, so the arguments after it are
/// still read and only its own error shows. Returns whether anything was malformed.
///
/// # Errors
/// Only when the input cannot even be skipped through (never for ordinary token trees).
pub(crate) fn parse_list<A: Parse>(
    input: ParseStream<'_>,
    errors: &mut Errors,
    mut add: impl FnMut(A, &mut Errors),
) -> syn::Result<bool> {
    let mut malformed = false;
    while !input.is_empty() {
        match input.parse::<A>() {
            Ok(arg) => add(arg, errors),
            Err(e) => {
                malformed = true;
                errors.push(e);
                skip_to_comma(input)?;
            }
        }
        if input.is_empty() {
            break;
        }
        if let Err(e) = input.parse::<Token![,]>() {
            malformed = true;
            errors.push(e);
            skip_to_comma(input)?;
            input.parse::<Option<Token![,]>>()?;
        }
    }
    Ok(malformed)
}

/// Parses an attribute's whole argument list with [`parse_list`], recording every error
/// (malformed, unknown, duplicate) in `errors`.
pub(crate) fn parse_tokens<A: Parse>(
    tokens: proc_macro2::TokenStream,
    errors: &mut Errors,
    add: impl FnMut(A, &mut Errors),
) {
    use syn::parse::Parser as _;
    let parsed = (|input: ParseStream<'_>| parse_list(input, errors, add)).parse2(tokens);
    if let Err(e) = parsed {
        errors.push(e);
    }
}

/// The error for an argument name the macro does not take, at that name, with the usage.
pub(crate) fn unknown(input: ParseStream<'_>, usage: &str) -> syn::Error {
    match input.parse::<syn::Ident>() {
        Ok(unknown) => syn::Error::new(
            unknown.span(),
            format!("unknown argument `{unknown}`: {usage}"),
        ),
        Err(e) => e,
    }
}

/// Skips what is left of a malformed argument: every token tree up to the next `,`.
fn skip_to_comma(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

/// Stores `value` in `slot`, or reports a duplicate at its keyword.
pub(crate) fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    keyword: impl ToTokens,
    name: &str,
    errors: &mut Errors,
) {
    if slot.is_some() {
        errors.at(
            keyword,
            format!("duplicate argument `{name}`: give it once"),
        );
    } else {
        *slot = Some(value);
    }
}
