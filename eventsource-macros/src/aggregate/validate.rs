//! Checks the arguments against the item and turns them into an expansion plan.

use quote::format_ident;
use syn::{Data, DeriveInput, Ident, LitInt, Path, PathArguments};

use super::args::Args;
use crate::errors::Errors;

/// What to generate.
pub(crate) struct Plan {
    /// The stored aggregate type name.
    pub(crate) type_name: String,
    /// Where the events come from.
    pub(crate) events: Events,
    /// `upcasters = path`: the `fn() -> Upcasters` of the generated set.
    pub(crate) upcasters: Option<Path>,
    /// `snapshot_version = N`.
    pub(crate) snapshot_version: Option<u32>,
}

/// The aggregate's event set.
pub(crate) enum Events {
    /// Generate an enum with one variant per listed event type.
    Generated {
        enum_ident: Ident,
        variants: Vec<Variant>,
    },
    /// Use the user's own enum.
    HandWritten(Path),
}

/// One listed event type.
pub(crate) struct Variant {
    /// The event type as the user wrote it (errors about it point here).
    pub(crate) path: Path,
    /// The variant name: the type's last path segment.
    pub(crate) ident: Ident,
    /// Its schema version (`Name(version = N)`, else 1).
    pub(crate) version: u32,
}

/// A schema version written as `lit`: a whole number from 1, else an error at it saying
/// what to write (`what` is `version` or `snapshot_version`).
fn schema_version(lit: &LitInt, what: &str, errors: &mut Errors) -> Option<u32> {
    match lit.base10_parse::<u32>() {
        Ok(0) => {
            errors.at(
                lit,
                format!("schema versions start at 1: write `{what} = 1`, or leave it out for 1"),
            );
            None
        }
        Ok(version) => Some(version),
        Err(_) => {
            errors.at(
                lit,
                format!(
                    "a schema version is a whole number from 1 to {}, without suffix, e.g. `{what} = 2`",
                    u32::MAX
                ),
            );
            None
        }
    }
}

/// The name of the generated event enum: `event_enum = ...`, else `{Struct}Event`.
pub(crate) fn enum_ident(input: &DeriveInput, args: &Args) -> Ident {
    args.event_enum.as_ref().map_or_else(
        || format_ident!("{}Event", input.ident),
        |(_, ident)| ident.clone(),
    )
}

/// Validates `args` for `input`, recording every problem in `errors`.
pub(crate) fn validate(input: &DeriveInput, args: &Args, errors: &mut Errors) -> Option<Plan> {
    match &input.data {
        Data::Struct(_) => {}
        Data::Enum(e) => errors.at(
            e.enum_token,
            "#[derive(Aggregate)] goes on the aggregate's state struct, not on an enum: \
             write `struct Order { .. }` and list the event types in `#[aggregate(events(..))]`",
        ),
        Data::Union(u) => errors.at(
            u.union_token,
            "#[derive(Aggregate)] goes on the aggregate's state struct, not on a union: \
             write `struct Order { .. }` and list the event types in `#[aggregate(events(..))]`",
        ),
    }

    let type_name = match &args.type_name {
        Some(lit) if lit.value().trim().is_empty() => {
            errors.at(
                lit,
                "the aggregate type name is empty: write e.g. `type = \"Order\"`",
            );
            None
        }
        Some(lit) => Some(lit.value()),
        None => Some(input.ident.to_string()),
    };

    let events = match (&args.events, &args.event) {
        (Some(_), Some((keyword, _))) => {
            errors.at(
                keyword,
                "`event = ..` and `events(..)` exclude each other: list the event types in `events(..)` \
                 to have the enum generated, or name your own enum with `event = ..`, not both",
            );
            None
        }
        // An argument that failed to parse was reported already, and may be the missing one.
        (None, None) if args.malformed => None,
        (None, None) => {
            match args.attributes.first() {
                Some(attr) => errors.at(
                    attr,
                    "missing `events(..)`: list the events this aggregate applies, e.g. \
                     `#[aggregate(events(OrderPlaced, OrderShipped))]`, or name a hand-written event enum with \
                     `#[aggregate(event = OrderEvent)]`",
                ),
                None => errors.push(syn::Error::new(
                    input.ident.span(),
                    "missing `#[aggregate(events(..))]`: under `#[derive(Aggregate)]`, list the events this \
                     aggregate applies, e.g. `#[aggregate(events(OrderPlaced, OrderShipped))]`, or name a \
                     hand-written event enum with `#[aggregate(event = OrderEvent)]`",
                )),
            }
            None
        }
        (None, Some((_, path))) => {
            if let Some((keyword, _)) = &args.event_enum {
                errors.at(
                    keyword,
                    "`event_enum = ..` names the generated enum, but `event = ..` uses your own: remove `event_enum`",
                );
            }
            Some(Events::HandWritten(path.clone()))
        }
        (Some(list), None) => {
            if list.items.is_empty() {
                errors.at(
                    list.keyword,
                    "`events()` is empty: list at least one event type, e.g. `events(OrderPlaced)`",
                );
            }
            let mut variants: Vec<Variant> = Vec::with_capacity(list.items.len());
            for item in &list.items {
                let path = &item.path;
                let version = match &item.version {
                    Some((_, lit)) => match schema_version(lit, "version", errors) {
                        Some(version) => version,
                        None => continue,
                    },
                    None => 1,
                };
                let Some(last) = path.segments.last() else {
                    continue;
                };
                if !matches!(last.arguments, PathArguments::None) {
                    errors.at(
                        &last.arguments,
                        "an event type with generic arguments cannot name an enum variant: \
                         wrap it in a non-generic struct, or write the enum yourself and use `event = ..`",
                    );
                    continue;
                }
                if variants.iter().any(|v| v.ident == last.ident) {
                    errors.at(
                        path,
                        format!(
                            "`{}` is listed twice in `events(..)`: list each event type once",
                            last.ident
                        ),
                    );
                    continue;
                }
                variants.push(Variant {
                    path: path.clone(),
                    ident: last.ident.clone(),
                    version,
                });
            }
            Some(Events::Generated {
                enum_ident: enum_ident(input, args),
                variants,
            })
        }
    };

    if let (Some((keyword, _)), Some(_)) = (&args.upcasters, &args.event) {
        errors.at(
            keyword,
            "`upcasters = ..` registers the upcasters of the generated enum; with `event = ..`, \
             implement `DomainEvent::upcasters` on your own enum instead",
        );
    }
    let snapshot_version = match &args.snapshot_version {
        Some((_, lit)) => Some(schema_version(lit, "snapshot_version", errors)?),
        None => None,
    };

    Some(Plan {
        type_name: type_name?,
        events: events?,
        upcasters: args.upcasters.as_ref().map(|(_, path)| path.clone()),
        snapshot_version,
    })
}
