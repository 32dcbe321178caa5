//! Events as a store hands them out, for the tests that publish or dispatch one without a
//! command.

use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};

/// An `OrderPlaced` of order `order` as stored: a new id, version and position 1, now, an
/// empty payload, no metadata.
pub fn order_placed(order: &str) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        stream: StreamId::new("Order", order),
        version: 1,
        position: 1,
        event_type: "OrderPlaced".into(),
        schema_version: 1,
        timestamp: chrono::Utc::now(),
        payload: serde_json::json!({}).into(),
        metadata: Metadata::new(),
    }
}
