//! What every broker's consumer group answers alike, written once.

use std::time::Duration;

use super::settings;
use crate::bus::{Dispatcher, RunnableGroup, Subscribe};

/// What a consumer group on any broker (RabbitMQ, Kafka, NATS) answers alike: its name and
/// how often it delivers a failing message; the verbs every group has (declare, run, its
/// dead letters) come with [`RunnableGroup`]. In the [prelude](crate::prelude). Every
/// broker group is also [`Subscribe`]: its handlers are subscribed the same way.
///
/// Implemented by the adapters' groups only.
pub trait BrokerGroup: RunnableGroup {
    /// The group's parts the provided methods read (sealed: only this crate can name them).
    #[doc(hidden)]
    fn parts(&self) -> parts::GroupParts<'_>;

    /// The group's name, as the application gave it.
    fn name(&self) -> &str {
        self.parts().name
    }

    /// How many times a message is delivered to a failing handler before it is
    /// dead-lettered: once more than the group has retry delays.
    fn max_deliveries(&self) -> u32 {
        settings::max_deliveries(self.parts().delays)
    }
}

impl<G: BrokerGroup> Subscribe for G {
    fn dispatcher(&self) -> &Dispatcher {
        self.parts().dispatcher
    }
}

/// Private: a public type no one outside the crate can name seals [`BrokerGroup`].
pub(crate) mod parts {
    use super::{Dispatcher, Duration};

    /// A group's name, retry delays and dispatcher, borrowed.
    pub struct GroupParts<'a> {
        pub(crate) name: &'a str,
        pub(crate) delays: &'a [Duration],
        pub(crate) dispatcher: &'a Dispatcher,
    }
}

/// [`RunnableGroup`] for an adapter's `ConsumerGroup`, in scope where it is used, through the
/// group's own `declare`, `run` and `dead_letters` (its `super::DeadLetters`).
macro_rules! runnable_through_its_own_methods {
    () => {
        impl $crate::bus::RunnableGroup for ConsumerGroup {
            type DeadLetters = super::DeadLetters;

            fn declare(&self) -> impl Future<Output = Result<(), $crate::bus::BusError>> + Send {
                ConsumerGroup::declare(self)
            }

            fn run<F: Future + Send>(
                &self,
                shutdown: F,
            ) -> impl Future<Output = Result<(), $crate::bus::BusError>> + Send {
                ConsumerGroup::run(self, shutdown)
            }

            fn dead_letters(&self) -> super::DeadLetters {
                ConsumerGroup::dead_letters(self)
            }
        }
    };
}
pub(crate) use runnable_through_its_own_methods;
