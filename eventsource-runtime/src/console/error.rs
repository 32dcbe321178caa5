//! What a console request can fail with, and how it is answered: a status code and
//! `{"error": "..."}`, the message with its sources. Whatever the error, nothing changed
//! (but a broker or store that failed midway through an action).

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::bus::BusError;
use crate::operate::OperateError;
use crate::store::StoreError;

/// Why the console refused or failed a request, or a [`Console`](super::Console) could not
/// be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// A value given is not acceptable (a malformed stream id, a position past the head,
    /// a body that is not the JSON expected): 400.
    #[error("{0}")]
    BadRequest(String),
    /// What was named does not exist (an unknown projection, queue or action): 404.
    #[error("{0}")]
    NotFound(String),
    /// An action without the admin token, or with another: 401.
    #[error("{0}")]
    Unauthorized(String),
    /// An action the console does not allow (read-only, no admin token configured, a
    /// cross-site request): 403.
    #[error("{0}")]
    Forbidden(String),
    /// A runner or worker holds what the change would touch (the command line's exit 4):
    /// 409, nothing changed.
    #[error("{0}")]
    Conflict(String),
    /// The store failed while doing `what`: 502.
    #[error("{what}")]
    Store {
        /// What the console was doing.
        what: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The broker failed while doing `what`: 502.
    #[error("{what}")]
    Broker {
        /// What the console was doing.
        what: String,
        /// The broker's error.
        #[source]
        source: BusError,
    },
    /// A builder setting is not acceptable (an empty token, a trace URL without
    /// `{trace_id}`).
    #[error("{0}")]
    Setting(String),
}

impl ConsoleError {
    /// The response's status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Store { .. } | Self::Broker { .. } => StatusCode::BAD_GATEWAY,
            Self::Setting(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error's type on an action's span (`error.type`).
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "ConsoleError::BadRequest",
            Self::NotFound(_) => "ConsoleError::NotFound",
            Self::Unauthorized(_) => "ConsoleError::Unauthorized",
            Self::Forbidden(_) => "ConsoleError::Forbidden",
            Self::Conflict(_) => "ConsoleError::Conflict",
            Self::Store { .. } => "ConsoleError::Store",
            Self::Broker { .. } => "ConsoleError::Broker",
            Self::Setting(_) => "ConsoleError::Setting",
        }
    }

    /// A broker error met while doing `what`.
    pub(super) fn broker(what: impl Into<String>) -> impl FnOnce(BusError) -> Self {
        let what = what.into();
        move |source| Self::Broker { what, source }
    }

    /// A store error met while doing `what`.
    pub(super) fn store(what: impl Into<String>) -> impl FnOnce(StoreError) -> Self {
        let what = what.into();
        move |source| Self::Store { what, source }
    }
}

impl From<OperateError> for ConsoleError {
    fn from(error: OperateError) -> Self {
        match error {
            OperateError::Store { what, source } => Self::Store { what, source },
            OperateError::NotFound(what) => Self::NotFound(what),
            OperateError::Refused(why) => Self::Conflict(why),
            other => Self::BadRequest(other.to_string()),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = crate::telemetry::values::Chain(&self).to_string();
        let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge =
                header::HeaderValue::from_static("Bearer realm=\"eventsource console\"");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}
