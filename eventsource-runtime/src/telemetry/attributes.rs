//! Every attribute key, span name, span event name and metric name of the telemetry
//! contract (`docs/telemetry.md`), as constants: code (generated or hand-written) never
//! spells them twice. Present with or without the `tracing` feature.
//!
//! `eventsource.*` and `cqrs.*` keys are this crate's; `db.*`, `server.*`, `messaging.*`
//! and `exception.*` are OpenTelemetry's semantic conventions (checked against
//! `opentelemetry-semantic-conventions` by a test, so that crate is not a dependency).

// ---- OpenTelemetry semantic conventions -----------------------------------------------------

/// `db.collection.name`: the table a store operation works on.
pub const DB_COLLECTION_NAME: &str = "db.collection.name";
/// `db.namespace`: the database (and schema) a store works in, where known without a
/// network call: PostgreSQL's `{database}.{schema}`.
pub const DB_NAMESPACE: &str = "db.namespace";
/// `db.operation.name`: what a store operation does (`append`, `load`, ...).
pub const DB_OPERATION_NAME: &str = "db.operation.name";
/// `db.query.text`: the statement of a store operation (opt-in, never the bound values).
pub const DB_QUERY_TEXT: &str = "db.query.text";
/// `db.system.name`: the store's database system (`postgresql`, `sqlite`, `in_memory`).
pub const DB_SYSTEM_NAME: &str = "db.system.name";
/// `error.type`: the class of error a failed operation ended with (on every span that
/// ends with status ERROR; the same value as its `exception` event's `exception.type`).
pub const ERROR_TYPE: &str = "error.type";
/// `exception.message`: an error's message, on the `exception` span event.
pub const EXCEPTION_MESSAGE: &str = "exception.message";
/// `exception.type`: an error's type, on the `exception` span event.
pub const EXCEPTION_TYPE: &str = "exception.type";
/// `messaging.batch.message_count`: how many messages a batch delivery carries.
pub const MESSAGING_BATCH_MESSAGE_COUNT: &str = "messaging.batch.message_count";
/// `messaging.destination.name`: where a message is published or consumed from.
pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
/// `messaging.consumer.group.name`: the consumer group a consume span belongs to.
pub const MESSAGING_CONSUMER_GROUP_NAME: &str = "messaging.consumer.group.name";
/// `messaging.destination.partition.id`: the partition a Kafka record is in.
pub const MESSAGING_DESTINATION_PARTITION_ID: &str = "messaging.destination.partition.id";
/// `messaging.kafka.message.key`: a Kafka record's key (the aggregate id).
pub const MESSAGING_KAFKA_MESSAGE_KEY: &str = "messaging.kafka.message.key";
/// `messaging.kafka.offset`: a Kafka record's offset in its partition (integer).
pub const MESSAGING_KAFKA_OFFSET: &str = "messaging.kafka.offset";
/// `messaging.message.id`: a message's id (the event id).
pub const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";
/// `messaging.operation.name`: the system's own name for what a publish or consume span
/// does (`publish`, `send`, `consume`, `process`; see
/// [`BusTelemetry::publish_operation`](crate::bus::BusTelemetry::publish_operation)).
pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
/// `messaging.operation.type`: [`MESSAGING_OPERATION_SEND`] or
/// [`MESSAGING_OPERATION_PROCESS`].
pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
/// `messaging.rabbitmq.destination.routing_key`: a RabbitMQ message's routing key.
pub const MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY: &str =
    "messaging.rabbitmq.destination.routing_key";
/// `messaging.rabbitmq.message.delivery_tag`: a RabbitMQ delivery's tag (integer).
pub const MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG: &str = "messaging.rabbitmq.message.delivery_tag";
/// `messaging.system`: the bus's transport ([`MESSAGING_SYSTEM_IN_MEMORY`], `rabbitmq`, ...).
pub const MESSAGING_SYSTEM: &str = "messaging.system";
/// `server.address`: a networked store's host.
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port`: a networked store's port (integer).
pub const SERVER_PORT: &str = "server.port";
/// `client.address`: the address an operator's console request came from.
pub const CLIENT_ADDRESS: &str = "client.address";

/// [`MESSAGING_OPERATION_TYPE`] of a publish span (the current conventions dropped
/// `publish` for `send`).
pub const MESSAGING_OPERATION_SEND: &str = "send";
/// [`MESSAGING_OPERATION_TYPE`] of a consume span.
pub const MESSAGING_OPERATION_PROCESS: &str = "process";
/// [`MESSAGING_SYSTEM`] of the in-process [`InMemoryEventBus`](crate::bus::InMemoryEventBus).
/// OpenTelemetry lists no value for an in-process bus; this one matches the in-memory
/// store's [`DB_SYSTEM_NAME`].
pub const MESSAGING_SYSTEM_IN_MEMORY: &str = "in_memory";

// ---- eventsource.* span attributes ---------------------------------------------------------

/// The command's type name (`PlaceOrder`).
pub const COMMAND_TYPE: &str = "eventsource.command.type";
/// The id of a command run with
/// [`CommandService::execute_once`](crate::command::CommandService::execute_once).
pub const COMMAND_ID: &str = "eventsource.command.id";
/// `true` on a command span when the command id was recognised: the events its first
/// execution stored were returned, nothing was decided or appended (bool; absent
/// otherwise).
pub const COMMAND_DUPLICATE: &str = "eventsource.command.duplicate";
/// The correlation id shared by everything one request caused (see
/// [`lineage`](crate::lineage)): on command spans, and on publish, consume and handle spans
/// of a message whose event carries one.
pub const CORRELATION_ID: &str = "eventsource.correlation.id";
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
/// How many of the events a load, a projection runner's batch or a consumed message read
/// were upcast from an older schema version, renamed or split (integer; absent when none).
pub const UPCAST_COUNT: &str = "eventsource.upcast.count";
/// The stored schema versions those events were upcast from, distinct, ascending (integer
/// array; absent when none).
pub const UPCAST_FROM_VERSIONS: &str = "eventsource.upcast.from_versions";
/// Whether a load started from a snapshot (bool).
pub const SNAPSHOT_USED: &str = "eventsource.snapshot.used";
/// A projection's name.
pub const PROJECTION_NAME: &str = "eventsource.projection.name";
/// Milliseconds from an event's timestamp to its projection (integer).
pub const PROJECTION_LAG_MS: &str = "eventsource.projection.lag_ms";
/// An event handler's name.
pub const HANDLER_NAME: &str = "eventsource.handler.name";
/// `true` on a handle span when the handler recognised the message as one it had already
/// handled and acknowledged it without running again (bool; absent otherwise). See
/// [`Idempotent`](crate::bus::Idempotent).
pub const HANDLER_DUPLICATE: &str = "eventsource.handler.duplicate";
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
/// Default span name of a repository load.
pub const SPAN_REPOSITORY_LOAD: &str = "eventsource.repository.load";
/// Default span name of a repository save.
pub const SPAN_REPOSITORY_SAVE: &str = "eventsource.repository.save";
/// Default span name of a repository existence check.
pub const SPAN_REPOSITORY_EXISTS: &str = "eventsource.repository.exists";
/// Span name of an aggregate replay (opt-in, see
/// [`Repository::trace_replay`](crate::repository::Repository::trace_replay)).
pub const SPAN_AGGREGATE_REPLAY: &str = "eventsource.aggregate.replay";
/// Default span name of an event store stream read.
pub const SPAN_STORE_LOAD: &str = "eventsource.event_store.load";
/// Default span name of an event store append.
pub const SPAN_STORE_APPEND: &str = "eventsource.event_store.append";
/// Default span name of an event store global read.
pub const SPAN_STORE_READ_ALL: &str = "eventsource.event_store.read_all";
/// Default span name of an event store listing the events of one correlation id
/// ([`EventStore::events_by_correlation`](crate::store::EventStore::events_by_correlation)).
pub const SPAN_STORE_EVENTS_BY_CORRELATION: &str = "eventsource.event_store.events_by_correlation";
/// Span name of a snapshot store save.
pub const SPAN_SNAPSHOT_STORE_SAVE: &str = "eventsource.snapshot_store.save";
/// Span name of a snapshot store read.
pub const SPAN_SNAPSHOT_STORE_GET: &str = "eventsource.snapshot_store.get";
/// Span name of a snapshot store removal.
pub const SPAN_SNAPSHOT_STORE_DELETE: &str = "eventsource.snapshot_store.delete";
/// Span name of a snapshot store existence check.
pub const SPAN_SNAPSHOT_STORE_EXISTS: &str = "eventsource.snapshot_store.exists";
/// Default span name of an event bus publish (PRODUCER).
pub const SPAN_BUS_PUBLISH: &str = "eventsource.event_bus.publish";
/// Default span name of an event bus delivery (CONSUMER).
pub const SPAN_BUS_CONSUME: &str = "eventsource.event_bus.consume";
/// Default span name of one handler's share of a delivery (INTERNAL).
pub const SPAN_BUS_HANDLE: &str = "eventsource.event_bus.handle";
/// Span name of a projection runner parking an event it could not read (INTERNAL, a root,
/// status ERROR).
pub const SPAN_PROJECTION_PARK: &str = "eventsource.projection.park";
/// Span: a projection runner stopping at an event it cannot read or upcast
/// (`UnreadablePolicy::Stop`).
pub const SPAN_PROJECTION_STOP: &str = "eventsource.projection.stop";
/// Span name prefix of an operator's console action (INTERNAL): `eventsource.console.`
/// then the action (`skip_parked`, `requeue_dead_letters`, `purge_dead_letters`).
pub const SPAN_CONSOLE_ACTION_PREFIX: &str = "eventsource.console.";
/// The label of the admin token a console action was allowed with (never the token).
pub const CONSOLE_ACTOR: &str = "eventsource.console.actor";
/// What a console action changed: the events unparked, the dead letters moved or deleted.
pub const CONSOLE_AFFECTED: &str = "eventsource.console.affected";

// ---- span event names -----------------------------------------------------------------------

/// Span event per event a command produced.
pub const SPAN_EVENT_DOMAIN_EVENT_PRODUCED: &str = "domain_event_produced";
/// Span event per event an append stored.
pub const SPAN_EVENT_EVENT_PERSISTED: &str = "event_persisted";
/// Span event of an error or panic.
pub const SPAN_EVENT_EXCEPTION: &str = "exception";

/// The `exception.type` of a panic.
pub const EXCEPTION_TYPE_PANIC: &str = "panic";

// ---- metrics ---------------------------------------------------------------------------------

/// The meter (instrumentation scope) name of every instrument.
pub const METER_NAME: &str = "eventsource";

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
/// Counter of messages a broker's consumer group moved to its dead letters (after its
/// handlers failed every delivery allowed).
pub const METRIC_BUS_MESSAGES_DEAD_LETTERED: &str = "eventsource.bus.messages.dead_lettered";
/// Counter of messages an event bus failed to publish (refused, unconfirmed or
/// unreachable broker), by `error.type`.
pub const METRIC_BUS_PUBLISH_FAILURES: &str = "eventsource.bus.publish.failures";
/// Counter of the times a broker's consumer group had events waiting and handled none for
/// its stall bound (`stall_after`), by `messaging.system` and `eventsource.component.name`.
pub const METRIC_BUS_CONSUMER_GROUP_STALLS: &str = "eventsource.bus.consumer_group.stalls";
/// Counter of messages a broker's consumer group settled without handing them to a
/// handler, by `messaging.system`, `messaging.destination.name` and `reason`
/// (`not_bound`: an event no binding of the group names; `misrouted`: an event whose
/// aggregate type is not the one its topic or subject is for).
pub const METRIC_BUS_MESSAGES_SKIPPED: &str = "eventsource.bus.messages.skipped";
/// Metric attribute of `eventsource.bus.messages.skipped`: why.
pub const METRIC_ATTR_SKIP_REASON: &str = "reason";
/// Counter of leases projection runners lost while processing (their session ended).
pub const METRIC_PROJECTION_LEASE_LOST: &str = "eventsource.projection.lease_lost";
/// Counter of the changes of hands of split projections' segments, by
/// [`METRIC_ATTR_SEGMENT_CHANGE`]: `claimed` (a free segment), `taken_over` (from a worker
/// whose claim expired), `released` (given up: a graceful stop, or a share to a worker
/// that joined), `lost` (found taken over at renewal), `fenced` (a save refused under an
/// old epoch).
pub const METRIC_PROJECTION_SEGMENT_CHANGES: &str = "eventsource.projection.segment.changes";
/// Metric attribute of [`METRIC_PROJECTION_SEGMENT_CHANGES`]: what happened.
pub const METRIC_ATTR_SEGMENT_CHANGE: &str = "change";
/// Metric and span attribute: the segment of a split projection, `{index}/{count}`.
pub const PROJECTION_SEGMENT: &str = "eventsource.projection.segment";
/// Counter of unreadable events projection runners parked.
pub const METRIC_PROJECTION_EVENTS_PARKED: &str = "eventsource.projection.events_parked";
/// Counter of stored events brought up to their type's current schema version (by stored
/// event type and from/to version): when it stops counting an upcaster's versions, the
/// upcaster may be deleted.
pub const METRIC_EVENTS_UPCAST: &str = "eventsource.events.upcast";
/// Gauge of the events a projection runner, relay or consumer group has not handled yet
/// (see [`health`](crate::health)).
pub const METRIC_LAG_EVENTS: &str = "eventsource.lag.events";
/// Gauge of the age, in seconds, of the oldest event a projection runner, relay or consumer
/// group has not handled yet (0 when none waits).
pub const METRIC_LAG_OLDEST_AGE: &str = "eventsource.lag.oldest_age";
/// Gauge of how long, in seconds, the session holding the event store's high-water mark
/// back has held it, as a projection runner or relay saw it when its health was last asked
/// (0 when nothing holds it; see [`health`](crate::health)).
pub const METRIC_STORE_MARK_HELD: &str = "eventsource.store.mark_held";

/// Metric attribute: command type.
pub const METRIC_ATTR_COMMAND_TYPE: &str = "command.type";
/// Metric attribute: `success` or `error`.
pub const METRIC_ATTR_COMMAND_STATUS: &str = "command.status";
/// Metric attribute: projection name.
pub const METRIC_ATTR_PROJECTION_NAME: &str = "projection.name";
/// Metric attribute: event type.
pub const METRIC_ATTR_EVENT_TYPE: &str = "event.type";
/// Metric attribute: the stored schema version an event was upcast from (integer).
pub const METRIC_ATTR_UPCAST_FROM: &str = "upcast.from_version";
/// Metric attribute: the schema version an event was upcast to (integer).
pub const METRIC_ATTR_UPCAST_TO: &str = "upcast.to_version";
/// Metric attribute: event handler name.
pub const METRIC_ATTR_HANDLER_NAME: &str = "handler.name";
/// Metric attribute: [`STATUS_SUCCESS`] or [`STATUS_ERROR`] (a handler that failed or
/// panicked).
pub const METRIC_ATTR_HANDLER_STATUS: &str = "handler.status";
/// Metric attribute: the query type.
pub const METRIC_ATTR_QUERY_TYPE: &str = "query.type";
/// Metric attribute: [`STATUS_SUCCESS`] or [`STATUS_ERROR`].
pub const METRIC_ATTR_QUERY_STATUS: &str = "query.status";
/// Metric attribute of [`METRIC_TRACE_CONTEXT_INVALID`]: `missing` or `malformed`.
pub const METRIC_ATTR_REASON: &str = "reason";
/// Metric attribute of the lag gauges: `projection`, `relay` or `consumer_group`.
pub const METRIC_ATTR_COMPONENT_KIND: &str = "eventsource.component.kind";
/// Metric attribute of the lag gauges: the projection's, relay's or consumer group's name.
pub const METRIC_ATTR_COMPONENT_NAME: &str = "eventsource.component.name";
/// [`METRIC_ATTR_COMMAND_STATUS`] value.
pub const STATUS_SUCCESS: &str = "success";
/// [`METRIC_ATTR_COMMAND_STATUS`] value.
pub const STATUS_ERROR: &str = "error";

/// The attribute `#[traced(ret)]` records the return value's `Debug` under.
pub const RETURN_VALUE: &str = "return.value";

/// The non-contract `eventsource.limit` of a global read: how many events it asked for.
pub const READ_LIMIT: &str = "eventsource.limit";

#[cfg(test)]
mod tests {
    use opentelemetry_semantic_conventions::attribute as semconv;

    use super::*;

    /// Each of our constants equals the semantic conventions' constant of the same name.
    macro_rules! match_semconv {
        ($($key:ident),+ $(,)?) => {
            $(assert_eq!($key, semconv::$key, stringify!($key));)+
        };
    }

    #[test]
    fn semantic_convention_keys_match_opentelemetry() {
        match_semconv!(
            CLIENT_ADDRESS,
            DB_COLLECTION_NAME,
            DB_NAMESPACE,
            DB_OPERATION_NAME,
            DB_QUERY_TEXT,
            DB_SYSTEM_NAME,
            ERROR_TYPE,
            EXCEPTION_MESSAGE,
            EXCEPTION_TYPE,
            MESSAGING_BATCH_MESSAGE_COUNT,
            MESSAGING_CONSUMER_GROUP_NAME,
            MESSAGING_DESTINATION_NAME,
            MESSAGING_DESTINATION_PARTITION_ID,
            MESSAGING_KAFKA_MESSAGE_KEY,
            MESSAGING_KAFKA_OFFSET,
            MESSAGING_MESSAGE_ID,
            MESSAGING_OPERATION_NAME,
            MESSAGING_OPERATION_TYPE,
            MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
            MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG,
            MESSAGING_SYSTEM,
            SERVER_ADDRESS,
            SERVER_PORT,
        );
    }
}
