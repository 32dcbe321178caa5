//! What every consumer group does, on any broker: declare, run, and its dead letters.

use std::future::Future;

use super::{BusError, DeadLetterQueue};

/// A consumer group that can be declared, run and asked for its dead letters: what every
/// broker's group does, so that code over any broker's group is written once. The RabbitMQ,
/// Kafka and NATS groups implement it (each is a `broker::BrokerGroup` too); a group of an
/// adapter of your own implements it to run the broker conformance suite
/// (`testing::conformance::broker`). In the [prelude](crate::prelude).
pub trait RunnableGroup {
    /// Where the group's dead letters are kept on its broker.
    type DeadLetters: DeadLetterQueue;

    /// Declares what the group needs on its broker (its queues, topics or consumer), as
    /// its `run` does first; a broker that refuses it is an error.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached, or the broker's refusal.
    fn declare(&self) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Runs the group until `shutdown` completes, then stops it gracefully.
    ///
    /// # Errors
    /// What ended the group before `shutdown` did (the runtime's groups: a broker that
    /// refused it for good).
    fn run<F: Future + Send>(
        &self,
        shutdown: F,
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// The group's dead letters: count, list, requeue, purge ([`DeadLetterQueue`]).
    fn dead_letters(&self) -> Self::DeadLetters;
}
