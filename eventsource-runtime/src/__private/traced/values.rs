//! Values `#[traced]` records: as `tracing` fields, or as OpenTelemetry attribute values
//! on the direct path.

use std::borrow::Cow;
use std::fmt::{Debug, Display};
use std::sync::Arc;

use opentelemetry::{StringValue, Value};

/// A value `#[traced(fields(key = value))]` records as it is. Integers become OTel
/// integers (`i64`; a `u64` would otherwise arrive as a string), except a value beyond
/// `i64` (a `u64` above `i64::MAX`, say), which is recorded as its decimal string rather
/// than changed; floats `f64`, `bool` stays, and strings are recorded as `&str`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be recorded as a span attribute as it is",
    label = "write `%` before the value to record its `Display`, or `?` to record its `Debug`",
    note = "`fields(..)` records integers, floats, bools and strings as they are; \
            for any other type write e.g. `fields(order = %order_id, items = ?items)`"
)]
pub trait FieldValue {
    /// The `tracing` value recorded.
    type Out<'a>: tracing::Value
    where
        Self: 'a;

    /// The value to record through `tracing`.
    fn field_value(&self) -> Self::Out<'_>;

    /// The same value as an OpenTelemetry attribute value (`None` records nothing), for a
    /// span made on the direct path.
    fn otel_value(&self) -> Option<Value>;
}

macro_rules! int_field_value {
    ($($int:ty),*) => {$(
        #[diagnostic::do_not_recommend]
        impl FieldValue for $int {
            type Out<'a> = i64;
            #[inline]
            fn field_value(&self) -> i64 {
                i64::from(*self)
            }
            #[inline]
            fn otel_value(&self) -> Option<Value> {
                Some(Value::I64(self.field_value()))
            }
        }
    )*};
}

int_field_value!(i8, i16, i32, i64, u8, u16, u32);

/// Integer types with values beyond `i64`: such a value is recorded as its decimal string
/// (never a wrong number). `tracing`'s value trait is sealed, so on the `tracing` path the
/// value is boxed as one or the other.
macro_rules! wide_int_field_value {
    ($($int:ty),*) => {$(
        #[diagnostic::do_not_recommend]
        impl FieldValue for $int {
            type Out<'a> = Box<dyn tracing::Value>;
            #[inline]
            fn field_value(&self) -> Box<dyn tracing::Value> {
                match i64::try_from(*self) {
                    Ok(fits) => Box::new(fits),
                    Err(_) => Box::new(self.to_string()),
                }
            }
            #[inline]
            fn otel_value(&self) -> Option<Value> {
                Some(match i64::try_from(*self) {
                    Ok(fits) => Value::I64(fits),
                    Err(_) => Value::String(self.to_string().into()),
                })
            }
        }
    )*};
}

wide_int_field_value!(i128, isize, u64, u128, usize);

macro_rules! copy_field_value {
    ($($ty:ty => $out:ty),*) => {$(
        #[diagnostic::do_not_recommend]
        impl FieldValue for $ty {
            type Out<'a> = $out;
            #[inline]
            fn field_value(&self) -> $out {
                <$out>::from(*self)
            }
            #[inline]
            fn otel_value(&self) -> Option<Value> {
                Some(Value::from(self.field_value()))
            }
        }
    )*};
}

copy_field_value!(f32 => f64, f64 => f64, bool => bool);

macro_rules! str_field_value {
    ($($ty:ty),*) => {$(
        #[diagnostic::do_not_recommend]
        impl FieldValue for $ty {
            type Out<'a>
                = &'a str
            where
                Self: 'a;
            #[inline]
            fn field_value(&self) -> &str {
                self
            }
            #[inline]
            fn otel_value(&self) -> Option<Value> {
                Some(Value::String(StringValue::from(<str as ToOwned>::to_owned(self))))
            }
        }
    )*};
}

str_field_value!(str, String, Box<str>, Arc<str>, Cow<'_, str>);

/// A reference records what it points to.
macro_rules! deref_field_value {
    ($($reference:ty),*) => {$(
        #[diagnostic::do_not_recommend]
        impl<T: FieldValue + ?Sized> FieldValue for $reference {
            type Out<'a>
                = T::Out<'a>
            where
                Self: 'a;

            #[inline]
            fn field_value(&self) -> Self::Out<'_> {
                (**self).field_value()
            }

            #[inline]
            fn otel_value(&self) -> Option<Value> {
                (**self).otel_value()
            }
        }
    )*};
}

deref_field_value!(&T, &mut T);

/// `None` records nothing.
#[diagnostic::do_not_recommend]
impl<T: FieldValue> FieldValue for Option<T> {
    type Out<'a>
        = Option<T::Out<'a>>
    where
        Self: 'a;

    #[inline]
    fn field_value(&self) -> Self::Out<'_> {
        self.as_ref().map(|value| value.field_value())
    }

    #[inline]
    fn otel_value(&self) -> Option<Value> {
        self.as_ref().and_then(FieldValue::otel_value)
    }
}

/// `fields(key = %value)` on the direct path: the value's `Display`.
#[inline]
pub fn display<T: Display + ?Sized>(value: &T) -> Option<Value> {
    Some(Value::String(value.to_string().into()))
}

/// `fields(key = ?value)` on the direct path: the value's `Debug`.
#[inline]
pub fn debug<T: Debug + ?Sized>(value: &T) -> Option<Value> {
    Some(Value::String(format!("{value:?}").into()))
}

/// A string literal of `attributes(..)` on the direct path, kept without a copy.
#[inline]
#[must_use]
pub fn static_str(value: &'static str) -> Option<Value> {
    Some(Value::from(value))
}

#[cfg(test)]
mod tests {
    use super::{FieldValue, Value, debug, display};

    #[test]
    fn integers_become_i64() {
        assert_eq!(7_u32.field_value(), 7_i64);
        assert_eq!(i8::MIN.field_value(), -128_i64);
        assert_eq!(String::from("x").field_value(), "x");
        assert_eq!(Some(2_u8).field_value(), Some(2_i64));
    }

    #[test]
    fn otel_values_match_the_tracing_ones() {
        assert_eq!(7_u64.otel_value(), Some(Value::I64(7)));
        assert_eq!(
            u64::MAX.otel_value(),
            Some(Value::from("18446744073709551615".to_owned()))
        );
        assert_eq!(
            i128::MIN.otel_value(),
            Some(Value::from(i128::MIN.to_string()))
        );
        assert_eq!((&&3_usize).otel_value(), Some(Value::I64(3)));
        assert_eq!(1.5_f32.otel_value(), Some(Value::F64(1.5)));
        assert_eq!(true.otel_value(), Some(Value::Bool(true)));
        assert_eq!("x".otel_value(), Some(Value::from("x".to_owned())));
        assert_eq!(None::<u8>.otel_value(), None);
        assert_eq!(display(&7), Some(Value::from("7".to_owned())));
        assert_eq!(debug("a"), Some(Value::from("\"a\"".to_owned())));
    }
}
