//! The code `#[traced]` generates.
//!
//! ```text
//! #[attrs] vis fn f(args) -> R {
//!     let span = if ::eventsource_runtime::__private::is_enabled() && (enabled) {
//!         if traced::has_direct() {
//!             // eventsource's layer is installed: the span on the SDK directly
//!             if tracing::enabled!(kind: SPAN, INFO) {
//!                 traced::start_direct("f", SpanKind::Internal, [("key", value), ..])
//!             } else { TracedSpan::none() }
//!         } else {
//!             TracedSpan::from(tracing::span!(INFO, "f", otel.kind = .., key = value, ..))
//!         }
//!         // a method names its span `{ static NAMES: MethodNames; NAMES.get::<Self>("f") }`
//!     } else {
//!         TracedSpan::none()
//!     };
//!     ::eventsource_runtime::__private::traced::run_sync::<R, _, _>(span, move || { body }, outcome)
//!     // async fn: run_async::<R, _, _>(span, async move { body }, outcome).await
//! }
//! ```
//!
//! Either way the field expressions are only evaluated when the span is recorded: on the
//! `tracing` path `tracing` evaluates them only when the callsite is enabled. `R` is the
//! declared return type (with `impl Trait` as `_`), so `?` and `return` in the body keep
//! their meaning. `outcome` records an `Err` (and the return value for `ret`).

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, GenericArgument, ItemFn, LitStr, PathArguments, ReturnType, Type, TypeInfer};

use super::args::{Key, Sigil, SpanName};
use super::validate::{AsyncTraitBody, Name, Plan, async_trait_body};

/// The function, instrumented (or unchanged without the `tracing` feature).
pub(crate) fn expand(function: &ItemFn, plan: &Plan<'_>) -> TokenStream {
    if !cfg!(feature = "tracing") {
        return untraced(function, plan);
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
        ..
    } = function;
    let span = Ident::new("traced_span", Span::mixed_site());
    let span_expr = span_expr(function, plan);
    let outcome = outcome(plan);
    if let Some(body) = async_trait_body(function) {
        // `#[async_trait]` ran first: instrument the future it boxes. The span is built when
        // the method is called (where `#[async_trait]` evaluates the arguments too).
        let AsyncTraitBody {
            before,
            pin,
            block,
            output,
        } = body;
        let output = output.map_or_else(|| quote!(_), turbofish);
        return quote! {
            #(#attrs)*
            #vis #sig {
                let #span = #span_expr;
                #(#before)*
                #pin(::eventsource_runtime::__private::traced::run_async::<#output, _, _>(
                    #span,
                    #block,
                    #outcome,
                ))
            }
        };
    }
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => turbofish(ty),
    };
    let run = if sig.asyncness.is_some() {
        quote! {
            ::eventsource_runtime::__private::traced::run_async::<#output, _, _>(
                #span,
                async move #block,
                #outcome,
            )
            .await
        }
    } else {
        quote! {
            ::eventsource_runtime::__private::traced::run_sync::<#output, _, _>(
                #span,
                move || #block,
                #outcome,
            )
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            let #span = #span_expr;
            #run
        }
    }
}

/// `if switches { direct span, or span!(..) } else { none }`: see the module docs of
/// `eventsource_runtime::__private::traced`.
fn span_expr(function: &ItemFn, plan: &Plan<'_>) -> TokenStream {
    let tracing = quote!(::eventsource_runtime::__private::traced::tracing);
    let traced = quote!(::eventsource_runtime::__private::traced);
    let (name, otel_name, direct_name) = match &plan.name {
        Name::Given(SpanName::Lit(lit)) => (lit.to_token_stream(), None, lit.to_token_stream()),
        Name::Given(SpanName::Const(path)) => {
            (path.to_token_stream(), None, path.to_token_stream())
        }
        Name::Function(name) => {
            let lit = LitStr::new(name, function.sig.ident.span()).into_token_stream();
            (lit.clone(), None, lit)
        }
        Name::Method(name) => {
            // `{Self}.{method}`, formatted once per `Self` type (not per span) and kept in a
            // `static` here.
            let method = LitStr::new(name, function.sig.ident.span());
            let names = Ident::new("TRACED_METHOD_NAMES", Span::mixed_site());
            let lookup = quote! {{
                static #names: #traced::MethodNames = #traced::MethodNames::new();
                #names.get::<Self>(#method)
            }};
            (
                method.to_token_stream(),
                Some(quote!(otel.name = %#lookup,)),
                lookup,
            )
        }
    };
    let kind = plan.kind.as_ref().map(|kind| quote!(otel.kind = #kind,));
    let direct_kind = direct_kind(plan.kind.as_deref());
    let attributes = plan.attributes.iter().map(|attribute| {
        let key = &attribute.key;
        let value = plain(&attribute.value);
        quote!(#key = #value,)
    });
    // `%value` / `?value`: borrowed once as `&dyn Display` / `&dyn Debug`, spanned at the
    // user's expression, and that borrow is what both paths record: a type without the
    // trait is one error at the value, not one per use inside `tracing`'s macros.
    let bindings: Vec<TokenStream> = plan
        .fields
        .iter()
        .enumerate()
        .filter_map(|(i, field)| {
            let value = grouped(&field.value);
            let format = match &field.sigil {
                Sigil::Plain => return None,
                Sigil::Display(_) => quote!(::core::fmt::Display),
                Sigil::Debug(_) => quote!(::core::fmt::Debug),
            };
            let name = Ident::new(&format!("__eventsource_field_{i}"), Span::mixed_site());
            Some(quote_spanned! {field.value.span()=>
                let #name: &dyn #format = &#value;
            })
        })
        .collect();
    let formatted_name =
        |i: usize| Ident::new(&format!("__eventsource_field_{i}"), Span::mixed_site());
    let fields = plan.fields.iter().enumerate().map(|(i, field)| {
        let key = &field.key;
        let name = formatted_name(i);
        match &field.sigil {
            Sigil::Plain => {
                let value = plain(&field.value);
                quote!(#key = #value,)
            }
            Sigil::Display(sigil) => quote!(#key = #sigil #name,),
            Sigil::Debug(sigil) => quote!(#key = #sigil #name,),
        }
    });
    let direct_attributes = plan
        .attributes
        .iter()
        .map(|attribute| {
            let key = direct_key(&attribute.key);
            let value = match &attribute.value {
                Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(lit),
                    ..
                }) => quote!(#traced::static_str(#lit)),
                value => direct_plain(value),
            };
            quote!((#key, #value),)
        })
        .chain(plan.fields.iter().enumerate().map(|(i, field)| {
            let key = direct_key(&field.key);
            let name = formatted_name(i);
            let value = match &field.sigil {
                Sigil::Plain => direct_plain(&field.value),
                Sigil::Display(_) => quote!(#traced::display(#name)),
                Sigil::Debug(_) => quote!(#traced::debug(#name)),
            };
            quote!((#key, #value),)
        }));
    // Through `switch`, so a non-`bool` is reported at the expression with what to write.
    let enabled = plan.enabled.map(|expr| {
        let grouped = grouped(expr);
        let switch = quote_spanned! {expr.span()=>
            ::eventsource_runtime::__private::traced::Switch::into_bool(#grouped)
        };
        quote!(&& #switch)
    });
    quote! {
        if ::eventsource_runtime::__private::is_enabled() #enabled {
            #(#bindings)*
            if #traced::has_direct() {
                if #tracing::enabled!(kind: #tracing::metadata::Kind::SPAN, #tracing::Level::INFO) {
                    #traced::start_direct(#direct_name, #direct_kind, [#(#direct_attributes)*])
                } else {
                    #traced::TracedSpan::none()
                }
            } else {
                #traced::TracedSpan::from(#tracing::span!(
                    #tracing::Level::INFO,
                    #name,
                    #otel_name
                    #kind
                    #(#attributes)*
                    #(#fields)*
                ))
            }
        } else {
            #traced::TracedSpan::none()
        }
    }
}

/// `SpanKind::..` for `kind = ..` (validated already: one of the five).
fn direct_kind(kind: Option<&str>) -> TokenStream {
    let variant = match kind {
        Some("client") => "Client",
        Some("server") => "Server",
        Some("producer") => "Producer",
        Some("consumer") => "Consumer",
        _ => "Internal",
    };
    let variant = Ident::new(variant, Span::call_site());
    quote!(::eventsource_runtime::__private::traced::SpanKind::#variant)
}

/// An attribute key as a `&'static str`.
fn direct_key(key: &Key) -> TokenStream {
    match key {
        Key::Const(_, expr) => grouped(expr),
        key => {
            let text = key.text().unwrap_or_default();
            LitStr::new(&text, key.span()).into_token_stream()
        }
    }
}

/// A value recorded as it is on the direct path, through `FieldValue::otel_value`.
fn direct_plain(value: &Expr) -> TokenStream {
    let grouped = grouped(value);
    quote_spanned! {value.span()=>
        ::eventsource_runtime::__private::traced::FieldValue::otel_value(&#grouped)
    }
}

/// A value recorded as it is, through `FieldValue` (integers as i64, strings as `&str`);
/// spanned at the value, where a type that cannot be recorded so is reported.
fn plain(value: &Expr) -> TokenStream {
    let grouped = grouped(value);
    quote_spanned! {value.span()=>
        ::eventsource_runtime::__private::traced::FieldValue::field_value(&#grouped)
    }
}

/// The user's expression in an invisible group, so it keeps its precedence wherever it is
/// put (without parentheses a lint could call unnecessary).
fn grouped(expr: &Expr) -> TokenStream {
    Group::new(Delimiter::None, expr.to_token_stream()).into_token_stream()
}

/// The closure that records the return value on the span, or `no_outcome`.
fn outcome(plan: &Plan<'_>) -> TokenStream {
    if !plan.result && plan.ret.is_none() {
        return quote!(::eventsource_runtime::__private::traced::no_outcome);
    }
    let ret = Ident::new("traced_ret", Span::mixed_site());
    let span = Ident::new("traced_span", Span::mixed_site());
    // The checks are spanned at `err` / `ret`, their argument too (where rustc points): it is
    // wrapped in a call spanned there, as the hygienic binding alone would be shown at the
    // whole attribute.
    let assert = plan.err.map(|err| {
        quote_spanned! {err.span=>
            ::eventsource_runtime::__private::traced::IsResult::assert_result(
                ::eventsource_runtime::__private::traced::at(#ret),
            );
        }
    });
    let probe = plan.result.then(|| {
        quote! {
            #[allow(unused_imports)]
            use ::eventsource_runtime::__private::traced::probe::{
                NotAResult as _, ViaAnyResult as _, ViaBoxedError as _, ViaDebug as _,
                ViaDisplay as _, ViaError as _,
            };
            (&&&&&&::eventsource_runtime::__private::traced::probe::Probe(#ret)).traced_outcome(#span);
        }
    });
    let record_ret = plan.ret.map(|keyword| {
        quote_spanned! {keyword.span=>
            ::eventsource_runtime::__private::traced::TracedReturn::record_return(
                ::eventsource_runtime::__private::traced::at(#ret),
                #span,
            );
        }
    });
    quote! {
        |#ret, #span| {
            #assert
            #probe
            #record_ret
        }
    }
}

/// The return type as `run_*::<R, _, _>` takes it.
fn turbofish(ty: &Type) -> TokenStream {
    let mut ty = ty.clone();
    infer_opaque(&mut ty);
    ty.into_token_stream()
}

/// Replaces every `impl Trait` (and `!`) in a return type by `_`: the body's type is then
/// inferred there, and the rest of the type still guides `?` and `return`.
fn infer_opaque(ty: &mut Type) {
    match ty {
        Type::ImplTrait(_) | Type::Never(_) => {
            *ty = Type::Infer(TypeInfer {
                attrs: Vec::new(),
                underscore_token: syn::Token![_](ty.span()),
            });
        }
        Type::Path(path) => {
            if let Some(qself) = &mut path.qself {
                infer_opaque(&mut qself.ty);
            }
            for segment in &mut path.path.segments {
                match &mut segment.arguments {
                    PathArguments::AngleBracketed(args) => {
                        for arg in &mut args.args {
                            match arg {
                                GenericArgument::Type(ty) => infer_opaque(ty),
                                GenericArgument::AssocType(assoc) => infer_opaque(&mut assoc.ty),
                                _ => {}
                            }
                        }
                    }
                    PathArguments::Parenthesized(args) => {
                        args.inputs
                            .iter_mut()
                            .for_each(|arg| infer_opaque(&mut arg.ty));
                        if let ReturnType::Type(_, ty) = &mut args.output {
                            infer_opaque(ty);
                        }
                    }
                    PathArguments::None => {}
                }
            }
        }
        Type::Reference(r) => infer_opaque(&mut r.elem),
        Type::Ptr(p) => infer_opaque(&mut p.elem),
        Type::Slice(s) => infer_opaque(&mut s.elem),
        Type::Array(a) => infer_opaque(&mut a.elem),
        Type::Paren(p) => infer_opaque(&mut p.elem),
        Type::Group(g) => infer_opaque(&mut g.elem),
        Type::Tuple(t) => t.elems.iter_mut().for_each(infer_opaque),
        _ => {}
    }
}

/// Without the `tracing` feature: the function as written, plus a never-called closure
/// naming the `fields(..)` values, so a parameter read only there is not reported unused.
fn untraced(function: &ItemFn, plan: &Plan<'_>) -> TokenStream {
    if plan.fields.is_empty() {
        return function.to_token_stream();
    }
    let values = plan.fields.iter().map(|field| &field.value);
    let mut function = function.clone();
    let mention: syn::Stmt = syn::parse_quote! {
        let _ = || {
            let _ = (#(&(#values),)*);
        };
    };
    function.block.stmts.insert(0, mention);
    function.to_token_stream()
}
