//! What the broker adapters (`rabbitmq`, `kafka`, `nats`) are built from, apart from the
//! domain's bus: the room a reader opens to change what every adapter does alike.
//!
//! Public, for configuring and watching an adapter's groups:
//! - [`BrokerTls`] (what to trust, which client certificate to present) and
//!   [`TlsFailure`] (why a TLS connection failed);
//! - [`GroupStalled`], what a stalled consumer group reports, and [`DEFAULT_STALL_AFTER`];
//! - [`DEFAULT_STOP_TIMEOUT`], how long a consumer group's graceful stop may take;
//! - [`BrokerGroup`], what every broker's consumer group answers alike (its name, its
//!   deliveries).
//!
//! Nothing here opens a broker: that is above the brokers, in
//! [`operate::DeadLetterAddress`](crate::operate::DeadLetterAddress) for instance.
//!
//! Inside the crate, each in its own file: the buses' settings behind one `Arc` and their
//! shared defaults (`settings`), what every publish shares and the
//! [`EventBus`](crate::bus::EventBus) implementation over a bus's `publish_all`
//! (`publish`), the reconnecting sessions of a consumer group (`reconnect`), and a group's
//! health, lag gauges and stall watch (`group_health`).

mod group;
pub(crate) mod group_health;
pub(crate) mod publish;
pub(crate) mod reconnect;
pub(crate) mod settings;
pub(crate) mod tls;

pub use group::BrokerGroup;
pub(crate) use group::parts::GroupParts;
pub(crate) use group::runnable_through_its_own_methods;
pub use group_health::{DEFAULT_STALL_AFTER, DEFAULT_STOP_TIMEOUT, GroupStalled};
pub use tls::{BrokerTls, TlsFailure};
