//! Checks the annotated item and turns its handler methods into an expansion plan.

use quote::ToTokens;
use syn::{
    FnArg, GenericParam, Ident, ImplItem, ImplItemFn, Item, ItemImpl, LitStr, ReturnType,
    Signature, Type,
};

use super::args::Args;
use crate::errors::Errors;

/// The handler shape, for errors about a `&mut self` method that does not have it.
const SHAPE: &str = "every `&mut self` method of a #[projection] impl is an event handler, \
     `fn on_order_placed(&mut self, event: &OrderPlaced)` (optionally `async`, optionally with \
     a second parameter `envelope: &EventEnvelope`, returning `()` or `Result<(), E>`); \
     move other `&mut self` methods to a separate `impl` block";

/// What to write instead, for `#[projection]` on an item that is not an inherent impl.
const PLACEMENT: &str = "it goes on the projection's inherent `impl` block, whose \
     `&mut self` methods handle one event type each: write \
     `#[projection] impl OrderList { fn on_order_placed(&mut self, event: &OrderPlaced) { .. } }`";

/// What to generate.
pub(crate) struct Plan {
    /// The user's impl block, re-emitted as written.
    pub(crate) item: ItemImpl,
    /// `Projection::name`.
    pub(crate) projection_name: String,
    /// The handlers, in declaration order.
    pub(crate) handlers: Vec<Handler>,
}

/// One event handler method.
pub(crate) struct Handler {
    /// The method's name.
    pub(crate) method: Ident,
    /// The event type (the referent of the `&SomeEvent` parameter), as the user wrote it.
    pub(crate) event: Type,
    /// The envelope parameter's referent (`EventEnvelope`), when the handler takes one.
    pub(crate) envelope: Option<Type>,
    /// Whether the method is `async`.
    pub(crate) is_async: bool,
    /// The return type, unless it is `()`.
    pub(crate) output: Option<Type>,
}

/// The projection's default name: its type's name.
pub(crate) fn default_name(self_ty: &Type) -> String {
    match self_ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last().map_or_else(
            || self_ty.to_token_stream().to_string(),
            |segment| segment.ident.to_string(),
        ),
        _ => self_ty.to_token_stream().to_string(),
    }
}

/// Validates `item` for `args`, recording every problem in `errors`.
pub(crate) fn validate(item: &Item, args: &Args, errors: &mut Errors) -> Option<Plan> {
    let non_empty = |lit: &Option<LitStr>, what: &str, example: &str, errors: &mut Errors| {
        if let Some(lit) = lit
            && lit.value().trim().is_empty()
        {
            errors.at(lit, format!("{what} is empty: write e.g. `{example}`"));
        }
    };
    non_empty(
        &args.name,
        "the span name",
        "name = \"projection.orders\"",
        errors,
    );
    non_empty(
        &args.projection_name,
        "the projection name",
        "projection_name = \"OrderList\"",
        errors,
    );

    let item = match item {
        Item::Impl(item) => item,
        other => {
            let (what, at): (&str, &dyn ToTokens) = match other {
                Item::Fn(_) | Item::Trait(_) | Item::Mod(_) => crate::syntax::describe(other),
                // The projection's own struct or enum, most likely.
                Item::Struct(s) => ("the struct", &s.struct_token),
                Item::Enum(e) => ("the enum", &e.enum_token),
                _ => ("this item", other),
            };
            errors.at(
                at,
                format!("#[projection] does not go on {what}: {PLACEMENT}"),
            );
            return None;
        }
    };

    if let Some((path, _)) = &item.trait_ {
        errors.at(
            path,
            format!(
                "#[projection] does not go on a trait impl, it writes the `Projection` impl \
                 itself; {PLACEMENT}"
            ),
        );
        return None;
    }

    let mut handlers: Vec<Handler> = Vec::new();
    let mut misshapen = false;
    for member in &item.items {
        let ImplItem::Fn(method) = member else {
            continue;
        };
        if !takes_mut_self(&method.sig) {
            continue;
        }
        match handler(method) {
            Ok(handler) => {
                let key = type_key(&handler.event);
                if let Some(first) = handlers.iter().find(|h| type_key(&h.event) == key) {
                    errors.at(
                        &handler.event,
                        format!(
                            "`{key}` is already handled by `{}`: a projection has one handler \
                             per event type, merge the two",
                            first.method
                        ),
                    );
                } else {
                    handlers.push(handler);
                }
            }
            Err(e) => {
                misshapen = true;
                errors.push(e);
            }
        }
    }
    if handlers.is_empty() && !misshapen {
        errors.at(
            &item.self_ty,
            "this #[projection] impl has no event handler: add a method \
             `fn on_order_placed(&mut self, event: &OrderPlaced)` for each event type the \
             projection handles (methods taking `&self` are left alone)",
        );
    }

    let projection_name = args
        .projection_name
        .as_ref()
        .map_or_else(|| default_name(&item.self_ty), LitStr::value);
    Some(Plan {
        item: item.clone(),
        projection_name,
        handlers,
    })
}

/// A type as written, without the spaces token printing adds (`a::B`, not `a :: B`): two
/// handlers whose event types read the same take the same events.
fn type_key(ty: &Type) -> String {
    ty.to_token_stream().to_string().replace(' ', "")
}

/// Whether the method's receiver is `&mut self` (or `self: &mut Self`).
fn takes_mut_self(sig: &Signature) -> bool {
    matches!(
        sig.inputs.first(),
        Some(FnArg::Receiver(receiver))
            if match &receiver.kind {
                syn::ReceiverKind::Reference(_, _, mutability) => mutability.is_some(),
                syn::ReceiverKind::Typed(_, ty) => matches!(&**ty, Type::Reference(r) if r.mutability.is_some()),
                _ => false,
            }
    )
}

/// Reads a `&mut self` method as an event handler, or says what its shape should be.
fn handler(method: &ImplItemFn) -> syn::Result<Handler> {
    let sig = &method.sig;
    let method_name = &sig.ident;
    if let syn::Safety::Unsafe(unsafety) = &sig.safety {
        return Err(syn::Error::new_spanned(
            unsafety,
            format!("`{method_name}` is not an event handler: it cannot be `unsafe`; {SHAPE}"),
        ));
    }
    if let Some(param) = sig
        .generics
        .params
        .iter()
        .find(|p| !matches!(p, GenericParam::Lifetime(_)))
    {
        return Err(syn::Error::new_spanned(
            param,
            format!(
                "`{method_name}` is not an event handler: it cannot be generic, the event type \
                 picks the handler; {SHAPE}"
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            variadic,
            format!("`{method_name}` is not an event handler: it cannot be variadic; {SHAPE}"),
        ));
    }

    let mut params = sig.inputs.iter().skip(1);
    let Some(event) = params.next() else {
        return Err(syn::Error::new_spanned(
            method_name,
            format!("`{method_name}` is not an event handler: it takes no event; {SHAPE}"),
        ));
    };
    let event = shared_ref(event, |ty| match ty {
        Type::Reference(_) => format!(
            "`{method_name}` is not an event handler: it takes its event by shared reference, \
             `&{}`; {SHAPE}",
            referent(ty).to_token_stream()
        ),
        _ => format!(
            "`{method_name}` is not an event handler: its first parameter is the event, by \
             reference (write `&{}` if that is the event type); {SHAPE}",
            ty.to_token_stream()
        ),
    })?;
    let envelope = params
        .next()
        .map(|param| {
            let wanted = |_: &Type| {
                format!(
                    "`{method_name}` is not an event handler: its second parameter, if any, is \
                     the event's envelope, `envelope: &EventEnvelope`; {SHAPE}"
                )
            };
            let referent = shared_ref(param, wanted)?;
            match referent {
                Type::Path(path)
                    if path.qself.is_none()
                        && path
                            .path
                            .segments
                            .last()
                            .is_some_and(|s| s.ident == "EventEnvelope") =>
                {
                    Ok(referent.clone())
                }
                other => Err(syn::Error::new_spanned(other, wanted(other))),
            }
        })
        .transpose()?;
    if let Some(extra) = params.next() {
        return Err(syn::Error::new_spanned(
            extra,
            format!(
                "`{method_name}` is not an event handler: it takes the event and, optionally, \
                 its envelope, nothing else; {SHAPE}"
            ),
        ));
    }

    let output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) if matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()) => None,
        ReturnType::Type(_, ty) => Some((**ty).clone()),
    };
    Ok(Handler {
        method: method_name.clone(),
        event: event.clone(),
        envelope,
        is_async: sig.asyncness.is_some(),
        output,
    })
}

/// The referent `T` of a `name: &T` parameter, or an error at the parameter's type saying
/// `wanted(type)`.
fn shared_ref(param: &FnArg, wanted: impl FnOnce(&Type) -> String) -> syn::Result<&Type> {
    match param {
        FnArg::Typed(typed) => match &*typed.ty {
            Type::Reference(r) if r.mutability.is_none() => Ok(&r.elem),
            other => Err(syn::Error::new_spanned(other, wanted(other))),
        },
        FnArg::Receiver(receiver) => Err(syn::Error::new_spanned(receiver, SHAPE)),
    }
}

/// `T` for `&mut T`, else the type itself (for suggestions).
fn referent(ty: &Type) -> &Type {
    match ty {
        Type::Reference(r) => &r.elem,
        other => other,
    }
}
