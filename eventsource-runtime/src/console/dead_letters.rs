//! A broker's dead letters as the console reads and moves them, whichever the broker:
//! [`DeadLetterQueue`], implemented by each broker's `DeadLetters`.

use async_trait::async_trait;

use crate::bus::{BusError, DeadLetterEntry};

/// One consumer group's dead letters: listed, requeued, purged. Implemented by
/// `rabbitmq::DeadLetters`, `kafka::DeadLetters` and `nats::DeadLetters` (with their
/// features); a service may implement it for its own.
#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    /// The broker's `messaging.system` (`rabbitmq`, `kafka`, `nats`).
    fn system(&self) -> &'static str;

    /// The queue's (topic's, subject's) name: how the console names it.
    fn name(&self) -> String;

    /// The first `max` dead letters, left in place.
    async fn list(&self, max: usize) -> Result<Vec<DeadLetterEntry>, BusError>;

    /// Moves every dead letter back to the group for the handlers that failed on it;
    /// returns how many moved.
    async fn requeue(&self) -> Result<u64, BusError>;

    /// Deletes every dead letter; returns how many there were.
    async fn purge(&self) -> Result<u64, BusError>;
}

#[cfg(feature = "rabbitmq")]
mod rabbitmq {
    use super::{BusError, DeadLetterEntry, DeadLetterQueue, async_trait};
    use crate::rabbitmq::DeadLetters;

    #[async_trait]
    impl DeadLetterQueue for DeadLetters {
        fn system(&self) -> &'static str {
            "rabbitmq"
        }

        fn name(&self) -> String {
            self.queue().to_owned()
        }

        async fn list(&self, max: usize) -> Result<Vec<DeadLetterEntry>, BusError> {
            DeadLetters::list(self, max).await
        }

        async fn requeue(&self) -> Result<u64, BusError> {
            Ok(DeadLetters::requeue(self).await? as u64)
        }

        async fn purge(&self) -> Result<u64, BusError> {
            Ok(u64::from(DeadLetters::purge(self).await?))
        }
    }
}

#[cfg(feature = "kafka")]
mod kafka {
    use super::{BusError, DeadLetterEntry, DeadLetterQueue, async_trait};
    use crate::kafka::DeadLetters;

    #[async_trait]
    impl DeadLetterQueue for DeadLetters {
        fn system(&self) -> &'static str {
            "kafka"
        }

        fn name(&self) -> String {
            self.topic().to_owned()
        }

        async fn list(&self, max: usize) -> Result<Vec<DeadLetterEntry>, BusError> {
            DeadLetters::list(self, max).await
        }

        async fn requeue(&self) -> Result<u64, BusError> {
            Ok(DeadLetters::requeue(self).await? as u64)
        }

        async fn purge(&self) -> Result<u64, BusError> {
            DeadLetters::purge(self).await
        }
    }
}

#[cfg(feature = "nats")]
mod nats {
    use super::{BusError, DeadLetterEntry, DeadLetterQueue, async_trait};
    use crate::nats::DeadLetters;

    #[async_trait]
    impl DeadLetterQueue for DeadLetters {
        fn system(&self) -> &'static str {
            "nats"
        }

        fn name(&self) -> String {
            self.subject().to_owned()
        }

        async fn list(&self, max: usize) -> Result<Vec<DeadLetterEntry>, BusError> {
            DeadLetters::list(self, max).await
        }

        async fn requeue(&self) -> Result<u64, BusError> {
            Ok(DeadLetters::requeue(self).await? as u64)
        }

        async fn purge(&self) -> Result<u64, BusError> {
            Ok(u64::from(DeadLetters::purge(self).await?))
        }
    }
}
