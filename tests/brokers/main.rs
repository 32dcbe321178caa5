//! The buses against the real brokers, beyond each broker's own suite: lineage across a
//! broker, the messaging attributes a backend reads, graceful stops, TLS.
//!
//! One test binary for the area (each file a module), so the suite links a few binaries
//! rather than one per file.

mod kafka_tls;
mod lineage_brokers;
mod messaging_conventions;
mod nats_stop;
mod nats_tls;
mod rabbitmq_stop;
mod rabbitmq_tls;

// Helpers shared by the modules below, declared once.
mod any_broker;
use eventsource_test_support::domain;
use eventsource_test_support::envelopes;
use eventsource_test_support::errors;
mod graceful_stop;
use eventsource_test_support::pki;
use eventsource_test_support::servers;
