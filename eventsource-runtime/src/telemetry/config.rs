//! Per-component telemetry settings: the component switch (`enable_tracing`) and span-name
//! overrides. Plain data, present with or without the `tracing` feature so that code
//! configuring components compiles either way.

/// Default span name of a repository load.
pub const SPAN_REPOSITORY_LOAD: &str = "eventsource.repository.load";
/// Default span name of a repository save.
pub const SPAN_REPOSITORY_SAVE: &str = "eventsource.repository.save";
/// Default span name of a repository existence check.
pub const SPAN_REPOSITORY_EXISTS: &str = "eventsource.repository.exists";
/// Default span name of an event store stream read.
pub const SPAN_STORE_LOAD: &str = "eventsource.event_store.load";
/// Default span name of an event store append.
pub const SPAN_STORE_APPEND: &str = "eventsource.event_store.append";
/// Default span name of an event store global read.
pub const SPAN_STORE_READ_ALL: &str = "eventsource.event_store.read_all";
/// Default span name of a snapshot store save.
pub const SPAN_SNAPSHOT_STORE_SAVE: &str = "eventsource.snapshot_store.save";
/// Default span name of a snapshot store read.
pub const SPAN_SNAPSHOT_STORE_GET: &str = "eventsource.snapshot_store.get";
/// Default span name of a snapshot store removal.
pub const SPAN_SNAPSHOT_STORE_DELETE: &str = "eventsource.snapshot_store.delete";
/// Default span name of a snapshot store existence check.
pub const SPAN_SNAPSHOT_STORE_EXISTS: &str = "eventsource.snapshot_store.exists";
/// Span name of an aggregate replay (opt-in, see [`RepositoryTelemetry::replay_span`]).
pub const SPAN_AGGREGATE_REPLAY: &str = "eventsource.aggregate.replay";
/// Default span name of an event bus publish (PRODUCER).
pub const SPAN_BUS_PUBLISH: &str = "eventsource.event_bus.publish";
/// Default span name of an event bus delivery (CONSUMER).
pub const SPAN_BUS_CONSUME: &str = "eventsource.event_bus.consume";
/// Default span name of one handler's share of a delivery (INTERNAL).
pub const SPAN_BUS_HANDLE: &str = "eventsource.event_bus.handle";
/// `messaging.system` of the in-process [`InMemoryEventBus`](crate::bus::InMemoryEventBus).
/// OpenTelemetry lists no value for an in-process bus; this one matches the in-memory
/// store's `db.system.name`.
pub const MESSAGING_SYSTEM_IN_MEMORY: &str = "in_memory";

/// Span names of an event store's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSpanNames {
    /// Reading one stream.
    pub load: &'static str,
    /// Appending.
    pub append: &'static str,
    /// Reading all streams.
    pub read_all: &'static str,
}

impl Default for StoreSpanNames {
    fn default() -> Self {
        Self {
            load: SPAN_STORE_LOAD,
            append: SPAN_STORE_APPEND,
            read_all: SPAN_STORE_READ_ALL,
        }
    }
}

/// An event store's telemetry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTelemetry {
    /// The component switch (on by default).
    pub enabled: bool,
    /// `db.system.name`.
    pub system: &'static str,
    /// `db.collection.name` (the events table), if the store has one.
    pub collection: Option<&'static str>,
    /// `server.address` and `server.port`, for networked stores.
    pub server: Option<(String, u16)>,
    /// Span names.
    pub names: StoreSpanNames,
}

impl StoreTelemetry {
    /// Spans on, for a store of `system`, with the default names.
    #[must_use]
    pub fn new(system: &'static str) -> Self {
        Self {
            enabled: true,
            system,
            collection: None,
            server: None,
            names: StoreSpanNames::default(),
        }
    }
}

/// Span names of a repository's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepositorySpanNames {
    /// Loading an aggregate.
    pub load: &'static str,
    /// Saving an aggregate.
    pub save: &'static str,
    /// Checking an aggregate exists.
    pub exists: &'static str,
}

impl Default for RepositorySpanNames {
    fn default() -> Self {
        Self {
            load: SPAN_REPOSITORY_LOAD,
            save: SPAN_REPOSITORY_SAVE,
            exists: SPAN_REPOSITORY_EXISTS,
        }
    }
}

/// A repository's telemetry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepositoryTelemetry {
    /// The component switch (on by default).
    pub enabled: bool,
    /// A span around each aggregate replay (off by default: the count and resulting version
    /// are on the load span anyway).
    pub replay_span: bool,
    /// Span names.
    pub names: RepositorySpanNames,
}

impl Default for RepositoryTelemetry {
    fn default() -> Self {
        Self {
            enabled: true,
            replay_span: false,
            names: RepositorySpanNames::default(),
        }
    }
}

/// A command handler's telemetry settings, set by `#[command_handler]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerTelemetry {
    /// The handler's switch: whether its command span is emitted.
    pub enabled: bool,
    /// Overrides the command span's name (default `command.{CommandType}`).
    pub span_name: Option<&'static str>,
}

impl HandlerTelemetry {
    /// Spans on, default name.
    pub const DEFAULT: Self = Self {
        enabled: true,
        span_name: None,
    };
}

impl Default for HandlerTelemetry {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Span names of an event bus's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusSpanNames {
    /// Publishing one message (PRODUCER).
    pub publish: &'static str,
    /// Delivering messages to the handlers (CONSUMER).
    pub consume: &'static str,
    /// One handler handling one message (INTERNAL).
    pub handle: &'static str,
}

impl Default for BusSpanNames {
    fn default() -> Self {
        Self {
            publish: SPAN_BUS_PUBLISH,
            consume: SPAN_BUS_CONSUME,
            handle: SPAN_BUS_HANDLE,
        }
    }
}

/// An event bus's telemetry settings. The destination is not here: each
/// [`BusMessage`](crate::bus::BusMessage) names its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusTelemetry {
    /// The component switch for the bus's spans (on by default). The bus metrics follow
    /// the process switch only, like the command metrics.
    pub enabled: bool,
    /// `messaging.system` (`in_memory`, `rabbitmq`, `nats`, ...).
    pub system: &'static str,
    /// Span names.
    pub names: BusSpanNames,
}

impl BusTelemetry {
    /// Spans on, for a bus of `system`, with the default names.
    #[must_use]
    pub fn new(system: &'static str) -> Self {
        Self {
            enabled: true,
            system,
            names: BusSpanNames::default(),
        }
    }
}
