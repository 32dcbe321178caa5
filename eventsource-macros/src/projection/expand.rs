//! The code `#[projection]` generates: the user's impl block as written, and a `Projection`
//! impl dispatching each event to the handler of its type.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Generics, Ident, Item, Type};

use super::args::Args;
use super::validate::{Handler, Plan, default_name};

/// The user's impl block and the `Projection` impl.
pub(crate) fn expand(plan: &Plan, args: &Args) -> TokenStream {
    let item = &plan.item;
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let projection_name = &plan.projection_name;

    // Each event type's `EventType` bound, spanned at the user's type: a type that is not
    // an event is then reported once, there, and not at every use below.
    let existing = where_clause
        .map(|w| w.predicates.iter())
        .into_iter()
        .flatten();
    let bounds = plan.handlers.iter().map(|h| {
        let event = &h.event;
        quote_spanned!(event.span()=> #event: ::eventsource_runtime::__private::EventType)
    });

    let handles = plan.handlers.iter().map(|h| {
        let event = &h.event;
        quote!(event_type == <#event as ::eventsource_runtime::__private::EventType>::EVENT_TYPE)
    });
    let arms = plan.handlers.iter().map(dispatch);
    let registries = plan.handlers.iter().map(|h| {
        let event = &h.event;
        quote!(<#event as ::eventsource_runtime::__private::EventType>::upcasters())
    });

    let tracing_enabled = args.enable_tracing.as_ref().map(|expr| {
        quote! {
            #[inline]
            fn tracing_enabled(&self) -> bool {
                #expr
            }
        }
    });
    let span_name = args.name.as_ref().map(|name| {
        quote! {
            #[inline]
            fn span_name(&self) -> ::core::option::Option<&str> {
                ::core::option::Option::Some(#name)
            }
        }
    });

    quote! {
        #item

        #[automatically_derived]
        #[::eventsource_runtime::__private::async_trait]
        impl #impl_generics ::eventsource_runtime::__private::Projection for #self_ty
        where
            #(#existing,)*
            #(#bounds,)*
        {
            #[inline]
            fn name(&self) -> &str {
                #projection_name
            }

            #[inline]
            fn handles(&self, event_type: &str) -> bool {
                #(#handles)||*
            }

            fn upcasters(&self) -> ::eventsource_runtime::__private::Upcasters {
                ::eventsource_runtime::__private::Upcasters::merge([#(#registries),*])
            }

            #tracing_enabled

            #span_name

            async fn handle(
                &mut self,
                envelope: &::eventsource_runtime::__private::EventEnvelope,
            ) -> ::core::result::Result<(), ::eventsource_runtime::__private::ProjectionError> {
                #(#arms else)* {
                    ::core::result::Result::Ok(())
                }
            }
        }
    }
}

/// `if the envelope holds this handler's event { decode it, call the handler }`.
fn dispatch(handler: &Handler) -> TokenStream {
    let Handler {
        method,
        event,
        envelope,
        is_async,
        output,
    } = handler;
    // The envelope argument, spanned at the user's parameter type: a parameter of another
    // type is reported there.
    let envelope_arg = envelope
        .as_ref()
        .map(|ty| quote_spanned!(ty.span()=> , envelope));
    let mut call = quote!(Self::#method(self, &event #envelope_arg));
    if *is_async {
        call = quote!(#call.await);
    }
    let result = match output {
        None => quote! {
            #call;
            ::core::result::Result::Ok(())
        },
        // Spanned at the user's return type: a type that is neither `()` nor a `Result`
        // is reported there.
        Some(ty) => {
            let output = Ident::new("output", ty.span());
            let convert = quote_spanned! {ty.span()=>
                ::eventsource_runtime::__private::projection::HandlerOutput::into_projection_result
            };
            quote! {
                let #output = #call;
                #convert(#output)
            }
        }
    };
    quote! {
        if let ::core::option::Option::Some(decoded) =
            ::eventsource_runtime::__private::projection::decode::<#event>(envelope)
        {
            let event = decoded?;
            #result
        }
    }
}

/// After an error: the item as written and, when it names the projection's type, a
/// `Projection` impl that handles nothing, so code registering the projection still
/// compiles and only the real error shows. A `Projection` impl written under the attribute
/// is replaced by that minimal one: its handlers would not fit the trait.
pub(crate) fn fallback(item: TokenStream, parsed: Option<&Item>, args: &Args) -> TokenStream {
    let mut item = Some(item);
    let target: Option<(TokenStream, &Generics, String)> = match parsed {
        Some(Item::Impl(i)) => {
            let self_ty: &Type = &i.self_ty;
            match &i.trait_ {
                None => {}
                Some((path, _))
                    if path
                        .segments
                        .last()
                        .is_some_and(|s| s.ident == "Projection") =>
                {
                    item = None;
                }
                Some(_) => return item.unwrap_or_default(),
            }
            Some((quote!(#self_ty), &i.generics, default_name(self_ty)))
        }
        Some(Item::Struct(s)) => {
            let (_, ty_generics, _) = s.generics.split_for_impl();
            let ident = &s.ident;
            Some((quote!(#ident #ty_generics), &s.generics, ident.to_string()))
        }
        Some(Item::Enum(e)) => {
            let (_, ty_generics, _) = e.generics.split_for_impl();
            let ident = &e.ident;
            Some((quote!(#ident #ty_generics), &e.generics, ident.to_string()))
        }
        _ => None,
    };
    let Some((self_ty, generics, default)) = target else {
        return item.unwrap_or_default();
    };
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let name = args
        .projection_name
        .as_ref()
        .map_or(default, syn::LitStr::value);
    quote! {
        #item

        #[automatically_derived]
        #[::eventsource_runtime::__private::async_trait]
        impl #impl_generics ::eventsource_runtime::__private::Projection for #self_ty #where_clause {
            fn name(&self) -> &str {
                #name
            }

            fn handles(&self, _: &str) -> bool {
                false
            }

            async fn handle(
                &mut self,
                _: &::eventsource_runtime::__private::EventEnvelope,
            ) -> ::core::result::Result<(), ::eventsource_runtime::__private::ProjectionError> {
                ::core::result::Result::Ok(())
            }
        }
    }
}
