//! Argument-list parsing shared by every macro: the list itself (with recovery after a
//! malformed argument), `keyword = value`, the messages for an unknown argument or a
//! value of the wrong kind, and the once-only rule.

use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::{Parse, ParseStream, Parser as _};
use syn::{LitStr, Token};

use crate::errors::Errors;

/// A macro's arguments, each given at most once: what one argument parses into, and how it
/// is recorded.
pub(crate) trait Arguments: Default {
    /// One argument as written (`keyword = value`, `keyword(..)` or a flag).
    type Arg: Parse;

    /// Records one parsed argument (with [`set_once`], so a repeated one is reported).
    fn add(&mut self, arg: Self::Arg, errors: &mut Errors);

    /// Parses `arg, arg, ...` from `input` into `self`: see [`parse_list`].
    ///
    /// # Errors
    /// Only when the input cannot even be skipped through (never for ordinary token trees).
    fn parse_into(&mut self, input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<bool> {
        parse_list(input, errors, |arg, errors| self.add(arg, errors))
    }

    /// Parses an attribute macro's whole argument list, recording every error (malformed,
    /// unknown, duplicate) in `errors`.
    ///
    /// An argument that fails to parse is skipped up to the next top-level `,`, so the
    /// arguments after it are still read and only its own error is reported.
    fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut args = Self::default();
        let parsed = (|input: ParseStream<'_>| args.parse_into(input, errors)).parse2(tokens);
        errors.record(parsed);
        args
    }
}

/// Parses `arg, arg, ...`, handing each argument to `add`. An argument that fails to parse
/// is reported and skipped up to the next top-level `,`, so the arguments after it are
/// still read and only its own error shows. Returns whether anything was malformed.
///
/// # Errors
/// Only when the input cannot even be skipped through (never for ordinary token trees).
fn parse_list<A: Parse>(
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

/// Skips what is left of a malformed argument: every token tree up to the next `,`.
fn skip_to_comma(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

/// `keyword = value`: the keyword `K`, `=`, then what `value` reads; returned as
/// `variant(keyword, value)`. A missing `=` is reported at the keyword with `keyword = ..`.
pub(crate) fn assign<K: Parse + ToTokens, V, A>(
    input: ParseStream<'_>,
    variant: fn(K, V) -> A,
    value: impl FnOnce(ParseStream<'_>) -> syn::Result<V>,
) -> syn::Result<A> {
    assign_example(input, variant, None, value)
}

/// As [`assign`], with the example a missing `=` shows (`type = "Order"`).
pub(crate) fn assign_example<K: Parse + ToTokens, V, A>(
    input: ParseStream<'_>,
    variant: fn(K, V) -> A,
    example: Option<&str>,
    value: impl FnOnce(ParseStream<'_>) -> syn::Result<V>,
) -> syn::Result<A> {
    let keyword: K = input.parse()?;
    if !input.peek(Token![=]) {
        let name = keyword.to_token_stream().to_string();
        let example = example.map_or_else(|| format!("{name} = .."), str::to_owned);
        return Err(syn::Error::new_spanned(
            &keyword,
            format!("`{name}` takes a value: write `{example}`"),
        ));
    }
    input.parse::<Token![=]>()?;
    Ok(variant(keyword, value(input)?))
}

/// Parses a `T`; when that fails, the error is `message`, where syn's would have been.
pub(crate) fn parse_or<T: Parse>(input: ParseStream<'_>, message: impl Display) -> syn::Result<T> {
    input
        .parse::<T>()
        .map_err(|e| syn::Error::new(e.span(), message))
}

/// A string literal, or an error giving `example` (`name = "..."`) to write instead.
pub(crate) fn string(input: ParseStream<'_>, example: &str) -> syn::Result<LitStr> {
    parse_or(
        input,
        format!("expected a string literal, e.g. `{example}`"),
    )
}

/// The error for an argument none of the macro's keywords matched: at an identifier, that
/// it is an argument the macro does not take, with the usage; at anything else,
/// `otherwise()` (what was expected there).
pub(crate) fn unknown(
    input: ParseStream<'_>,
    usage: &str,
    otherwise: impl FnOnce() -> syn::Error,
) -> syn::Error {
    match input.parse::<syn::Ident>() {
        Ok(unknown) => syn::Error::new(
            unknown.span(),
            format!("unknown argument `{unknown}`: {usage}"),
        ),
        Err(_) => otherwise(),
    }
}

/// Stores `value` in `slot`, or reports a duplicate at `keyword` (named as written).
pub(crate) fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    keyword: impl ToTokens,
    errors: &mut Errors,
) {
    if slot.is_some() {
        let name = keyword.to_token_stream().to_string();
        errors.at(
            keyword,
            format!("duplicate argument `{name}`: give it once"),
        );
    } else {
        *slot = Some(value);
    }
}
