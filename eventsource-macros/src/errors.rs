//! Collects every error a macro finds, to report them all at once, and turns them into the
//! macro's output.

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;

/// Errors found so far, each spanned at the user's offending tokens.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Records an error pointing at `tokens`.
    pub(crate) fn at(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Whether nothing was recorded so far.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Records an error (possibly several combined).
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(existing) => existing.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// The value of `result`, or `None` with its error recorded.
    pub(crate) fn record<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// The macro's output: `expand(plan)` when there is a plan and nothing was recorded,
    /// else every error followed by `fallback(plan)`: a minimal item that lets the user's
    /// other code resolve (built from the plan when there is one), so these errors show and
    /// not a cascade.
    pub(crate) fn expand_or<P>(
        self,
        plan: Option<P>,
        expand: impl FnOnce(P) -> TokenStream,
        fallback: impl FnOnce(Option<P>) -> TokenStream,
    ) -> TokenStream {
        match (plan, self.0) {
            (Some(plan), None) => expand(plan),
            (plan, errors) => {
                let mut tokens = errors.map(|e| e.to_compile_error()).unwrap_or_default();
                tokens.extend(fallback(plan));
                tokens
            }
        }
    }
}
