//! The typed arguments of `#[projection(...)]`, as written by the user.

use syn::parse::{Parse, ParseStream};
use syn::{Expr, LitStr};

use crate::args::{Arguments, assign, parse_or, set_once, string, unknown};
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

pub(crate) enum Arg {
    Name(kw::name, LitStr),
    ProjectionName(kw::projection_name, LitStr),
    EnableTracing(kw::enable_tracing, Expr),
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::name) {
            let example = "name = \"projection.orders\"";
            assign(input, Self::Name, |input| string(input, example))
        } else if lookahead.peek(kw::projection_name) {
            let example = "projection_name = \"OrderList\"";
            assign(input, Self::ProjectionName, |input| string(input, example))
        } else if lookahead.peek(kw::enable_tracing) {
            let expected = "expected a `bool` expression, e.g. `enable_tracing = true` or \
                            `enable_tracing = self.trace`";
            assign(input, Self::EnableTracing, |input| {
                parse_or(input, expected)
            })
        } else {
            Err(unknown(input, USAGE, || lookahead.error()))
        }
    }
}

impl Arguments for Args {
    type Arg = Arg;

    fn add(&mut self, arg: Arg, errors: &mut Errors) {
        match arg {
            Arg::Name(keyword, name) => set_once(&mut self.name, name, keyword, errors),
            Arg::ProjectionName(keyword, name) => {
                set_once(&mut self.projection_name, name, keyword, errors);
            }
            Arg::EnableTracing(keyword, expr) => {
                set_once(&mut self.enable_tracing, expr, keyword, errors);
            }
        }
    }
}
