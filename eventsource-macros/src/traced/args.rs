//! The typed arguments of `#[traced(...)]`, as written by the user.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Path, Token, braced, parenthesized};

use crate::args::{Arguments, parse_or, set_once, unknown};
use crate::errors::Errors;

pub(crate) mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(kind);
    syn::custom_keyword!(attributes);
    syn::custom_keyword!(fields);
    syn::custom_keyword!(enabled);
    syn::custom_keyword!(ret);
    syn::custom_keyword!(err);
}

/// What to write instead of an argument the attribute does not know.
pub(crate) const USAGE: &str = "#[traced] takes `name = \"orders.place\"`, `kind = client`, \
     `attributes(\"channel\" = \"email\")`, `fields(customer.id = customer_id, order = %order_id)`, \
     `enabled = self.tracing`, `ret` and `err`";

/// The span kinds, as written after `kind =`.
pub(crate) const KINDS: &[&str] = &["internal", "client", "server", "producer", "consumer"];

/// Every `#[traced(...)]` argument, each given at most once.
#[derive(Default)]
pub(crate) struct Args {
    /// `name = "..."` (a string, or the path of a `&str` constant).
    pub(crate) name: Option<(kw::name, SpanName)>,
    /// `kind = client` (or `kind = "client"`): the keyword and the kind as written, with
    /// where it is written (validated later).
    pub(crate) kind: Option<(kw::kind, String, Span)>,
    /// `attributes(key = literal, ...)`.
    pub(crate) attributes: Option<(kw::attributes, Vec<Attribute>)>,
    /// `fields(key = expr, ...)`.
    pub(crate) fields: Option<(kw::fields, Vec<Field>)>,
    /// `enabled = expr`.
    pub(crate) enabled: Option<(kw::enabled, Expr)>,
    /// `ret`.
    pub(crate) ret: Option<kw::ret>,
    /// `err`.
    pub(crate) err: Option<kw::err>,
}

/// The span name given with `name = ...`.
pub(crate) enum SpanName {
    /// `name = "orders.place"`.
    Lit(LitStr),
    /// `name = names::PLACE` (a `&'static str` constant).
    Const(Path),
}

/// An attribute key: `customer.id`, `"customer.id"` or `{ attributes::CUSTOMER_ID }`.
pub(crate) enum Key {
    Dotted(Punctuated<Ident, Token![.]>),
    Lit(LitStr),
    Const(syn::token::Brace, Expr),
}

impl Key {
    /// The key as text, for duplicate detection (`None` for a constant).
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Self::Dotted(idents) => Some(
                idents
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("."),
            ),
            Self::Lit(lit) => Some(lit.value()),
            Self::Const(..) => None,
        }
    }
}

impl quote::ToTokens for Key {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Self::Dotted(idents) => idents.to_tokens(tokens),
            Self::Lit(lit) => lit.to_tokens(tokens),
            Self::Const(brace, expr) => brace.surround(tokens, |inner| expr.to_tokens(inner)),
        }
    }
}

impl Parse for Key {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            return Ok(Self::Lit(input.parse()?));
        }
        if input.peek(syn::token::Brace) {
            let content;
            let brace = braced!(content in input);
            return Ok(Self::Const(brace, content.parse()?));
        }
        if !input.peek(Ident) {
            return Err(input.error(
                "expected an attribute key: `customer.id`, `\"customer.id\"` or `{ CUSTOMER_ID }` (a `&str` constant)",
            ));
        }
        Ok(Self::Dotted(Punctuated::parse_separated_nonempty(input)?))
    }
}

/// `key = value` inside `attributes(..)`.
pub(crate) struct Attribute {
    pub(crate) key: Key,
    pub(crate) value: Expr,
}

impl Parse for Attribute {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = input.parse()?;
        if !input.peek(Token![=]) {
            return Err(input.error(
                "expected `=` and a literal after the attribute key, e.g. `attributes(\"channel\" = \"email\")`",
            ));
        }
        input.parse::<Token![=]>()?;
        Ok(Self {
            key,
            value: input.parse()?,
        })
    }
}

/// How a dynamic field is recorded.
pub(crate) enum Sigil {
    /// As it is (integers, floats, bools, strings).
    Plain,
    /// `%value`: its `Display`.
    Display(Token![%]),
    /// `?value`: its `Debug`.
    Debug(Token![?]),
}

impl Parse for Sigil {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Ok(if input.peek(Token![%]) {
            Self::Display(input.parse()?)
        } else if input.peek(Token![?]) {
            Self::Debug(input.parse()?)
        } else {
            Self::Plain
        })
    }
}

/// `key = [%|?]expr`, or the shorthands `arg`, `%arg`, `?arg` inside `fields(..)`.
pub(crate) struct Field {
    pub(crate) key: Key,
    pub(crate) sigil: Sigil,
    pub(crate) value: Expr,
}

impl Parse for Field {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(Token![%]) || input.peek(Token![?]) {
            // `%arg` / `?arg`: the key is the argument's name.
            let sigil = input.parse()?;
            let ident: Ident = parse_or(
                input,
                "expected an argument name after the sigil, e.g. `fields(%order_id)`, \
                 or a key: `fields(order = %order.id)`",
            )?;
            return Ok(Self {
                key: Key::Dotted(std::iter::once(ident.clone()).collect()),
                sigil,
                value: ident_expr(ident),
            });
        }
        let key: Key = input.parse()?;
        if !input.peek(Token![=]) {
            if let Key::Dotted(idents) = &key
                && idents.len() == 1
                && (input.is_empty() || input.peek(Token![,]))
            {
                // `arg`: record the argument under its own name.
                let ident = idents[0].clone();
                return Ok(Self {
                    key,
                    sigil: Sigil::Plain,
                    value: ident_expr(ident),
                });
            }
            return Err(input.error(
                "expected `= value` after the field key, e.g. `fields(customer.id = customer_id)`",
            ));
        }
        input.parse::<Token![=]>()?;
        let sigil = input.parse()?;
        let value = parse_or(
            input,
            "expected an expression reading the arguments, e.g. `fields(items.count = items.len())`",
        )?;
        Ok(Self { key, sigil, value })
    }
}

fn ident_expr(ident: Ident) -> Expr {
    Expr::Path(syn::ExprPath {
        attrs: Vec::new(),
        qself: None,
        path: ident.into(),
    })
}

pub(crate) enum Arg {
    Name(kw::name, SpanName),
    Kind(kw::kind, String, Span),
    Attributes(kw::attributes, Vec<Attribute>),
    Fields(kw::fields, Vec<Field>),
    Enabled(kw::enabled, Expr),
    Ret(kw::ret),
    Err(kw::err),
}

/// Parses `keyword = ` and reports what to write when the `=` is missing.
fn equals(input: ParseStream<'_>, keyword: Span, example: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        Ok(())
    } else {
        Err(syn::Error::new(keyword, format!("expected `{example}`")))
    }
}

/// Parses `keyword(item, item, ..)`.
fn list<T: Parse>(
    input: ParseStream<'_>,
    keyword: Span,
    example: &str,
) -> syn::Result<Punctuated<T, Token![,]>> {
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            keyword,
            format!("expected a list in parentheses, e.g. `{example}`"),
        ));
    }
    let content;
    parenthesized!(content in input);
    content.parse_terminated(T::parse, Token![,])
}

/// A flag (`ret`, `err`) must not be given a value.
fn flag(input: ParseStream<'_>, keyword: Span, name: &str) -> syn::Result<()> {
    if input.peek(Token![=]) || input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            keyword,
            format!("`{name}` takes no value: write `{name}` alone"),
        ));
    }
    Ok(())
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::name) {
            let keyword = input.parse::<kw::name>()?;
            equals(input, keyword.span, "name = \"orders.place\"")?;
            let name = if input.peek(LitStr) {
                SpanName::Lit(input.parse()?)
            } else if input.peek(Ident) || input.peek(Token![::]) || input.peek(Token![crate]) {
                let path: Path = input.parse()?;
                if !input.is_empty() && !input.peek(Token![,]) {
                    // `format!(..)`, `make_name(..)`, `prefix + ".x"`: computed per call.
                    return Err(syn::Error::new_spanned(
                        &path,
                        "a span name is fixed: a string literal (`name = \"orders.place\"`) or \
                         the path of a `&'static str` constant; for what varies per call, record \
                         an attribute instead: `fields(order = %order_id)`, or \
                         `eventsource_runtime::telemetry::set_attribute(..)` in the body",
                    ));
                }
                SpanName::Const(path)
            } else {
                return Err(input
                    .error("expected the span name as a string, e.g. `name = \"orders.place\"`"));
            };
            Ok(Self::Name(keyword, name))
        } else if lookahead.peek(kw::kind) {
            let keyword = input.parse::<kw::kind>()?;
            equals(input, keyword.span, "kind = client")?;
            let (kind, at) = if input.peek(LitStr) {
                let lit: LitStr = input.parse()?;
                (lit.value(), lit.span())
            } else if input.peek(Ident) {
                let ident: Ident = input.parse()?;
                (ident.to_string(), ident.span())
            } else {
                return Err(input.error(format!(
                    "expected the span kind: one of {}, e.g. `kind = client`",
                    kinds()
                )));
            };
            Ok(Self::Kind(keyword, kind, at))
        } else if lookahead.peek(kw::attributes) {
            let keyword = input.parse::<kw::attributes>()?;
            let items = list(input, keyword.span, "attributes(\"channel\" = \"email\")")?;
            Ok(Self::Attributes(keyword, items.into_iter().collect()))
        } else if lookahead.peek(kw::fields) {
            let keyword = input.parse::<kw::fields>()?;
            let items = list(input, keyword.span, "fields(customer.id = customer_id)")?;
            Ok(Self::Fields(keyword, items.into_iter().collect()))
        } else if lookahead.peek(kw::enabled) {
            let keyword = input.parse::<kw::enabled>()?;
            equals(
                input,
                keyword.span,
                "enabled = <bool expression>`, e.g. `enabled = self.tracing",
            )?;
            let expected =
                "expected a bool expression after `enabled =`, e.g. `enabled = self.tracing`";
            if input.is_empty() || input.peek(Token![,]) {
                return Err(syn::Error::new(keyword.span, expected));
            }
            Ok(Self::Enabled(keyword, parse_or(input, expected)?))
        } else if lookahead.peek(kw::ret) {
            let keyword = input.parse::<kw::ret>()?;
            flag(input, keyword.span, "ret")?;
            Ok(Self::Ret(keyword))
        } else if lookahead.peek(kw::err) {
            let keyword = input.parse::<kw::err>()?;
            flag(input, keyword.span, "err")?;
            Ok(Self::Err(keyword))
        } else {
            Err(unknown(input, USAGE, || {
                syn::Error::new(input.span(), format!("expected an argument: {USAGE}"))
            }))
        }
    }
}

/// The kinds as `a`, `b` or `c`, for messages.
pub(crate) fn kinds() -> String {
    let quoted: Vec<String> = KINDS.iter().map(|k| format!("`{k}`")).collect();
    let (last, rest) = quoted.split_last().expect("KINDS is not empty");
    format!("{} or {last}", rest.join(", "))
}

impl Arguments for Args {
    type Arg = Arg;

    fn add(&mut self, arg: Arg, errors: &mut Errors) {
        match arg {
            Arg::Name(k, v) => set_once(&mut self.name, (k, v), k, errors),
            Arg::Kind(k, v, at) => set_once(&mut self.kind, (k, v, at), k, errors),
            Arg::Attributes(k, v) => set_once(&mut self.attributes, (k, v), k, errors),
            Arg::Fields(k, v) => set_once(&mut self.fields, (k, v), k, errors),
            Arg::Enabled(k, v) => set_once(&mut self.enabled, (k, v), k, errors),
            Arg::Ret(k) => set_once(&mut self.ret, k, k, errors),
            Arg::Err(k) => set_once(&mut self.err, k, k, errors),
        }
    }
}
