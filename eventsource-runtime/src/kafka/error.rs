//! The client's errors as the bus's.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use uuid::Uuid;

use crate::bus::BusError;

/// The broker (or the connection to it) failed.
pub(super) fn unavailable(error: KafkaError) -> BusError {
    BusError::Unavailable(Box::new(error))
}

/// A record the producer could not deliver: refused for good (too large, invalid, not
/// allowed) is [`BusError::Rejected`]; anything else (timed out, brokers down) may pass
/// later and is [`BusError::Unavailable`].
pub(super) fn undelivered(error: KafkaError, message_id: Uuid) -> BusError {
    use RDKafkaErrorCode as Code;
    match error.rdkafka_error_code() {
        Some(
            Code::MessageSizeTooLarge
            | Code::InvalidMessageSize
            | Code::InvalidMessage
            | Code::InvalidRecord
            | Code::InvalidTopic
            | Code::TopicAuthorizationFailed
            | Code::ClusterAuthorizationFailed
            | Code::InvalidRequiredAcks,
        ) => BusError::Rejected {
            message_id,
            reason: error.to_string(),
        },
        _ => unavailable(error),
    }
}
