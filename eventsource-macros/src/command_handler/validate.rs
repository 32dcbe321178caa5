//! Recognises where `#[command_handler]` was put and checks the decision's shape.

use syn::spanned::Spanned as _;
use syn::{FnArg, GenericArgument, Ident, ImplItem, Item, ItemFn, ItemImpl, Pat, ReturnType, Type};

use super::args::Args;
use crate::errors::Errors;

/// Where the macro goes, and what to write instead anywhere else.
pub(crate) const PLACEMENT: &str = "#[command_handler] goes on an `impl Handle<Command> for Aggregate` block or on a \
     free decision function `fn decide(state: &Aggregate, command: Command) -> Result<Vec<AggregateEvent>, Error>`";

/// The two supported placements.
// One value per macro call: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Target {
    /// `impl Handle<C> for A { .. }`: add the telemetry settings to it.
    HandleImpl {
        item: Box<ItemImpl>,
        command: Type,
        /// The name of `handle`'s command parameter, for `aggregate_id = ..`.
        param: Option<Ident>,
    },
    /// A free decision function: keep it and generate `impl Handle<C> for A` calling it.
    DecisionFn {
        item: Box<ItemFn>,
        aggregate: Type,
        command: Type,
        param: Ident,
        error: Type,
    },
}

impl Target {
    /// The command type.
    pub(crate) fn command(&self) -> &Type {
        match self {
            Self::HandleImpl { command, .. } | Self::DecisionFn { command, .. } => command,
        }
    }
}

/// Validates the item, recording every problem.
pub(crate) fn validate(item: Item, args: &Args, errors: &mut Errors) -> Option<Target> {
    let target = match item {
        Item::Impl(item) => handle_impl(item, errors),
        Item::Fn(item) => decision_fn(item, errors),
        // At the keyword of a struct, enum, trait or module; at the start of anything else.
        other @ (Item::Struct(_) | Item::Enum(_) | Item::Trait(_) | Item::Mod(_)) => {
            errors.at(crate::syntax::describe(&other).1, PLACEMENT);
            None
        }
        other => {
            errors.push(syn::Error::new(other.span(), PLACEMENT));
            None
        }
    }?;
    if let (Some((keyword, _)), Target::HandleImpl { param: None, .. }) =
        (&args.aggregate_id, &target)
    {
        errors.at(
            keyword,
            "`aggregate_id = ..` refers to the command by the name of `handle`'s command parameter, \
             but this impl has no `fn handle(&self, command: ..)`",
        );
    }
    if let (Some((keyword, _)), None) = (&args.command_type, &args.aggregate_id) {
        errors.at(
            keyword,
            "`command_type = ..` names the generated `impl Command`, which `aggregate_id = ..` asks for: \
             add `aggregate_id = ..`, or set `TYPE` in your own `impl Command`",
        );
    }
    Some(target)
}

fn handle_impl(item: ItemImpl, errors: &mut Errors) -> Option<Target> {
    let Some((_, trait_path, _)) = &item.trait_ else {
        errors.at(
            item.self_ty.as_ref(),
            format!("this is an inherent impl: {PLACEMENT}"),
        );
        return None;
    };
    let Some(generic) = crate::syntax::generic_args(trait_path, "Handle") else {
        errors.at(
            trait_path,
            format!("this impl is not of `Handle<Command>`: {PLACEMENT}"),
        );
        return None;
    };
    let command = match generic.first() {
        Some(GenericArgument::Type(command)) if generic.len() == 1 => command.clone(),
        _ => {
            errors.at(
                &trait_path.segments.last()?.arguments,
                "expected one command type: `Handle<PlaceOrder>`",
            );
            return None;
        }
    };
    for impl_item in &item.items {
        if let ImplItem::Const(c) = impl_item
            && c.ident == "TELEMETRY"
        {
            errors.at(
                &c.ident,
                "`TELEMETRY` is set by #[command_handler]: remove it and give `name = ..` / `enabled = ..` instead",
            );
        }
    }
    let param = item.items.iter().find_map(|impl_item| match impl_item {
        ImplItem::Fn(f) if f.sig.ident == "handle" => {
            f.sig.inputs.iter().nth(1).and_then(param_ident)
        }
        _ => None,
    });
    Some(Target::HandleImpl {
        item: Box::new(item),
        command,
        param,
    })
}

fn param_ident(arg: &FnArg) -> Option<Ident> {
    match arg {
        FnArg::Typed(typed) => match typed.pat.as_ref() {
            Pat::Ident(p) => Some(p.ident.clone()),
            _ => None,
        },
        FnArg::Receiver(_) => None,
    }
}

fn decision_fn(item: ItemFn, errors: &mut Errors) -> Option<Target> {
    let sig = &item.sig;
    let shape = "a decision function has the shape \
         `fn decide(state: &Aggregate, command: Command) -> Result<Vec<AggregateEvent>, Error>`";
    if let Some(asyncness) = &sig.asyncness {
        errors.at(asyncness, format!("a decision is synchronous (loading and saving happen around it): remove `async`; {shape}"));
    }
    if let Some(constness) = &sig.constness {
        errors.at(constness, format!("remove `const`: {shape}"));
    }
    if !sig.generics.params.is_empty() {
        errors.at(
            &sig.generics,
            format!("a decision function cannot be generic: {shape}"),
        );
    }
    let inputs: Vec<&FnArg> = sig.inputs.iter().collect();
    let (aggregate, command, param) = match inputs.as_slice() {
        [FnArg::Typed(state), FnArg::Typed(command)] => {
            let aggregate = match state.ty.as_ref() {
                Type::Reference(r) if r.mutability.is_none() => (*r.elem).clone(),
                other => {
                    errors.at(
                        other,
                        format!("the state is borrowed: write `state: &Aggregate`; {shape}"),
                    );
                    return None;
                }
            };
            let Some(param) = param_ident(inputs[1]) else {
                errors.at(
                    &command.pat,
                    "name the command parameter with an identifier, e.g. `command: PlaceOrder`",
                );
                return None;
            };
            (aggregate, (*command.ty).clone(), param)
        }
        _ => {
            errors.at(&sig.inputs, format!("expected two parameters: {shape}"));
            return None;
        }
    };
    let error = match result_error(&sig.output) {
        Some(error) => error,
        None => {
            match &sig.output {
                ReturnType::Default => {
                    errors.at(&sig.ident, format!("missing return type: {shape}"))
                }
                ReturnType::Type(_, ty) => errors.at(
                    ty,
                    format!("expected `Result<Vec<AggregateEvent>, Error>`: {shape}"),
                ),
            }
            return None;
        }
    };
    Some(Target::DecisionFn {
        item: Box::new(item),
        aggregate,
        command,
        param,
        error,
    })
}

/// `E` of a `-> Result<Vec<_>, E>` return type.
fn result_error(output: &ReturnType) -> Option<Type> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let Type::Path(path) = ty.as_ref() else {
        return None;
    };
    let generic = crate::syntax::generic_args(&path.path, "Result")?;
    match generic.iter().collect::<Vec<_>>().as_slice() {
        [
            GenericArgument::Type(Type::Path(ok)),
            GenericArgument::Type(error),
        ] if ok.path.segments.last().is_some_and(|s| s.ident == "Vec") => Some(error.clone()),
        _ => None,
    }
}
