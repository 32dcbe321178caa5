//! The typed arguments of `#[command_handler(...)]`.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, LitStr, Token};

use crate::errors::Errors;

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(enabled);
    syn::custom_keyword!(aggregate_id);
    syn::custom_keyword!(command_type);
}

/// What to write instead of an argument the macro does not know.
const USAGE: &str = "#[command_handler] takes `name = \"handle_command\"`, `enabled = false`, \
     `aggregate_id = cmd.order_id` and `command_type = \"PlaceOrder\"`";

/// Every argument, each given at most once.
#[derive(Default)]
pub(crate) struct Args {
    /// `name = "..."`: the command span's name.
    pub(crate) name: Option<LitStr>,
    /// `enabled = <const bool expr>`: the handler's span switch.
    pub(crate) enabled: Option<Expr>,
    /// `aggregate_id = <expr over the command parameter>`: generates `impl Command`.
    pub(crate) aggregate_id: Option<(kw::aggregate_id, Expr)>,
    /// `command_type = "..."`: the generated `Command::TYPE`.
    pub(crate) command_type: Option<(kw::command_type, LitStr)>,
}

enum Arg {
    Name(kw::name, LitStr),
    Enabled(kw::enabled, Expr),
    AggregateId(kw::aggregate_id, Expr),
    CommandType(kw::command_type, LitStr),
}

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
            let k = input.parse()?;
            input.parse::<Token![=]>()?;
            Ok(Self::Name(k, string(input, "name = \"handle_command\"")?))
        } else if lookahead.peek(kw::enabled) {
            let k = input.parse()?;
            input.parse::<Token![=]>()?;
            Ok(Self::Enabled(k, input.parse()?))
        } else if lookahead.peek(kw::aggregate_id) {
            let k = input.parse()?;
            input.parse::<Token![=]>()?;
            Ok(Self::AggregateId(k, input.parse()?))
        } else if lookahead.peek(kw::command_type) {
            let k = input.parse()?;
            input.parse::<Token![=]>()?;
            Ok(Self::CommandType(
                k,
                string(input, "command_type = \"PlaceOrder\"")?,
            ))
        } else if input.peek(Ident) {
            Err(crate::args::unknown(input, USAGE))
        } else {
            Err(lookahead.error())
        }
    }
}

impl Args {
    /// Parses the attribute's arguments, recording errors.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut args = Self::default();
        crate::args::parse_tokens(tokens, errors, |arg, errors| args.add(arg, errors));
        args
    }

    fn add(&mut self, arg: Arg, errors: &mut Errors) {
        use crate::args::set_once;
        match arg {
            Arg::Name(k, v) => set_once(&mut self.name, v, k, "name", errors),
            Arg::Enabled(k, v) => set_once(&mut self.enabled, v, k, "enabled", errors),
            Arg::AggregateId(k, v) => {
                set_once(&mut self.aggregate_id, (k, v), k, "aggregate_id", errors)
            }
            Arg::CommandType(k, v) => {
                set_once(&mut self.command_type, (k, v), k, "command_type", errors)
            }
        }
    }
}
