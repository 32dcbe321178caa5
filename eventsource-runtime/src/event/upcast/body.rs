//! A payload on its way through an upcaster's steps: the stored text, a JSON tree, or the
//! typed value a conversion made; and why a step failed.

use std::any::Any;

use serde_json::Value;

/// A payload on its way through the steps: still the stored text, a JSON tree, or a typed
/// value a [`convert`](Upcasters::convert) made.
pub(crate) enum Body {
    /// The stored payload, untouched (renames only).
    Stored,
    /// A JSON tree.
    Json(Value),
    /// A typed value, and how to write it out.
    Typed(Typed),
}

/// A value a typed step made.
pub(crate) struct Typed {
    pub(super) value: Box<dyn Any + Send + Sync>,
    pub(super) to_json: fn(&(dyn Any + Send + Sync)) -> Result<Value, serde_json::Error>,
}

/// Why a step failed: the payload did not fit, or the user's function said no.
pub(crate) enum StepError {
    Json(serde_json::Error),
    Upcaster(super::UpcasterFailure),
}

impl From<serde_json::Error> for StepError {
    fn from(error: serde_json::Error) -> Self {
        Self::Json(error)
    }
}

/// `value` as JSON, when it is a `T` (what [`Typed::to_json`] holds for a `T`).
fn typed_to_json<T: serde::Serialize + 'static>(
    value: &(dyn Any + Send + Sync),
) -> Result<Value, serde_json::Error> {
    match value.downcast_ref::<T>() {
        Some(value) => serde_json::to_value(value),
        None => Err(serde::ser::Error::custom(
            "a typed upcaster's value is not of the type it was made as",
        )),
    }
}

impl Body {
    /// A typed step's result.
    pub(crate) fn typed<T: serde::Serialize + Send + Sync + 'static>(value: T) -> Self {
        Self::Typed(Typed {
            value: Box::new(value),
            to_json: typed_to_json::<T>,
        })
    }

    /// The body as a JSON tree (`stored`: the stored payload's text).
    pub(super) fn into_json(self, stored: &str) -> Result<Value, serde_json::Error> {
        match self {
            Self::Stored => serde_json::from_str(stored),
            Self::Json(value) => Ok(value),
            Self::Typed(typed) => (typed.to_json)(&*typed.value),
        }
    }

    /// The body as a `T`: parsed from the stored text straight, or taken as made.
    pub(crate) fn read<T: serde::de::DeserializeOwned + 'static>(
        self,
        stored: &str,
    ) -> Result<T, serde_json::Error> {
        match self {
            Self::Stored => serde_json::from_str(stored),
            Self::Json(value) => serde_json::from_value(value),
            Self::Typed(typed) => match typed.value.downcast::<T>() {
                Ok(value) => Ok(*value),
                Err(value) => serde_json::from_value((typed.to_json)(&*value)?),
            },
        }
    }
}
