//! What a consumer group says and does about the protocol it joins with: the settings the
//! protocol left out, told once, and the broker's refusal of the consumer protocol, which
//! makes the group join with the classic one from its next session on.

use std::sync::atomic::Ordering;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::consumer::ConsumerGroup;
use super::error::{ConsumerFailed, ProtocolRefused};
use super::protocol::{CLASSIC_ONLY, GroupProtocol, LeftOut, refused_by_broker};
use crate::bus::BusError;
use crate::telemetry::otel::log::log_warn;

impl ConsumerGroup {
    /// Says once, in a WARN line, which settings the group's consumer left out because
    /// `protocol` does not take them, and what applies instead.
    pub(super) fn tell_left_out(&self, protocol: GroupProtocol, left_out: &[LeftOut]) {
        let mut lines: Vec<String> = left_out
            .iter()
            .map(|left| format!("`{}` (instead: {})", left.key, left.instead))
            .collect();
        if protocol == GroupProtocol::Consumer && self.session_timeout.is_some() {
            lines.push(format!(
                "`session_timeout` (instead: {})",
                CLASSIC_ONLY[0].1
            ));
        }
        if lines.is_empty() || self.told_left_out.swap(true, Ordering::Relaxed) {
            return;
        }
        log_warn!(
            group = &*self.name,
            protocol = protocol.as_str(),
            left_out = lines.join("; "),
            "settings of the classic group protocol left out: the group joins with the consumer \
             protocol (KIP-848), where the broker assigns partitions and tells who is alive"
        );
    }

    /// The error that ends a session whose consumer librdkafka gave up on (`error`, a fatal
    /// one; `fatal`, the consumer's own fatal error when it has one): under the consumer
    /// protocol a broker that does not speak it makes the group join with the classic
    /// protocol from the next session on.
    pub(super) fn failed_for_good(
        &self,
        fatal: Option<(RDKafkaErrorCode, String)>,
        protocol: GroupProtocol,
        error: KafkaError,
    ) -> BusError {
        let (code, reason) = fatal.unwrap_or_else(|| {
            let code = error
                .rdkafka_error_code()
                .unwrap_or(RDKafkaErrorCode::Fatal);
            (code, error.to_string())
        });
        if protocol == GroupProtocol::Consumer && refused_by_broker(code) {
            self.fallen_back.store(true, Ordering::Relaxed);
            return BusError::unavailable(ProtocolRefused { reason });
        }
        BusError::unavailable(ConsumerFailed { reason })
    }
}
