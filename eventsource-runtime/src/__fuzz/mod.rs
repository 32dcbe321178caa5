//! Hooks for the fuzz targets (`fuzz/` in the repository; feature `fuzzing`, internal): the
//! few decoding functions they feed that the public API does not reach. Not a public API:
//! it may change in any release.
//!
//! Everything else the targets fuzz is public: [`bus::wire`](crate::bus::wire) (a message's
//! body and text headers, Kafka's and NATS's),
//! [`telemetry::propagation`](crate::telemetry::propagation) (the W3C context in metadata),
//! [`Metadata::from_json`](crate::event::Metadata::from_json) and the upcasting door
//! ([`EventEnvelope::decode`](crate::event::EventEnvelope::decode),
//! [`Upcasters::upcast`](crate::event::upcast::Upcasters::upcast)).

#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod sql;
