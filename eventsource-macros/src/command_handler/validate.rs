//! Recognises where `#[command_handler]` was put and checks the decision's shape.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens as _;
use syn::spanned::Spanned as _;
use syn::{
    Expr, FnArg, GenericArgument, Ident, ImplItem, Item, ItemFn, ItemImpl, Pat, ReturnType, Type,
};

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
    let Some((trait_path, _)) = &item.trait_ else {
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

/// Checks the arguments' expressions against a well-formed target: what is reported here
/// still leaves an expansion (with placeholders) that the rest of the program can use.
pub(crate) fn check_arguments(target: &Target, args: &Args, errors: &mut Errors) {
    if let Some(enabled) = &args.enabled {
        check_constant_switch(enabled, errors);
    }
    if let (
        Some((_, aggregate_id)),
        Target::HandleImpl {
            param: Some(param), ..
        }
        | Target::DecisionFn { param, .. },
    ) = (&args.aggregate_id, target)
    {
        check_aggregate_id(aggregate_id, param, errors);
    }
}

/// `enabled = ..` becomes the handler's `const TELEMETRY`: it cannot read `self` (the
/// service calls the handler on a state, and switches are per type).
fn check_constant_switch(enabled: &Expr, errors: &mut Errors) {
    let Some(self_token) = find_self(enabled.to_token_stream()) else {
        return;
    };
    errors.push(syn::Error::new(
        self_token.span(),
        "`enabled` of #[command_handler] is a constant (the handler's `TELEMETRY`), so it \
         cannot read `self`: write a constant expression (`enabled = false`, \
         `enabled = cfg!(feature = \"trace-commands\")`); to switch at run time, use the \
         process switch `telemetry::set_enabled(..)` or a component's `enable_tracing(..)` \
         (repository, store, bus)",
    ));
}

fn find_self(tokens: TokenStream) -> Option<Ident> {
    tokens.into_iter().find_map(|token| match token {
        TokenTree::Ident(ident) if ident == "self" => Some(ident),
        TokenTree::Group(group) => find_self(group.stream()),
        _ => None,
    })
}

/// `aggregate_id = ..` reads the command through the handler's parameter: a root that names
/// something else (`command.id` when the parameter is `cmd`) is reported at that name.
fn check_aggregate_id(aggregate_id: &Expr, param: &Ident, errors: &mut Errors) {
    let Some(root) = root_ident(aggregate_id) else {
        return;
    };
    let name = root.to_string();
    // A constant or a unit struct (`ID`, `Default`) is not a parameter mix-up.
    if root == param || name == "self" || name.starts_with(|c: char| c.is_ascii_uppercase()) {
        return;
    }
    let written = aggregate_id.to_token_stream().to_string().replace(' ', "");
    let instead = format!("{param}{}", written.strip_prefix(&name).unwrap_or(""));
    errors.at(
        root,
        format!(
            "`{name}` is not the handler's parameter: `aggregate_id` reads the command through \
             the parameter of `handle`, here `{param}`; write `aggregate_id = {instead}`"
        ),
    );
}

/// The variable a field or method chain starts from: `cmd` in `cmd.order.id.clone()`.
fn root_ident(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Field(field) => root_ident(&field.base),
        Expr::MethodCall(call) => root_ident(&call.receiver),
        Expr::Reference(reference) => root_ident(&reference.expr),
        Expr::Paren(paren) => root_ident(&paren.expr),
        Expr::Index(index) => root_ident(&index.expr),
        Expr::Path(path) if path.qself.is_none() => path.path.get_ident(),
        _ => None,
    }
}
