//! What every broker's consumer group answers alike, written once.

use std::time::Duration;

use super::settings;
use crate::bus::{Dispatcher, Subscribe};

/// What a consumer group on any broker (RabbitMQ, Kafka, NATS) answers alike: its name and
/// how often it delivers a failing message. In the [prelude](crate::prelude). Every broker
/// group is also [`Subscribe`]: its handlers are subscribed the same way.
///
/// Implemented by the adapters' groups only.
pub trait BrokerGroup {
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
