//! The aggregate id an `aggregate_id = ..` expression gives, as the runtime keeps it
//! (`Command::shared_aggregate_id`): the text `ToString` would give, written once into the
//! shared text.
//!
//! The expansion calls `(&IdOf(&expr)).shared_id()` with both traits in scope. Method
//! lookup tries the receiver as written before taking a reference to it, so an id that is
//! text ([`Text`]) is copied as it is, and any other `Display` (a number, a UUID) is
//! formatted (autoref specialization: the expression's type is known where it expands).

use std::borrow::Cow;
use std::fmt::Display;
use std::rc::Rc;
use std::sync::Arc;

use crate::event::shared_text::display_shared;

/// An `aggregate_id = ..` expression's value, borrowed.
pub struct IdOf<'a, T: ?Sized>(pub &'a T);

/// Types whose `Display` is their text as it is: copied, not formatted.
pub trait Text {
    /// The text.
    fn text(&self) -> &str;
}

impl Text for str {
    #[inline]
    fn text(&self) -> &str {
        self
    }
}

macro_rules! text_through_deref {
    ($($ty:ty),* $(,)?) => {$(
        impl Text for $ty {
            #[inline]
            fn text(&self) -> &str {
                self
            }
        }
    )*};
}
text_through_deref!(String, Box<str>, Arc<str>, Rc<str>, Cow<'_, str>);

impl<T: Text + ?Sized> Text for &T {
    #[inline]
    fn text(&self) -> &str {
        (**self).text()
    }
}

/// The id of text, copied into the shared text.
pub trait SharedText {
    /// The id, shared.
    fn shared_id(&self) -> Arc<str>;
}

impl<T: Text + ?Sized> SharedText for IdOf<'_, T> {
    #[inline]
    fn shared_id(&self) -> Arc<str> {
        Arc::from(self.0.text())
    }
}

/// Any other id, formatted into the shared text.
pub trait SharedDisplay {
    /// The id, shared.
    fn shared_id(&self) -> Arc<str>;
}

impl<T: Display + ?Sized> SharedDisplay for &IdOf<'_, T> {
    #[inline]
    fn shared_id(&self) -> Arc<str> {
        display_shared(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text whose `Display` is not its text: formatted, as `ToString` does.
    struct Prefixed(&'static str);

    impl Display for Prefixed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "order-{}", self.0)
        }
    }

    // Called as the expansion calls it: the borrow clippy finds needless for text ids is
    // what sends every other id to `SharedDisplay`.
    #[allow(clippy::needless_borrow)]
    #[test]
    fn each_kind_of_id_gives_the_text_to_string_gives() {
        let text = "42";
        let owned = String::from("43");
        let number = 44_u64;
        let prefixed = Prefixed("45");
        assert_eq!(&*(&IdOf(&text)).shared_id(), text.to_string());
        assert_eq!(&*(&IdOf(&owned)).shared_id(), owned.to_string());
        assert_eq!(&*(&IdOf(&&owned)).shared_id(), owned.to_string());
        assert_eq!(&*(&IdOf(&number)).shared_id(), number.to_string());
        assert_eq!(&*(&IdOf(&prefixed)).shared_id(), prefixed.to_string());
        let padded = format!("{:>4}", 7);
        assert_eq!(&*(&IdOf(&padded)).shared_id(), "   7");
    }
}
