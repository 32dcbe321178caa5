//! The typed arguments of `#[projection(...)]`, as written by the user.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, LitStr, Token};

use crate::errors::Errors;

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(projection_name);
    syn::custom_keyword!(enable_tracing);
}

/// What to write instead of an argument the macro does not know.
pub(crate) const USAGE: &str = "#[projection] takes `name = \"projection.orders\"` (the span name), \
     `projection_name = \"OrderList\"` (the projection's name) and `enable_tracing = true` \
     (or an expression such as `self.trace`)";

/// Every `#[projection(...)]` argument, each given at most once.
#[derive(Default)]
pub(crate) struct Args {
    /// `name = "..."`: the span name (`Projection::span_name`).
    pub(crate) name: Option<LitStr>,
    /// `projection_name = "..."`: `Projection::name` (default: the type's name).
    pub(crate) projection_name: Option<LitStr>,
    /// `enable_tracing = <expr>`: `Projection::tracing_enabled`, may read `self`.
    pub(crate) enable_tracing: Option<Expr>,
}

enum Arg {
    Name(kw::name, LitStr),
    ProjectionName(kw::projection_name, LitStr),
    EnableTracing(kw::enable_tracing, Expr),
}

/// A string literal, or an error saying which one to write.
fn string(input: ParseStream<'_>, example: &str) -> syn::Result<LitStr> {
    input.parse::<LitStr>().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("expected a string literal, e.g. `{example}`"),
        )
    })
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::name) {
            let keyword = input.parse()?;
            input.parse::<Token![=]>()?;
            Ok(Self::Name(
                keyword,
                string(input, "name = \"projection.orders\"")?,
            ))
        } else if lookahead.peek(kw::projection_name) {
            let keyword = input.parse()?;
            input.parse::<Token![=]>()?;
            Ok(Self::ProjectionName(
                keyword,
                string(input, "projection_name = \"OrderList\"")?,
            ))
        } else if lookahead.peek(kw::enable_tracing) {
            let keyword = input.parse()?;
            input.parse::<Token![=]>()?;
            let expr = input.parse::<Expr>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected a `bool` expression, e.g. `enable_tracing = true` or \
                     `enable_tracing = self.trace`",
                )
            })?;
            Ok(Self::EnableTracing(keyword, expr))
        } else if input.peek(Ident) {
            Err(crate::args::unknown(input, USAGE))
        } else {
            Err(lookahead.error())
        }
    }
}

impl Args {
    /// Parses the attribute's arguments, recording unknown, malformed and duplicate ones in
    /// `errors`.
    ///
    /// An argument that fails to parse is skipped up to the next top-level `,`, so the
    /// arguments after it are still read and only its own error is reported.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut args = Self::default();
        crate::args::parse_tokens(tokens, errors, |arg, errors| args.add(arg, errors));
        args
    }

    fn add(&mut self, arg: Arg, errors: &mut Errors) {
        use crate::args::set_once as set;
        match arg {
            Arg::Name(keyword, name) => set(&mut self.name, name, keyword, "name", errors),
            Arg::ProjectionName(keyword, name) => set(
                &mut self.projection_name,
                name,
                keyword,
                "projection_name",
                errors,
            ),
            Arg::EnableTracing(keyword, expr) => set(
                &mut self.enable_tracing,
                expr,
                keyword,
                "enable_tracing",
                errors,
            ),
        }
    }
}
