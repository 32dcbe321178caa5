//! Dead letters: messages set aside because a handler kept failing on them, or because
//! they could not be read at all.

use async_trait::async_trait;

use super::{BusError, BusMessage};

/// A message one handler kept failing on, set aside after the last allowed delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The message, as published (headers included).
    pub message: BusMessage,
    /// The handler that failed.
    pub handler: String,
    /// How many times it was delivered to that handler.
    pub attempts: u32,
    /// The last error's `Display`.
    pub error: String,
}

/// A dead-lettered message whose body is not a stored event: it never reached a handler.
/// Kept as it came, with the reason, so that it can be inspected (and purged).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UndecodableLetter {
    /// The message id the broker or the headers gave it, if any.
    pub message_id: Option<String>,
    /// The body, as received.
    pub body: Vec<u8>,
    /// Why it could not be decoded (the decoding error's chain).
    pub reason: String,
}

impl UndecodableLetter {
    /// A body that could not be decoded, and why.
    #[must_use]
    pub fn new(message_id: Option<String>, body: Vec<u8>, reason: impl Into<String>) -> Self {
        Self {
            message_id,
            body,
            reason: reason.into(),
        }
    }
}

/// One entry of a broker's dead letters, as a `DeadLetters::list` returns it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "entries are listed for an operator, a few at a time; boxing the common one \
              would make every caller write through a box"
)]
pub enum DeadLetterEntry {
    /// A stored event a handler failed on at every allowed delivery.
    Failed(DeadLetter),
    /// A message that is not a stored event.
    Undecodable(UndecodableLetter),
}

impl DeadLetterEntry {
    /// The failed delivery, if this entry is one.
    #[must_use]
    pub fn as_failed(&self) -> Option<&DeadLetter> {
        match self {
            Self::Failed(letter) => Some(letter),
            Self::Undecodable(_) => None,
        }
    }

    /// The undecodable message, if this entry is one.
    #[must_use]
    pub fn as_undecodable(&self) -> Option<&UndecodableLetter> {
        match self {
            Self::Undecodable(letter) => Some(letter),
            Self::Failed(_) => None,
        }
    }
}

/// One consumer group's dead letters on a broker, whichever broker: what the command line and
/// the console list, move back and purge. Each broker's `DeadLetters` implements it
/// (`rabbitmq::DeadLetters`, `kafka::DeadLetters`, `nats::DeadLetters`); open one from a URL
/// and a group name with `operate::DeadLetterAddress`.
///
/// Counts are `u64` whatever the broker counts in.
#[async_trait]
pub trait DeadLetterQueue: Send + Sync + std::fmt::Debug {
    /// The broker's name (`messaging.system`: `rabbitmq`, `kafka`, `nats`).
    fn system(&self) -> &'static str;

    /// Where the dead letters are kept, for a person: `queue shop.mailer.dead`,
    /// `topic shop.mailer.dead`, `subject shop-dead.mailer`.
    fn location(&self) -> String;

    /// Whether the broker knows the consumer group (its queue, dead-letter topic or durable
    /// consumer exists), asked without creating anything: a misspelt group is not made.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached.
    async fn group_exists(&self) -> Result<bool, BusError>;

    /// How many messages are dead-lettered.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached.
    async fn count(&self) -> Result<u64, BusError>;

    /// The first `max` dead letters, oldest first, left in place.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached.
    async fn list(&self, max: usize) -> Result<Vec<DeadLetterEntry>, BusError>;

    /// Moves every dead letter that is a stored event back to the group, for the handlers
    /// that failed on it, with a fresh budget of deliveries; returns how many moved.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached; the messages moved
    /// before the failure stay moved.
    async fn requeue(&self) -> Result<u64, BusError>;

    /// Deletes every dead letter; returns how many there were.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached.
    async fn purge(&self) -> Result<u64, BusError>;
}

#[cfg(feature = "broker")]
/// After `system`'s consumer group `group` moved `message` to its dead letters: the
/// warning (why, after how many deliveries) and the count.
pub(crate) fn dead_lettered(
    system: &'static str,
    group: &str,
    message: &BusMessage,
    state: &super::wire::DeliveryState,
) {
    use crate::telemetry::otel::log::log_warn;
    super::instrument::dead_lettered(system, message);
    log_warn!(
        group = group,
        message_id = %message.message_id,
        attempts = state.attempt,
        handlers = state.handlers.join(", ").as_str(),
        error = state.error.as_deref().unwrap_or_default(),
        "message dead-lettered"
    );
}
