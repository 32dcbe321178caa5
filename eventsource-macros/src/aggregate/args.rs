//! The typed arguments of `#[aggregate(...)]`, as written by the user.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitInt, LitStr, Path, Token, parenthesized};

use crate::args::{Arguments, assign, assign_example, parse_or, set_once, unknown};
use crate::errors::Errors;

pub(crate) mod kw {
    syn::custom_keyword!(events);
    syn::custom_keyword!(event);
    syn::custom_keyword!(event_enum);
    syn::custom_keyword!(upcasters);
    syn::custom_keyword!(snapshot_version);
    syn::custom_keyword!(version);
}

/// What to write instead of an argument the derive does not know.
pub(crate) const USAGE: &str = "#[aggregate] takes `type = \"Order\"`, `events(OrderPlaced, OrderShipped(version = 2), ..)`, \
     `event_enum = OrderEvent`, `event = HandWrittenEnum`, `upcasters = order_upcasters` or `snapshot_version = 2`";

/// Every `#[aggregate(...)]` argument, each given at most once.
#[derive(Default)]
pub(crate) struct Args {
    /// The attributes' own tokens, to point at when an argument is missing.
    pub(crate) attributes: Vec<Attribute>,
    /// `type = "Order"`.
    pub(crate) type_name: Option<LitStr>,
    /// `events(A, B)`.
    pub(crate) events: Option<EventList>,
    /// `event = HandWrittenEnum`.
    pub(crate) event: Option<(kw::event, Path)>,
    /// `event_enum = OrderEvent`.
    pub(crate) event_enum: Option<(kw::event_enum, Ident)>,
    /// `upcasters = order_upcasters` (a `fn() -> Upcasters`).
    pub(crate) upcasters: Option<(kw::upcasters, Path)>,
    /// `snapshot_version = 2`.
    pub(crate) snapshot_version: Option<(kw::snapshot_version, LitInt)>,
    /// An argument failed to parse (and was reported): it may be the one that looks
    /// missing, so missing arguments are not reported on top of it.
    pub(crate) malformed: bool,
}

/// `events(A, B, ...)`.
pub(crate) struct EventList {
    pub(crate) keyword: kw::events,
    pub(crate) items: Punctuated<EventItem, Token![,]>,
}

/// One event type in `events(..)`: `OrderPlaced` or `OrderPlaced(version = 2)`.
pub(crate) struct EventItem {
    pub(crate) path: Path,
    /// `version = 2`.
    pub(crate) version: Option<(kw::version, LitInt)>,
}

/// `version = N` inside an event type's parentheses.
fn version_in_parens(
    content: ParseStream<'_>,
    parens: &syn::token::Paren,
) -> syn::Result<(kw::version, LitInt)> {
    if content.is_empty() || !content.peek(kw::version) {
        return Err(syn::Error::new(
            if content.is_empty() {
                parens.span.join()
            } else {
                content.span()
            },
            "inside an event type's parentheses write its schema version, e.g. `OrderPlaced(version = 2)`",
        ));
    }
    let keyword: kw::version = content.parse()?;
    if !content.peek(Token![=]) {
        return Err(syn::Error::new(
            keyword.span,
            "`version` takes a value: write `version = 2`",
        ));
    }
    content.parse::<Token![=]>()?;
    let value: LitInt = parse_or(
        content,
        "expected the schema version as a whole number, e.g. `version = 2`",
    )?;
    if !content.is_empty() {
        return Err(syn::Error::new(
            content.span(),
            "an event type takes only `version = N` in its parentheses",
        ));
    }
    Ok((keyword, value))
}

impl Parse for EventItem {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let path: Path = input.parse()?;
        if !input.peek(syn::token::Paren) {
            return Ok(Self {
                path,
                version: None,
            });
        }
        let content;
        let parens = parenthesized!(content in input);
        let version = version_in_parens(&content, &parens);
        if version.is_err() {
            // What is left is part of the one error reported, not a second one.
            content.parse::<proc_macro2::TokenStream>()?;
        }
        let (keyword, value) = version?;
        Ok(Self {
            path,
            version: Some((keyword, value)),
        })
    }
}

pub(crate) enum Arg {
    Type(Token![type], LitStr),
    Events(EventList),
    Event(kw::event, Path),
    EventEnum(kw::event_enum, Ident),
    Upcasters(kw::upcasters, Path),
    SnapshotVersion(kw::snapshot_version, LitInt),
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        if lookahead.peek(Token![type]) {
            assign_example(input, Self::Type, Some("type = \"Order\""), |input| {
                parse_or(
                    input,
                    "expected the aggregate type name as a string, e.g. `type = \"Order\"`",
                )
            })
        } else if lookahead.peek(kw::events) {
            let keyword = input.parse::<kw::events>()?;
            if !input.peek(syn::token::Paren) {
                return Err(syn::Error::new(
                    keyword.span,
                    "expected the event types in parentheses, e.g. `events(OrderPlaced, OrderShipped)`",
                ));
            }
            let content;
            parenthesized!(content in input);
            let items = content.parse_terminated(EventItem::parse, Token![,])?;
            Ok(Self::Events(EventList { keyword, items }))
        } else if lookahead.peek(kw::upcasters) {
            assign_example(
                input,
                Self::Upcasters,
                Some("upcasters = order_upcasters"),
                |input| {
                    parse_or(
                        input,
                        "expected the path of a `fn() -> Upcasters`, e.g. `upcasters = order_upcasters`",
                    )
                },
            )
        } else if lookahead.peek(kw::snapshot_version) {
            assign_example(
                input,
                Self::SnapshotVersion,
                Some("snapshot_version = 2"),
                |input| {
                    parse_or(
                        input,
                        "expected the snapshot version as a whole number, e.g. `snapshot_version = 2`",
                    )
                },
            )
        } else if lookahead.peek(kw::event_enum) {
            assign(input, Self::EventEnum, Ident::parse)
        } else if lookahead.peek(kw::event) {
            assign(input, Self::Event, Path::parse)
        } else {
            Err(unknown(input, USAGE, || lookahead.error()))
        }
    }
}

impl Args {
    /// Parses every `#[aggregate(...)]` attribute, recording unknown, malformed and
    /// duplicate arguments in `errors` (see [`Arguments::parse_into`]).
    pub(crate) fn from_attributes(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut args = Self::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("aggregate")) {
            args.attributes.push(attr.clone());
            let parsed =
                attr.parse_args_with(|input: ParseStream<'_>| args.parse_into(input, errors));
            args.malformed |= errors.record(parsed).unwrap_or(true);
        }
        args
    }
}

impl Arguments for Args {
    type Arg = Arg;

    fn add(&mut self, arg: Arg, errors: &mut Errors) {
        match arg {
            Arg::Type(keyword, name) => set_once(&mut self.type_name, name, keyword, errors),
            Arg::Events(list) => {
                let keyword = list.keyword;
                set_once(&mut self.events, list, keyword, errors);
            }
            Arg::Event(keyword, path) => {
                set_once(&mut self.event, (keyword, path), keyword, errors)
            }
            Arg::EventEnum(keyword, ident) => {
                set_once(&mut self.event_enum, (keyword, ident), keyword, errors);
            }
            Arg::Upcasters(keyword, path) => {
                set_once(&mut self.upcasters, (keyword, path), keyword, errors);
            }
            Arg::SnapshotVersion(keyword, value) => {
                set_once(
                    &mut self.snapshot_version,
                    (keyword, value),
                    keyword,
                    errors,
                );
            }
        }
    }
}
