//! The typed arguments of `#[command_handler(...)]`.

use syn::parse::{Parse, ParseStream};
use syn::{Expr, LitStr};

use crate::args::{Arguments, assign, set_once, string, unknown};
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

pub(crate) enum Arg {
    Name(kw::name, LitStr),
    Enabled(kw::enabled, Expr),
    AggregateId(kw::aggregate_id, Expr),
    CommandType(kw::command_type, LitStr),
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::name) {
            assign(input, Self::Name, |input| {
                string(input, "name = \"handle_command\"")
            })
        } else if lookahead.peek(kw::enabled) {
            assign(input, Self::Enabled, Expr::parse)
        } else if lookahead.peek(kw::aggregate_id) {
            assign(input, Self::AggregateId, Expr::parse)
        } else if lookahead.peek(kw::command_type) {
            assign(input, Self::CommandType, |input| {
                string(input, "command_type = \"PlaceOrder\"")
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
            Arg::Name(k, v) => set_once(&mut self.name, v, k, errors),
            Arg::Enabled(k, v) => set_once(&mut self.enabled, v, k, errors),
            Arg::AggregateId(k, v) => set_once(&mut self.aggregate_id, (k, v), k, errors),
            Arg::CommandType(k, v) => set_once(&mut self.command_type, (k, v), k, errors),
        }
    }
}
