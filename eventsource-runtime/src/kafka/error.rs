//! The client's errors as the bus's.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use uuid::Uuid;

use crate::broker::TlsFailure;
use crate::bus::{BrokerUnreachable, BusError, UnavailableReason};

/// The broker (or the connection to it) failed.
pub(super) fn unavailable(error: KafkaError) -> BusError {
    BusError::Unavailable(Box::new(error))
}

/// A client of the brokers at `server` that could not be created: a TLS setting
/// (`security.protocol=ssl`, `sasl_ssl`) that librdkafka cannot take, built without
/// OpenSSL, is [`UnavailableReason::Tls`] naming the `kafka-ssl` feature.
pub(super) fn creation_failed(error: KafkaError, server: &str) -> BusError {
    // `ClientConfig` for an `ssl.*` setting, `ClientCreation` for `security.protocol`.
    if matches!(
        error,
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_)
    ) && error.to_string().contains("OpenSSL not available")
    {
        let failure = TlsFailure::Settings(
            "librdkafka is built without OpenSSL here: TLS to Kafka (`security.protocol=ssl` or \
             `sasl_ssl`) needs eventsource-runtime's `kafka-ssl` feature"
                .to_owned(),
        );
        return BusError::unavailable(BrokerUnreachable::new(
            UnavailableReason::Tls,
            server,
            Some(Box::new(failure)),
        ));
    }
    unavailable(error)
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

/// A group's consumer that librdkafka gave up on (a fatal error): the group makes another.
#[derive(Debug, thiserror::Error)]
#[error("the group's consumer failed for good: {reason}")]
pub(super) struct ConsumerFailed {
    /// What librdkafka said.
    pub(super) reason: String,
}

/// The broker refused the consumer group protocol: the group joins again with the classic
/// one.
#[derive(Debug, thiserror::Error)]
#[error(
    "the broker does not speak the consumer group protocol (KIP-848, Apache Kafka 4.0 and \
     later; it said: {reason}): the group joins with the classic protocol"
)]
pub(super) struct ProtocolRefused {
    /// What librdkafka said.
    pub(super) reason: String,
}
