//! Readings of the user's syntax that more than one macro makes.

use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::{GenericArgument, Item, Path, PathArguments, Token};

/// An item an attribute does not go on, in words (`a struct`), and the token an error
/// about it points at: its keyword, or the whole item when it has none.
pub(crate) fn describe(item: &Item) -> (&'static str, &dyn ToTokens) {
    match item {
        Item::Fn(f) => ("a function", &f.sig.fn_token),
        Item::Struct(s) => ("a struct", &s.struct_token),
        Item::Enum(e) => ("an enum", &e.enum_token),
        Item::Union(u) => ("a union", &u.union_token),
        Item::Impl(i) => ("an `impl` block", &i.impl_token),
        Item::Trait(t) => ("a trait", &t.trait_token),
        Item::Mod(m) => ("a module", &m.mod_token),
        Item::Const(c) => ("a constant", &c.const_token),
        Item::Static(s) => ("a static", &s.static_token),
        Item::Type(t) => ("a type alias", &t.type_token),
        Item::Use(u) => ("a `use`", &u.use_token),
        Item::Macro(m) => ("a macro", &m.mac.path),
        Item::ForeignMod(f) => ("an `extern` block", &f.abi),
        other => ("this item", other),
    }
}

/// The generic arguments of `path` when its last segment is `name<..>`: `T, E` of
/// `Result<T, E>` or of `std::result::Result<T, E>`.
pub(crate) fn generic_args<'a>(
    path: &'a Path,
    name: &str,
) -> Option<&'a Punctuated<GenericArgument, Token![,]>> {
    let last = path.segments.last()?;
    if last.ident != name {
        return None;
    }
    match &last.arguments {
        PathArguments::AngleBracketed(generic) => Some(&generic.args),
        _ => None,
    }
}
