//! Every attribute key, span name, span event name and metric name of the telemetry
//! contract, as constants: code (generated or hand-written) never spells them twice.
//!
//! `eventsource.*` and `cqrs.*` keys are this crate's; `db.*`, `server.*`, `messaging.*`
//! and `exception.*` come from `opentelemetry-semantic-conventions`.

pub use opentelemetry_semantic_conventions::attribute::{
    DB_COLLECTION_NAME, DB_OPERATION_NAME, DB_QUERY_TEXT, DB_SYSTEM_NAME, EXCEPTION_MESSAGE,
    EXCEPTION_TYPE, MESSAGING_BATCH_MESSAGE_COUNT, MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_ID, MESSAGING_OPERATION_TYPE, MESSAGING_SYSTEM, SERVER_ADDRESS, SERVER_PORT,
};

/// [`MESSAGING_OPERATION_TYPE`] of a publish span.
pub const MESSAGING_OPERATION_PUBLISH: &str = "publish";
/// [`MESSAGING_OPERATION_TYPE`] of a consume span.
pub const MESSAGING_OPERATION_PROCESS: &str = "process";
pub use super::config::MESSAGING_SYSTEM_IN_MEMORY;

// ---- eventsource.* span attributes ---------------------------------------------------------

/// The command's type name (`PlaceOrder`).
pub const COMMAND_TYPE: &str = "eventsource.command.type";
/// The aggregate's type name (`Order`).
pub const AGGREGATE_TYPE: &str = "eventsource.aggregate.type";
/// The aggregate's id.
pub const AGGREGATE_ID: &str = "eventsource.aggregate.id";
/// How many events a command produced, or an append carried (integer).
pub const EVENT_COUNT: &str = "eventsource.event.count";
/// The produced events' type names (string array).
pub const EVENT_TYPES: &str = "eventsource.event.types";
/// One event's type name.
pub const EVENT_TYPE: &str = "eventsource.event.type";
/// One event's version in its stream (integer).
pub const EVENT_SEQUENCE: &str = "eventsource.event.sequence";
/// One event's global position (integer).
pub const EVENT_POSITION: &str = "eventsource.event.position";
/// How many events a load replayed (integer).
pub const EVENTS_REPLAYED: &str = "eventsource.events.replayed";
/// How many events a store read returned (integer).
pub const EVENTS_LOADED: &str = "eventsource.events.loaded";
/// An aggregate's version (integer).
pub const VERSION: &str = "eventsource.version";
/// The version an append expected (integer; -1 for any, 0 for no stream).
pub const EXPECTED_VERSION: &str = "eventsource.expected_version";
/// The first version a stream read asked for (integer).
pub const FROM_VERSION: &str = "eventsource.from_version";
/// Whether a load started from a snapshot (bool).
pub const SNAPSHOT_USED: &str = "eventsource.snapshot.used";
/// A projection's name.
pub const PROJECTION_NAME: &str = "eventsource.projection.name";
/// Milliseconds from an event's timestamp to its projection (integer).
pub const PROJECTION_LAG_MS: &str = "eventsource.projection.lag_ms";
/// An event handler's name.
pub const HANDLER_NAME: &str = "eventsource.handler.name";
/// How a bus delivery reached the handlers: [`DELIVERY_LIVE`], [`DELIVERY_REDELIVERY`],
/// [`DELIVERY_REPLAY`] or [`DELIVERY_BATCH`] (on consume spans).
pub const DELIVERY_MODE: &str = "eventsource.delivery.mode";
/// [`DELIVERY_MODE`] of a first delivery: the consume span is a child of the publish span.
pub const DELIVERY_LIVE: &str = "live";
/// [`DELIVERY_MODE`] of a redelivery after a handler failed: a new root, linked.
pub const DELIVERY_REDELIVERY: &str = "redelivery";
/// [`DELIVERY_MODE`] of stored events replayed: a new root, linked to the append.
pub const DELIVERY_REPLAY: &str = "replay";
/// [`DELIVERY_MODE`] of several messages in one delivery: a new root, one link each.
pub const DELIVERY_BATCH: &str = "batch";
/// Which delivery of a message this is: 1 for the first, 2 for the first redelivery, ...
/// (integer, on redelivery consume spans).
pub const DELIVERY_ATTEMPT: &str = "eventsource.delivery.attempt";
/// A query's type name.
pub const QUERY_TYPE: &str = "eventsource.query.type";
/// How many items a query returned (integer).
pub const QUERY_RESULT_COUNT: &str = "eventsource.query.result_count";
/// The CQRS side of a span: [`SIDE_WRITE`], [`SIDE_READ`] or [`SIDE_PROJECTION`].
pub const CQRS_SIDE: &str = "cqrs.side";
/// [`CQRS_SIDE`] of command handling.
pub const SIDE_WRITE: &str = "write";
/// [`CQRS_SIDE`] of queries.
pub const SIDE_READ: &str = "read";
/// [`CQRS_SIDE`] of projections.
pub const SIDE_PROJECTION: &str = "projection";

// ---- span names ------------------------------------------------------------------------------

/// Prefix of a command span's default name (`command.PlaceOrder`).
pub const SPAN_COMMAND_PREFIX: &str = "command.";
/// Prefix of a query span's default name (`query.OrderSummary`).
pub const SPAN_QUERY_PREFIX: &str = "query.";
/// Prefix of a projection span's default name (`projection.OrderReadModel`).
pub const SPAN_PROJECTION_PREFIX: &str = "projection.";
pub use super::config::{
    SPAN_AGGREGATE_REPLAY, SPAN_REPOSITORY_EXISTS, SPAN_REPOSITORY_LOAD, SPAN_REPOSITORY_SAVE,
    SPAN_STORE_APPEND, SPAN_STORE_LOAD, SPAN_STORE_READ_ALL,
};
pub use super::config::{SPAN_BUS_CONSUME, SPAN_BUS_HANDLE, SPAN_BUS_PUBLISH};
pub use super::config::{
    SPAN_SNAPSHOT_STORE_DELETE, SPAN_SNAPSHOT_STORE_EXISTS, SPAN_SNAPSHOT_STORE_GET,
    SPAN_SNAPSHOT_STORE_SAVE,
};

// ---- span event names -----------------------------------------------------------------------

/// Span event per event a command produced.
pub const SPAN_EVENT_DOMAIN_EVENT_PRODUCED: &str = "domain_event_produced";
/// Span event per event an append stored.
pub const SPAN_EVENT_EVENT_PERSISTED: &str = "event_persisted";
/// Span event of an error or panic.
pub const SPAN_EVENT_EXCEPTION: &str = "exception";

// ---- metrics ---------------------------------------------------------------------------------

/// Histogram of command durations, seconds.
pub const METRIC_COMMAND_DURATION: &str = "cqrs.command.duration";
/// Counter of commands.
pub const METRIC_COMMAND_TOTAL: &str = "cqrs.command.total";
/// Counter of events produced by commands.
pub const METRIC_EVENTS_PRODUCED: &str = "cqrs.events.produced";
/// Histogram of projection lag, seconds.
pub const METRIC_PROJECTION_LAG: &str = "cqrs.projection.lag";
/// Histogram of query durations (s).
pub const METRIC_QUERY_DURATION: &str = "cqrs.query.duration";
/// Counter of queries run.
pub const METRIC_QUERY_TOTAL: &str = "cqrs.query.total";
/// Histogram of the number of items a collection query returned.
pub const METRIC_QUERY_RESULT_SIZE: &str = "cqrs.query.result_size";
/// Counter of consumed events whose stored trace context was missing or malformed.
pub const METRIC_TRACE_CONTEXT_INVALID: &str = "eventsource.trace_context.invalid";
/// Counter of messages an event bus published.
pub const METRIC_BUS_MESSAGES_PUBLISHED: &str = "eventsource.bus.messages.published";
/// Counter of messages an event bus delivered to its handlers (each delivery, replay and
/// redelivery counts; a batch counts each of its messages).
pub const METRIC_BUS_MESSAGES_CONSUMED: &str = "eventsource.bus.messages.consumed";
/// Histogram of event handler durations, seconds.
pub const METRIC_BUS_HANDLER_DURATION: &str = "eventsource.bus.handler.duration";

/// Metric attribute: command type.
pub const METRIC_ATTR_COMMAND_TYPE: &str = "command.type";
/// Metric attribute: `success` or `error`.
pub const METRIC_ATTR_COMMAND_STATUS: &str = "command.status";
/// Metric attribute: projection name.
pub const METRIC_ATTR_PROJECTION_NAME: &str = "projection.name";
/// Metric attribute: event type.
pub const METRIC_ATTR_EVENT_TYPE: &str = "event.type";
/// Metric attribute: event handler name.
pub const METRIC_ATTR_HANDLER_NAME: &str = "handler.name";
/// Metric attribute: the query type.
pub const METRIC_ATTR_QUERY_TYPE: &str = "query.type";
/// Metric attribute: [`STATUS_SUCCESS`] or [`STATUS_ERROR`].
pub const METRIC_ATTR_QUERY_STATUS: &str = "query.status";
/// Metric attribute of [`METRIC_TRACE_CONTEXT_INVALID`]: `missing` or `malformed`.
pub const METRIC_ATTR_REASON: &str = "reason";
/// [`METRIC_ATTR_COMMAND_STATUS`] value.
pub const STATUS_SUCCESS: &str = "success";
/// [`METRIC_ATTR_COMMAND_STATUS`] value.
pub const STATUS_ERROR: &str = "error";
