//! Span names of `#[traced]` methods: `{Type}.{method}`.

use std::any::type_name;
use std::fmt::{self, Debug, Display};
use std::marker::PhantomData;
use std::sync::OnceLock;

/// The span name `{Type}.{method}` of a method, formatted only when the span is recorded.
///
/// `{Type}` is the short name of `T` (`Self`): the last path segment of
/// `std::any::type_name::<T>()`, without generic arguments.
pub struct MethodName<T: ?Sized> {
    method: &'static str,
    ty: PhantomData<fn() -> *const T>,
}

impl<T: ?Sized> MethodName<T> {
    /// The name of `method` on `T`.
    #[inline]
    #[must_use]
    pub const fn new(method: &'static str) -> Self {
        Self {
            method,
            ty: PhantomData,
        }
    }
}

impl<T: ?Sized> Display for MethodName<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", short_type_name(type_name::<T>()), self.method)
    }
}

impl<T: ?Sized> Debug for MethodName<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Display::fmt(self, f)
    }
}

/// The span names `{Type}.{method}` of one `#[traced]` method, each formatted the first
/// time a span of it is recorded and then kept for the life of the process: the attribute
/// puts one in a `static` at the method, so a span costs a lookup instead of formatting
/// [`MethodName`] again.
///
/// There is one name per `Self` type that reaches the method, several only for a trait's
/// default method or a blanket impl (the monomorphizations share the `static`): a short
/// list, looked up by `type_name::<Self>()`, which is all the name depends on.
pub struct MethodNames {
    first: OnceLock<&'static MethodNameEntry>,
}

/// One `Self` type's name in [`MethodNames`]; never freed (there is at most one per
/// method and type in the program).
struct MethodNameEntry {
    ty: &'static str,
    name: &'static str,
    next: OnceLock<&'static MethodNameEntry>,
}

impl MethodNames {
    /// No name yet.
    #[inline]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            first: OnceLock::new(),
        }
    }

    /// The name of `method` on `T`, the same as `MethodName::<T>::new(method)` displays.
    #[inline]
    #[must_use]
    pub fn get<T: ?Sized>(&self, method: &'static str) -> &'static str {
        let ty = type_name::<T>();
        let mut slot = &self.first;
        loop {
            let entry = *slot.get_or_init(|| {
                Box::leak(Box::new(MethodNameEntry {
                    ty,
                    name: MethodName::<T>::new(method).to_string().leak(),
                    next: OnceLock::new(),
                }))
            });
            if std::ptr::eq(entry.ty, ty) || entry.ty == ty {
                return entry.name;
            }
            slot = &entry.next;
        }
    }
}

impl Default for MethodNames {
    fn default() -> Self {
        Self::new()
    }
}

/// `my_crate::orders::OrderService<alloc::string::String>` -> `OrderService`.
#[must_use]
pub fn short_type_name(full: &str) -> &str {
    let base = full.split('<').next().unwrap_or(full);
    let base = base
        .trim_start_matches('&')
        .trim_start_matches("mut ")
        .trim_start_matches("dyn ");
    base.rsplit("::").next().unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::{MethodName, MethodNames, short_type_name};

    #[test]
    fn short_type_names() {
        assert_eq!(
            short_type_name("my_crate::orders::OrderService"),
            "OrderService"
        );
        assert_eq!(short_type_name("a::Repo<alloc::string::String>"), "Repo");
        assert_eq!(short_type_name("&mut a::b::Svc"), "Svc");
        assert_eq!(short_type_name("Local"), "Local");
        struct Svc;
        assert_eq!(MethodName::<Svc>::new("run").to_string(), "Svc.run");
    }

    #[test]
    fn method_names_are_kept_per_self_type() {
        struct Svc;
        struct Repo<T>(T);
        static NAMES: MethodNames = MethodNames::new();
        let first = NAMES.get::<Svc>("run");
        assert_eq!(first, "Svc.run");
        assert!(
            std::ptr::eq(first, NAMES.get::<Svc>("run")),
            "formatted once"
        );
        assert_eq!(NAMES.get::<Repo<u8>>("run"), "Repo.run");
        assert_eq!(NAMES.get::<&mut Svc>("run"), "Svc.run");
        assert_eq!(NAMES.get::<Repo<String>>("run"), "Repo.run");
        assert_eq!(NAMES.get::<Svc>("run"), "Svc.run");
        assert_eq!(NAMES.get::<Repo<u8>>("run"), "Repo.run");
    }
}
