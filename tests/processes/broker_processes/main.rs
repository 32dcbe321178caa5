//! The `distributed` example's processes across each broker (RabbitMQ, Kafka, NATS
//! JetStream): one trace from a producer process to a consumer process, a consumer killed
//! mid-handler and its message redelivered, a producer killed before publishing and the
//! relay publishing later (`tests/common/processes.rs`); and the faults of
//! `tests/common/faults/`, on Kafka and NATS: consumers killed again and again mid-stream,
//! a relay killed mid-publish, the broker itself killed and started again. Every stored
//! event is handled, counted by event id, within a bound after the last fault.
//!
//! One binary, a module per broker (`cargo test --test broker_processes -- kafka::` runs
//! one broker's). A test that kills the broker, or whose bounds were measured with the
//! machine to itself, runs [`alone`]; the others run side by side under [`shared`].
//!
//! Each broker's tests need its address (`EVENTSOURCE_AMQP_URL`, `EVENTSOURCE_KAFKA_BROKERS`,
//! `EVENTSOURCE_NATS_URL`) and are skipped visibly without it, unless
//! `EVENTSOURCE_REQUIRE_RABBITMQ=1`, `EVENTSOURCE_REQUIRE_KAFKA=1` or
//! `EVENTSOURCE_REQUIRE_NATS=1`: then they fail.

mod kafka;
mod nats;
mod rabbitmq;

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

static MACHINE: RwLock<()> = RwLock::new(());

/// Held by a test that other tests may run beside.
fn shared() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(PoisonError::into_inner)
}

/// Held by a test that runs with no other test of this binary beside it: it kills the
/// broker the others use, or its bounds were measured without another scenario's
/// processes on the same two cores.
fn alone() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(PoisonError::into_inner)
}
