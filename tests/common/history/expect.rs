//! What a test promises about its handlers, which the history alone cannot tell: which
//! handlers must see which events, and how many times each may handle one.

/// The handlers a test holds to account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectations {
    pub handlers: Vec<HandlerExpectation>,
    /// How handlers the test did not name may repeat an event (they are not checked for
    /// lost writes or stalls: which events they should see is not known).
    pub other_handlers: Delivery,
}

/// One handler: it must commit every acknowledged event its filter lets through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerExpectation {
    pub handler: String,
    pub delivery: Delivery,
    pub sees: EventFilter,
    /// Whether it must commit each stream's events in order (a consumer group whose
    /// broker hands one queue out to several processes does not promise it).
    pub ordered: bool,
}

/// How many times a handler may commit one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Once, whatever happens.
    ExactlyOnce,
    /// Again only after a takeover (the next commit by another process, or at another
    /// epoch), and at most `window` events again per takeover (what a checkpoint that lags
    /// by up to `window` events replays).
    AtLeastOnce { window: u64 },
}

/// Which appended events a handler must see, by their stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventFilter {
    All,
    StreamPrefix(String),
    Streams(Vec<String>),
}

impl EventFilter {
    pub fn admits(&self, stream: &str) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::StreamPrefix(prefix) => stream.starts_with(prefix.as_str()),
            EventFilter::Streams(streams) => streams.iter().any(|s| s == stream),
        }
    }
}

impl Default for Expectations {
    fn default() -> Self {
        Self::new()
    }
}

impl Expectations {
    /// No handler named; others held to exactly once.
    pub fn new() -> Self {
        Self {
            handlers: Vec::new(),
            other_handlers: Delivery::ExactlyOnce,
        }
    }

    /// `handler` must see every acknowledged event.
    pub fn handler(self, handler: impl Into<String>, delivery: Delivery) -> Self {
        self.handler_seeing(handler, delivery, EventFilter::All)
    }

    /// `handler` must see every acknowledged event `sees` admits.
    pub fn handler_seeing(
        mut self,
        handler: impl Into<String>,
        delivery: Delivery,
        sees: EventFilter,
    ) -> Self {
        self.handlers.push(HandlerExpectation {
            handler: handler.into(),
            delivery,
            sees,
            ordered: true,
        });
        self
    }

    /// `handler` must see every acknowledged event, in no particular order.
    pub fn unordered_handler(self, handler: impl Into<String>, delivery: Delivery) -> Self {
        let mut expectations = self.handler(handler, delivery);
        if let Some(last) = expectations.handlers.last_mut() {
            last.ordered = false;
        }
        expectations
    }

    /// How handlers not named may repeat an event.
    pub fn other_handlers(mut self, delivery: Delivery) -> Self {
        self.other_handlers = delivery;
        self
    }

    pub fn delivery_of(&self, handler: &str) -> Delivery {
        self.expectation_of(handler)
            .map_or(self.other_handlers, |expected| expected.delivery)
    }

    pub fn expectation_of(&self, handler: &str) -> Option<&HandlerExpectation> {
        self.handlers
            .iter()
            .find(|expected| expected.handler == handler)
    }
}
