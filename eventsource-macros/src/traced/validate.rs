//! Checks the arguments against the function and turns them into an expansion plan.

use std::collections::{BTreeSet, HashSet};

use syn::{
    Expr, ExprAsync, FnArg, GenericArgument, Ident, ItemFn, Lit, Pat, ReturnType, Stmt, Type,
    TypeParamBound, UnOp,
};

use super::args::{Args, Attribute, Field, KINDS, Key, SpanName, kinds, kw};
use crate::errors::Errors;
use crate::syntax::generic_args;

/// What to generate.
pub(crate) struct Plan<'a> {
    /// The callsite's name, and whether the span is named `{Type}.{method}` at run time.
    pub(crate) name: Name<'a>,
    /// `otel.kind`, unless INTERNAL (the default).
    pub(crate) kind: Option<String>,
    /// Static attributes.
    pub(crate) attributes: &'a [Attribute],
    /// Dynamic fields.
    pub(crate) fields: &'a [Field],
    /// The instance/call switch.
    pub(crate) enabled: Option<&'a Expr>,
    /// Record the return value's `Debug`.
    pub(crate) ret: Option<kw::ret>,
    /// The return type is to be treated as a `Result`: by its name, or because of `err`.
    pub(crate) result: bool,
    /// `err` was given: check that the return type is a `Result`.
    pub(crate) err: Option<kw::err>,
}

/// The span's name.
pub(crate) enum Name<'a> {
    /// `name = "..."`: the callsite's name.
    Given(&'a SpanName),
    /// A free function (or one without `self`): its name.
    Function(String),
    /// A method: `{Type}.{method}`, the type's name found at run time.
    Method(String),
}

/// Validates `args` for `item`, recording every problem in `errors`.
pub(crate) fn validate<'a>(item: &'a ItemFn, args: &'a Args, errors: &mut Errors) -> Plan<'a> {
    if let Some(constness) = &item.sig.constness {
        errors.at(
            constness,
            "#[traced] cannot go on a `const fn`: a span is recorded at run time; \
             remove `const`, or remove `#[traced]`",
        );
    }

    let kind = args.kind.as_ref().and_then(|(_, written, at)| {
        if KINDS.contains(&written.as_str()) {
            (written != "internal").then(|| written.clone())
        } else {
            let lower = written.to_ascii_lowercase();
            let hint = if KINDS.contains(&lower.as_str()) {
                format!("write `kind = {lower}`")
            } else {
                format!("write one of {}", kinds())
            };
            errors.push(syn::Error::new(
                *at,
                format!("unknown span kind `{written}`: {hint}"),
            ));
            None
        }
    });

    let params = parameters(item);
    let fn_name = item.sig.ident.to_string();
    let mut keys = HashSet::new();
    let attributes = args.attributes.as_ref().map_or(&[][..], |(_, a)| a);
    for attribute in attributes {
        check_key(&attribute.key, &mut keys, errors);
        check_static_value(&attribute.value, &params, errors);
    }
    let fields = args.fields.as_ref().map_or(&[][..], |(_, f)| f);
    for field in fields {
        check_key(&field.key, &mut keys, errors);
        if let Some(ident) = leading_ident(&field.value)
            && looks_like_a_variable(ident)
            && !params.contains(ident)
        {
            errors.at(ident, missing_parameter(ident, &fn_name, &params));
        }
    }

    let name = match &args.name {
        Some((_, name)) => {
            if let SpanName::Lit(lit) = name
                && lit.value().trim().is_empty()
            {
                errors.at(
                    lit,
                    "the span name is empty: write e.g. `name = \"orders.place\"`, or remove `name` \
                     for the default `{Type}.{method}` / function name",
                );
            }
            Name::Given(name)
        }
        None if item.sig.receiver().is_some() => Name::Method(fn_name),
        None => Name::Function(fn_name),
    };

    Plan {
        name,
        kind,
        attributes,
        fields,
        enabled: args.enabled.as_ref().map(|(_, e)| e),
        ret: args.ret,
        result: args.err.is_some()
            || match async_trait_body(item) {
                Some(body) => body.output.is_some_and(is_result),
                None => matches!(&item.sig.output, ReturnType::Type(_, ty) if is_result(ty)),
            },
        err: args.err,
    }
}

/// Records a duplicate or reserved key.
fn check_key(key: &Key, seen: &mut HashSet<String>, errors: &mut Errors) {
    let Some(text) = key.text() else { return };
    if text == "otel.name" || text == "otel.kind" {
        errors.at(
            key,
            format!(
                "`{text}` is set by #[traced]: write `{}` instead",
                if text == "otel.name" {
                    "name = \"..\""
                } else {
                    "kind = client"
                }
            ),
        );
    } else if text.starts_with("otel.") {
        errors.at(
            key,
            format!(
                "`{text}` is reserved: #[traced] sets the span's status from an `Err` or a panic; \
                 choose a key outside `otel.*`"
            ),
        );
    } else if !seen.insert(text.clone()) {
        errors.at(
            key,
            format!("the key `{text}` is given twice: give each attribute once"),
        );
    }
}

/// A static attribute's value is a literal (or a constant).
fn check_static_value(value: &Expr, params: &BTreeSet<Ident>, errors: &mut Errors) {
    if is_literal(value) {
        return;
    }
    if let Expr::Path(path) = value
        && path.qself.is_none()
    {
        if let Some(ident) = path.path.get_ident()
            && params.contains(ident)
        {
            errors.at(
                value,
                format!(
                    "`{ident}` is an argument, and `attributes(..)` holds static values: \
                     record it with `fields({ident})` or `fields(key = {ident})`"
                ),
            );
        }
        return;
    }
    errors.at(
        value,
        "`attributes(..)` holds static values (a string, number or bool literal, or a constant): \
         for a value computed from the arguments write `fields(key = expr)`",
    );
}

/// A string, number or bool literal, or a negative number.
fn is_literal(value: &Expr) -> bool {
    match value {
        Expr::Lit(lit) => matches!(
            lit.lit,
            Lit::Str(_) | Lit::Int(_) | Lit::Float(_) | Lit::Bool(_)
        ),
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => matches!(
            &*unary.expr,
            Expr::Lit(lit) if matches!(lit.lit, Lit::Int(_) | Lit::Float(_))
        ),
        _ => false,
    }
}

/// The names the function's parameters bind, and `self`.
fn parameters(item: &ItemFn) -> BTreeSet<Ident> {
    let mut names = BTreeSet::new();
    for input in &item.sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                names.insert(Ident::new("self", receiver.self_token.span));
            }
            FnArg::Typed(typed) => bindings(&typed.pat, &mut names),
        }
    }
    names
}

fn bindings(pat: &Pat, names: &mut BTreeSet<Ident>) {
    match pat {
        Pat::Ident(p) => {
            names.insert(p.ident.clone());
            if let Some((_, sub)) = &p.subpat {
                bindings(sub, names);
            }
        }
        Pat::Reference(p) => bindings(&p.pat, names),
        Pat::Paren(p) => bindings(&p.pat, names),
        Pat::Type(p) => bindings(&p.pat, names),
        Pat::Tuple(p) => p.elems.iter().for_each(|e| bindings(e, names)),
        Pat::TupleStruct(p) => p.elems.iter().for_each(|e| bindings(e, names)),
        Pat::Slice(p) => p.elems.iter().for_each(|e| bindings(e, names)),
        Pat::Struct(p) => p.fields.iter().for_each(|f| bindings(&f.pat, names)),
        Pat::Or(p) => p.cases.iter().for_each(|c| bindings(c, names)),
        _ => {}
    }
}

/// The identifier a simple path expression starts from: `customer_id`, `items` in
/// `items.len()`, `order` in `order.lines[0].sku`, `self` in `self.id`.
fn leading_ident(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        Expr::Field(e) => leading_ident(&e.base),
        Expr::MethodCall(e) => leading_ident(&e.receiver),
        Expr::Index(e) => leading_ident(&e.expr),
        Expr::Reference(e) => leading_ident(&e.expr),
        Expr::Paren(e) => leading_ident(&e.expr),
        Expr::Cast(e) => leading_ident(&e.expr),
        Expr::Unary(e) if matches!(e.op, UnOp::Deref(_)) => leading_ident(&e.expr),
        _ => None,
    }
}

/// Lower-case names are variables; `CONSTANTS` and `Types` are not checked.
fn looks_like_a_variable(ident: &Ident) -> bool {
    let name = ident.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    name.starts_with(|c: char| c.is_lowercase() || c == '_')
}

fn missing_parameter(ident: &Ident, fn_name: &str, params: &BTreeSet<Ident>) -> String {
    if ident == "self" {
        return format!(
            "`{fn_name}` has no `self` parameter: `fields(..)` reads the function's arguments"
        );
    }
    let listed = if params.is_empty() {
        format!("`{fn_name}` has none")
    } else {
        params
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "`{ident}` is not a parameter of `{fn_name}`: `fields(..)` reads the function's arguments ({listed}); \
         to record a value computed in the body, call \
         `eventsource_runtime::telemetry::set_attribute(\"key\", value)` there"
    )
}

/// Whether a type's last path segment ends in `Result` (`Result<T, E>`, `io::Result<T>`,
/// `anyhow::Result<T>`, `OrderResult`).
fn is_result(ty: &Type) -> bool {
    match ungroup(ty) {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident.to_string().ends_with("Result")),
        _ => false,
    }
}

fn ungroup(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Paren(p) => ty = &p.elem,
            Type::Group(g) => ty = &g.elem,
            _ => return ty,
        }
    }
}

/// An `async fn` that `#[async_trait]` (expanded first) turned into
/// `fn f(..) -> Pin<Box<dyn Future<Output = R> + ..>> { Box::pin(async move { .. }) }`.
pub(crate) struct AsyncTraitBody<'a> {
    /// The statements before `Box::pin(..)` (none in async-trait's output).
    pub(crate) before: &'a [Stmt],
    /// `Box::pin`, as written.
    pub(crate) pin: &'a Expr,
    /// The `async move { .. }` block.
    pub(crate) block: &'a ExprAsync,
    /// `R`, when it can be read from the return type.
    pub(crate) output: Option<&'a Type>,
}

/// Recognizes the body `#[async_trait]` generates for an `async fn`.
pub(crate) fn async_trait_body(item: &ItemFn) -> Option<AsyncTraitBody<'_>> {
    if item.sig.asyncness.is_some() {
        return None;
    }
    let (last, before) = item.block.stmts.split_last()?;
    let Stmt::Expr(Expr::Call(call), None) = last else {
        return None;
    };
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    let segments: Vec<String> = func
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    if !segments.ends_with(&["Box".to_owned(), "pin".to_owned()]) || call.args.len() != 1 {
        return None;
    }
    let Expr::Async(block) = &call.args[0] else {
        return None;
    };
    Some(AsyncTraitBody {
        before,
        pin: &call.func,
        block,
        output: future_output(&item.sig.output),
    })
}

/// `R` in `Pin<Box<dyn Future<Output = R> + ..>>`.
fn future_output(output: &ReturnType) -> Option<&Type> {
    fn only_type_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
        let Type::Path(path) = ungroup(ty) else {
            return None;
        };
        generic_args(&path.path, name)?
            .iter()
            .find_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
    }
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let boxed = only_type_arg(ty, "Pin")?;
    let Type::TraitObject(object) = ungroup(only_type_arg(boxed, "Box")?) else {
        return None;
    };
    object.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else {
            return None;
        };
        generic_args(&bound.path, "Future")?
            .iter()
            .find_map(|arg| match arg {
                GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
                _ => None,
            })
    })
}
