//! What can go wrong, the exit code of each, and how it is told (one line on stderr).

use std::fmt::Write as _;
use std::process::ExitCode;

use eventsource_runtime::store::StoreError;

/// The store or the broker failed or cannot be reached.
pub const FAILED: u8 = 1;
/// Bad arguments or values (clap's own usage errors exit with 2 too).
pub const USAGE: u8 = 2;
/// What was named does not exist.
pub const NOT_FOUND: u8 = 3;
/// A worker holds what the command would change.
pub const REFUSED: u8 = 4;

/// Why a command failed. Whatever changes state checks all of these before it changes
/// anything, so a failed command changed nothing (but a store that fails midway).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The store failed.
    #[error("{what}")]
    Store {
        /// What the command was doing.
        what: String,
        #[source]
        source: StoreError,
    },
    /// The broker failed.
    #[cfg(feature = "broker")]
    #[error("{what}")]
    Broker {
        /// What the command was doing.
        what: String,
        #[source]
        source: eventsource_runtime::bus::BusError,
    },
    /// No tokio runtime could be started.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The service's health endpoint did not answer.
    #[error("cannot reach the service at {url}")]
    Service {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// An argument's value is not acceptable.
    #[error("{0}")]
    Usage(String),
    /// What was named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A worker holds what the command would change.
    #[error("{0}")]
    Refused(String),
    /// The output could not be written or encoded.
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

impl CliError {
    /// The error said of `subject` (`--also-store sqlite:billing.db`): its message starts
    /// with it, so that an operator who named several stores knows which one failed.
    pub fn about(self, subject: &str) -> Self {
        match self {
            Self::Store { what, source } => Self::Store {
                what: format!("{subject}: {what}"),
                source,
            },
            Self::Usage(said) => Self::Usage(format!("{subject}: {said}")),
            Self::NotFound(said) => Self::NotFound(format!("{subject}: {said}")),
            other => other,
        }
    }

    /// A store error met while doing `what`.
    pub fn store(what: impl Into<String>) -> impl FnOnce(StoreError) -> Self {
        let what = what.into();
        move |source| Self::Store { what, source }
    }

    pub fn code(&self) -> u8 {
        match self {
            Self::Store { .. } | Self::Service { .. } | Self::Runtime(_) | Self::Output(_) => {
                FAILED
            }
            #[cfg(feature = "broker")]
            Self::Broker { .. } => FAILED,
            Self::Usage(_) => USAGE,
            Self::NotFound(_) => NOT_FOUND,
            Self::Refused(_) => REFUSED,
        }
    }
}

/// Prints `error` with its sources on one line (`eventsource: error: ...: ...`) and
/// returns its exit code.
pub fn report(error: &CliError) -> ExitCode {
    let mut line = format!("eventsource: error: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        // A source whose text its error already ended with (sqlx's database errors) is
        // said once.
        let text = cause.to_string();
        if !line.ends_with(&text) {
            let _ = write!(line, ": {text}");
        }
        source = cause.source();
    }
    // A database's message may span lines: the report stays one.
    let line = line.replace('\n', " ");
    eprintln!("{line}");
    ExitCode::from(error.code())
}
