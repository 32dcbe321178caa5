//! The code `#[command_handler]` generates.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{ImplItem, Type};

use super::args::Args;
use super::validate::Target;

/// The item with its telemetry settings, plus the generated impls.
pub(crate) fn expand(target: Target, args: &Args) -> TokenStream {
    let telemetry = telemetry_const(args);
    let command_impl = command_impl(&target, args);
    match target {
        Target::HandleImpl { mut item, .. } => {
            item.items.insert(0, ImplItem::Verbatim(telemetry));
            quote!(#item #command_impl)
        }
        Target::DecisionFn {
            item,
            aggregate,
            command,
            param: _,
            error,
        } => {
            let decide = &item.sig.ident;
            let output = &item.sig.output;
            quote! {
                #item

                #[automatically_derived]
                impl ::eventsource_runtime::__private::Handle<#command> for #aggregate {
                    type Error = #error;
                    #telemetry

                    #[inline]
                    fn handle(&self, command: #command) #output {
                        #decide(self, command)
                    }
                }

                #command_impl
            }
        }
    }
}

/// `const TELEMETRY: HandlerTelemetry = ..;`
fn telemetry_const(args: &Args) -> TokenStream {
    let enabled = args
        .enabled
        .as_ref()
        .map_or_else(|| quote!(true), ToTokens::to_token_stream);
    let span_name = args.name.as_ref().map_or_else(
        || quote!(::core::option::Option::None),
        |name| quote!(::core::option::Option::Some(#name)),
    );
    quote! {
        const TELEMETRY: ::eventsource_runtime::__private::HandlerTelemetry =
            ::eventsource_runtime::__private::HandlerTelemetry {
                enabled: #enabled,
                span_name: #span_name,
            };
    }
}

/// `impl Command for C` when `aggregate_id = ..` was given.
fn command_impl(target: &Target, args: &Args) -> TokenStream {
    let Some((_, aggregate_id)) = &args.aggregate_id else {
        return TokenStream::new();
    };
    let command = target.command();
    let param = match target {
        Target::HandleImpl {
            param: Some(param), ..
        }
        | Target::DecisionFn { param, .. } => param.clone(),
        Target::HandleImpl { param: None, .. } => return TokenStream::new(),
    };
    let command_type = args.command_type.as_ref().map_or_else(
        || {
            last_ident(command)
                .map_or_else(|| command.to_token_stream().to_string(), |i| i.to_string())
        },
        |(_, lit)| lit.value(),
    );
    quote! {
        #[automatically_derived]
        impl ::eventsource_runtime::__private::Command for #command {
            const TYPE: &'static str = #command_type;

            #[allow(unused_variables, clippy::redundant_locals)]
            fn aggregate_id(&self) -> ::std::string::String {
                let #param = self;
                ::std::string::ToString::to_string(&(#aggregate_id))
            }

            #[allow(unused_variables, unused_imports, clippy::redundant_locals)]
            fn shared_aggregate_id(&self) -> ::std::sync::Arc<str> {
                use ::eventsource_runtime::__private::aggregate_id::{
                    SharedDisplay as _, SharedText as _,
                };
                let #param = self;
                (&::eventsource_runtime::__private::aggregate_id::IdOf(&(#aggregate_id))).shared_id()
            }
        }
    }
}

fn last_ident(ty: &Type) -> Option<&syn::Ident> {
    match ty {
        Type::Path(path) => path.path.segments.last().map(|s| &s.ident),
        _ => None,
    }
}

/// After an error: with a recognised placement, the expansion with placeholders for the
/// arguments in question (no switch, an empty aggregate id), so the handler and its
/// command keep their impls and only the error shows; else the item as written (so its own
/// code still type-checks).
pub(crate) fn fallback(item: TokenStream, target: Option<Target>, args: &Args) -> TokenStream {
    let Some(target) = target else {
        return item;
    };
    let placeholders = Args {
        name: args.name.clone(),
        enabled: None,
        aggregate_id: args
            .aggregate_id
            .as_ref()
            .map(|(keyword, _)| (*keyword, syn::parse_quote!(::std::string::String::new()))),
        command_type: args.command_type.clone(),
    };
    expand(target, &placeholders)
}
