//! Procedural macros of the eventsource workspace.
//!
//! Do not depend on this crate directly: depend on `eventsource-runtime`, which re-exports
//! these macros and holds the code they expand to, which reaches it only through
//! `::eventsource_runtime::__private::...`.
//!
//! Each macro lives in a module of its own, split into parsing (typed arguments),
//! validation and expansion. On invalid input a macro reports every error it found and
//! still emits a minimal item, so the user sees those errors and not a cascade.
#![deny(missing_docs)]

mod aggregate;
mod args;
mod command_handler;
mod errors;
mod projection;
mod syntax;
mod traced;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `eventsource_runtime::Aggregate` and generates the aggregate's event enum.
///
/// See `eventsource_runtime::Aggregate` (the derive's re-export) for the arguments.
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    aggregate::derive(&input).into()
}

/// Marks a command handler: `impl Handle<Command> for Aggregate` or a free decision function.
///
/// See `eventsource_runtime::command_handler` (the re-export) for the arguments.
#[proc_macro_attribute]
pub fn command_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    command_handler::command_handler(args.into(), item.into()).into()
}

/// Generates `eventsource_runtime::Projection` from an impl block of event handler methods.
///
/// See `eventsource_runtime::projection` (the re-export) for the arguments.
#[proc_macro_attribute]
pub fn projection(args: TokenStream, item: TokenStream) -> TokenStream {
    projection::projection(args.into(), item.into()).into()
}

/// Traces a function or method: a span around each call, with its errors and panics.
///
/// See `eventsource_runtime::traced` (the re-export) for the arguments.
#[proc_macro_attribute]
pub fn traced(args: TokenStream, item: TokenStream) -> TokenStream {
    traced::traced(args.into(), item.into()).into()
}
