//! What every broker's consumer group has alike: its builder and accessors over its name,
//! patterns, retry delays and dispatcher.

/// The methods every broker's consumer group has alike, over its `name`, its `patterns`,
/// its retry delays (the field path given) and its `dispatcher`: `bind` (with the
/// documentation given: what a pattern matches is the broker's), `name`, `max_deliveries`
/// (of a `$what`, a message or a record), `dispatcher`, `subscribe` and `subscribe_fn`.
macro_rules! group_methods {
    ($what:literal, delays: $($delays:ident).+; $(#[$bind:meta])* fn bind;) => {
        $(#[$bind])*
        #[must_use]
        pub fn bind(mut self, pattern: impl Into<String>) -> Self {
            self.patterns.push(pattern.into());
            self
        }

        /// The group's name.
        #[must_use]
        pub fn name(&self) -> &str {
            &self.name
        }

        #[doc = concat!(" How many times a ", $what, " is delivered to a failing handler before it is")]
        /// dead-lettered.
        #[must_use]
        pub fn max_deliveries(&self) -> u32 {
            u32::try_from(self.$($delays).+.len())
                .unwrap_or(u32::MAX)
                .saturating_add(1)
        }

        $crate::bus::dispatcher_methods! {
            /// The handlers' side: subscriptions, telemetry settings.
            fn dispatcher;
            /// Adds a handler.
            fn subscribe;
            /// Adds a handler made of a name and an async closure (see
            /// [`handler_fn`](crate::bus::handler_fn)).
            fn subscribe_fn;
        }
    };
}
pub(crate) use group_methods;
