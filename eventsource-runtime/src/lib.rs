//! # eventsource-runtime
//!
//! Event-sourced domain code in plain Rust: aggregates whose state is rebuilt from events,
//! event stores with optimistic concurrency, repositories, command handling and
//! projections. The macros (`#[derive(Aggregate)]`, re-exported here with the default
//! `macros` feature) generate the repetitive parts; the code they generate calls this
//! crate.
//!
//! The map of the crate, from the operator's wing at the top to the ground floor at the bottom.
//! Each module imports only modules below it, and only those it says it uses (a test of the
//! repository reads this map and the sources); a component that records spans builds them in
//! its own `instrument` module, and declares its metrics there (a new counter is a `static`
//! beside the code that counts); each public type has one path (plus the [`prelude`]):
//!
//! - `console` (feature `console`): the operator's page as an axum `Router`: what `operate`
//!   reads, drawn and refreshing, and the actions (parked events, dead letters) behind an
//!   admin token (uses `operate`, `bus`, `store`, the brokers' dead letters,
//!   `telemetry`);
//! - `operate` (feature `operate`): what an operator reads from a store and changes in it,
//!   done once for the command line and the console: status and lag, events, causation
//!   trees laid out; reset, split, rebuild and retire a projection (uses the databases
//!   and the brokers, to open them by URL, and `projection`, `lineage`, `relay`, `bus`,
//!   `store`, `event`, `telemetry`);
//! - `sqlite` and `postgres` (features of those names): everything each database does:
//!   events, snapshots, checkpoints, leases and parked events, idempotent handlers'
//!   processed messages, its schema and SQL (uses `store`, `snapshot`, `projection`, `bus`,
//!   `event`, `telemetry`);
//! - `rabbitmq`, `kafka` and `nats` (features of those names): the event bus over each
//!   broker: publisher, consumer groups, retries, dead letters, lag (uses `broker`, `bus`,
//!   `health`, `event`, `telemetry`);
//! - `broker` (with any broker's feature): what the broker adapters are built from: TLS,
//!   publishing, reconnection, a group's health and stall watch, what every group answers
//!   alike (`BrokerGroup`) (uses `bus`, `health`, `event`, `telemetry`);
//! - `testing` (feature `testing`): given/when/then for aggregates, span and metric capture,
//!   the conformance suites of stores and brokers (uses `command`, `relay`, `bus`,
//!   `projection`, `snapshot`, `store`, `aggregate`, `event`, `telemetry`);
//! - [`command`]: [`Command`](command::Command), [`Handle`](command::Handle) and the
//!   [`CommandService`](command::CommandService) that runs
//!   load -> decide -> record -> save -> deliver (uses `repository`, `projection`, `bus`,
//!   `lineage`, `store`, `aggregate`, `event`, `telemetry`);
//! - [`relay`]: the store as the outbox: every stored event published on a bus, at least
//!   once; it runs as a projection under a `ProjectionRunner`, with its checkpoint and
//!   lease (uses `projection`, `bus`, `health`, `store`, `event`);
//! - [`query`]: the read side, run through [`query::run`] for the contract's query span and
//!   metrics (uses `telemetry`);
//! - [`bus`]: [`EventBus`](bus::EventBus), [`EventHandler`](bus::EventHandler), the
//!   [`InMemoryEventBus`](bus::InMemoryEventBus), the [`Dispatcher`](bus::Dispatcher) any
//!   transport consumes through, the builders every bus shares ([`Subscribe`](bus::Subscribe),
//!   [`WithBusTelemetry`](bus::WithBusTelemetry)), and the wire format every broker speaks
//!   (uses `health`, `lineage`, `store`, `event`, `telemetry`);
//! - [`projection`](mod@projection): [`Projection`](projection::Projection), in-process
//!   delivery, and the checkpointed [`ProjectionRunner`](projection::runner::ProjectionRunner)
//!   that feeds a projection from a store, alone or split into
//!   [`segments`](projection::segments) over many workers (uses `health`, `store`, `event`,
//!   `telemetry`);
//! - [`repository`]: [`Repository`](repository::Repository) loads and saves aggregates,
//!   optionally from snapshots, through its cache (uses `snapshot`, `store`, `aggregate`,
//!   `event`, `telemetry`);
//! - [`snapshot`]: [`SnapshotStore`](snapshot::SnapshotStore) and the in-memory one (uses
//!   `store`, `event`, `telemetry`);
//! - [`lineage`]: correlation and causation ids stamped on every command's events, carried
//!   across buses, listed by the stores and drawn as a
//!   [`CausationTree`](lineage::CausationTree) (uses `store`, `event`);
//! - [`health`]: [`Lag`](health::Lag) and the [`HealthRegistry`](health::HealthRegistry)
//!   of runners, relays and consumer groups (uses `store`, `telemetry`);
//! - [`store`]: [`EventStore`](store::EventStore) and the
//!   [`InMemoryEventStore`](store::InMemoryEventStore) (uses `event`, `telemetry`);
//! - [`aggregate`]: [`Aggregate`](aggregate::Aggregate), [`Apply`](aggregate::Apply),
//!   [`AggregateRoot`](aggregate::AggregateRoot) (uses `event`);
//! - [`event`]: [`DomainEvent`](event::DomainEvent), the stored
//!   [`EventEnvelope`](event::EventEnvelope) and its [`Metadata`](event::Metadata);
//!   [`event::upcast`]: events that change shape (versions, upcasters, renames, splits)
//!   (uses `telemetry`);
//! - [`telemetry`]: the ground floor every component records with: attribute keys,
//!   switches, W3C propagation, application setup (`init`, `layer`), hidden secrets (it
//!   uses no component: `event` makes its `Metadata` a carrier of the trace context).
//!
//! Not drawn: the private helpers `panic` (a panic's message) and `sql` (what the two SQL
//! stores share: row decoding, schema versions, integer conversions, the error of a failed
//! query). The telemetry contract the spans and metrics follow is `docs/telemetry.md` in
//! the repository; the guide (`docs/guide/`) and the README say how
//! to use each part.
//!
//! ```
//! use eventsource_runtime::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! pub struct OrderPlaced { pub total_cents: u64 }
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! pub struct OrderShipped;
//!
//! // The state; the derive generates `OrderEvent` and the event application.
//! #[derive(Debug, Default, Aggregate)]
//! #[aggregate(type = "Order", events(OrderPlaced, OrderShipped))]
//! pub struct Order { placed: bool, shipped: bool }
//!
//! // The user writes only the state transitions...
//! impl Apply<OrderPlaced> for Order {
//!     fn apply(&mut self, _: &OrderPlaced) { self.placed = true; }
//! }
//! impl Apply<OrderShipped> for Order {
//!     fn apply(&mut self, _: &OrderShipped) { self.shipped = true; }
//! }
//!
//! // ...and the decisions.
//! #[derive(Debug, thiserror::Error)]
//! #[error("order {0} was never placed")]
//! pub struct NotPlaced(String);
//!
//! pub struct ShipOrder { pub order_id: String }
//! impl Command for ShipOrder {
//!     const TYPE: &'static str = "ShipOrder";
//!     fn aggregate_id(&self) -> String { self.order_id.clone() }
//! }
//! impl Handle<ShipOrder> for Order {
//!     type Error = NotPlaced;
//!     fn handle(&self, cmd: ShipOrder) -> Result<Vec<OrderEvent>, NotPlaced> {
//!         if !self.placed { return Err(NotPlaced(cmd.order_id)); }
//!         Ok(vec![OrderShipped.into()])
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let orders = CommandService::<Order>::new(InMemoryEventStore::new());
//! let refused = orders.execute(ShipOrder { order_id: "o-1".into() }).await;
//! assert!(matches!(refused, Err(CommandError::Rejected(NotPlaced(_)))));
//! # });
//! ```
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The internal features (`sql`, `broker`) come with the user features that need them: the
// badges name those (`doc(cfg(...))` where an item is behind an internal one).
#![cfg_attr(docsrs, doc(auto_cfg(hide(feature = "sql", feature = "broker"))))]

pub mod aggregate;
#[cfg(feature = "broker")]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "rabbitmq", feature = "kafka", feature = "nats")))
)]
pub mod broker;
pub mod bus;
pub mod command;
#[cfg(feature = "console")]
#[cfg_attr(docsrs, doc(cfg(feature = "console")))]
pub mod console;
pub mod event;
pub mod health;
#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub mod kafka;
pub mod lineage;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;
#[cfg(feature = "operate")]
#[cfg_attr(docsrs, doc(cfg(feature = "operate")))]
pub mod operate;
mod panic;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
pub mod projection;
pub mod query;
#[cfg(feature = "rabbitmq")]
#[cfg_attr(docsrs, doc(cfg(feature = "rabbitmq")))]
pub mod rabbitmq;
pub mod relay;
pub mod repository;
pub mod snapshot;
#[cfg(feature = "sql")]
mod sql;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz;
#[doc(hidden)]
pub mod __private;

/// Re-exported for implementing this crate's async traits
/// ([`EventStore`](store::EventStore), [`Projection`](projection::Projection),
/// [`EventHandler`](bus::EventHandler), ...).
pub use async_trait::async_trait;
/// The sqlx the SQL stores are built on, to make pools and transactions with the same
/// version (`PostgresEventStore::from_pool`, `append_in_transaction`, ...).
#[cfg(feature = "sql")]
// The badge names the features a user turns on, not the internal `sql` they bring.
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use sqlx;

/// Derives [`Aggregate`](aggregate::Aggregate) for an aggregate's state struct and generates
/// its event enum.
///
/// ```text
/// #[derive(Default, Aggregate)]
/// #[aggregate(type = "Order", events(OrderPlaced, OrderShipped))]
/// pub struct Order { .. }
/// ```
///
/// Arguments of `#[aggregate(...)]`:
/// - `events(A, B, ...)`: the event types. Generates `pub enum {Struct}Event` with one
///   variant per type (serde-tagged by event type name), `From<A>` for it,
///   [`DomainEvent`](event::DomainEvent), [`EventType`](event::EventType) for each listed
///   type (named after the type), and an `apply` that calls your `impl Apply<A> for
///   {Struct}`. Each event type must be `Debug + Clone + PartialEq`
///   and serde-serializable. `events(A, B(version = 3))`: `B`'s payload is at schema
///   version 3 (default 1), stored with each event; older stored versions are brought up
///   to it by the set's upcasters.
/// - `upcasters = order_upcasters`: a `fn() -> Upcasters` registering how events stored by
///   older code become current ones (see [`event::upcast`]); checked against the versions
///   in `events(..)` on first use (`OrderEvent::upcasters().check()` at start).
/// - `snapshot_version = 2`: the schema version of the state's serialized form, kept with
///   each snapshot (default 1); a snapshot of another version is ignored and the aggregate
///   replayed from its events.
/// - `type = "Order"`: the stored aggregate type name (default: the struct's name).
/// - `event_enum = OrderEvent`: the generated enum's name (default: `{Struct}Event`).
/// - `event = MyEvents`: instead of `events(...)`, use a hand-written enum implementing
///   [`DomainEvent`](event::DomainEvent); you then write `impl Apply<MyEvents> for {Struct}`.
#[cfg(feature = "macros")]
pub use eventsource_macros::Aggregate;

/// Writes the [`Projection`](projection::Projection) impl of a read model from its event
/// handler methods.
///
/// Put it on the read model's inherent `impl` block. Every method there taking `&mut self`
/// is an event handler, `fn on_order_placed(&mut self, event: &OrderPlaced)`:
/// - its event parameter names the [`EventType`](event::EventType) it handles (such as a type listed in
///   `#[aggregate(events(..))]`); one handler per event type;
/// - an optional second parameter receives the stored event, `envelope: &EventEnvelope`
///   (aggregate id, version, position, metadata);
/// - it may be `async`;
/// - it returns `()` or `Result<(), E>`, `E` converting into
///   `Box<dyn Error + Send + Sync>`; an `Err` fails that event's delivery with
///   [`ProjectionError::Handler`](projection::ProjectionError::Handler).
///
/// Methods taking `&self`, or no `self`, are left alone; other `&mut self` methods go in a
/// separate `impl` block. The block itself is kept as written, so the handlers stay
/// callable.
///
/// The generated impl receives only the handled event types
/// ([`Projection::handles`](projection::Projection::handles); the
/// others are neither delivered nor traced), decodes each event into its handler's type (a
/// payload that does not fit fails the delivery with
/// [`ProjectionError::Decode`](projection::ProjectionError::Decode)) and calls the handler.
///
/// Arguments, all optional:
/// - `projection_name = "OrderList"`: [`Projection::name`](projection::Projection::name),
///   used in telemetry (default: the
///   type's name);
/// - `name = "projection.orders"`: the span name (default `projection.{projection name}`);
/// - `enable_tracing = true`: the projection's span switch. Projections are not traced by
///   default; the value is any `bool` expression and may read `self`
///   (`enable_tracing = self.trace`) for a switch per instance.
///   [`telemetry::toggles::set_projection_tracing`] overrides it for the whole process.
///
/// Traced, each delivered event runs in a CONSUMER span that is a new root *linked* to the
/// span that appended the event, with the projection name, `cqrs.side = projection`, the
/// event type, aggregate id, sequence and lag; a failed delivery ends it with status ERROR
/// and one `exception` event.
///
/// ```
/// use std::collections::BTreeMap;
///
/// use eventsource_runtime::event::NewEvent;
/// use eventsource_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub struct OrderPlaced { pub total_cents: u64 }
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub struct OrderShipped;
///
/// #[derive(Default, Aggregate)]
/// #[aggregate(type = "Order", events(OrderPlaced, OrderShipped))]
/// pub struct Order { placed: bool }
/// impl Apply<OrderPlaced> for Order {
///     fn apply(&mut self, _: &OrderPlaced) { self.placed = true; }
/// }
/// impl Apply<OrderShipped> for Order {
///     fn apply(&mut self, _: &OrderShipped) {}
/// }
///
/// /// Open orders and their totals.
/// #[derive(Default)]
/// pub struct OpenOrders { totals: BTreeMap<String, u64>, trace: bool }
///
/// #[projection(projection_name = "OpenOrders", enable_tracing = self.trace)]
/// impl OpenOrders {
///     fn on_placed(&mut self, event: &OrderPlaced, envelope: &EventEnvelope) {
///         self.totals.insert(envelope.aggregate_id().to_owned(), event.total_cents);
///     }
///
///     async fn on_shipped(
///         &mut self,
///         _: &OrderShipped,
///         envelope: &EventEnvelope,
///     ) -> Result<(), String> {
///         self.totals
///             .remove(envelope.aggregate_id())
///             .map(drop)
///             .ok_or_else(|| format!("order {} was not open", envelope.aggregate_id()))
///     }
///
///     /// Not a handler (`&self`): left alone.
///     pub fn total(&self, order_id: &str) -> Option<u64> {
///         self.totals.get(order_id).copied()
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryEventStore::new();
/// let registry = ProjectionRegistry::new();
/// let open = registry.register(OpenOrders::default());
/// let placed = NewEvent::from_event(&OrderEvent::from(OrderPlaced { total_cents: 1250 })).unwrap();
/// let saved = store
///     .append(&StreamId::new("Order", "o-1"), ExpectedVersion::NoStream, vec![placed])
///     .await
///     .unwrap();
/// assert!(registry.deliver(&saved.events).await.is_empty());
/// assert_eq!(open.lock().await.total("o-1"), Some(1250));
/// # });
/// ```
#[cfg(feature = "macros")]
pub use eventsource_macros::projection;

// The Rust snippets of the README and of the guide (`docs/guide/`) compile and run as
// doctests, one item per file. A page with Rust snippets gets an item here.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide/domain.md")]
struct GuideDomainDoctests;
// Its store of your own runs a conformance suite: the `testing` feature.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../../docs/guide/stores.md")]
struct GuideStoresDoctests;
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide/schema-evolution.md")]
struct GuideSchemaEvolutionDoctests;
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide/annotations.md")]
struct GuideAnnotationsDoctests;
// Span and metric capture: the `testing` feature with `tracing`.
#[cfg(all(doctest, feature = "testing", feature = "tracing"))]
#[doc = include_str!("../../docs/guide/testing.md")]
struct GuideTestingDoctests;
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide/scaling-out.md")]
struct GuideScalingOutDoctests;
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide/operating.md")]
struct GuideOperatingDoctests;
#[cfg(all(doctest, feature = "tracing"))]
#[doc = include_str!("../../docs/guide/http-services.md")]
struct GuideHttpServicesDoctests;

/// Marks a command handler, so its command span carries the handler's settings.
///
/// Put it on an `impl Handle<Command> for Aggregate` block, or on a free decision function
/// `fn decide(state: &Aggregate, command: Command) -> Result<Vec<AggregateEvent>, Error>`
/// (for which it generates the `Handle` impl).
/// [`CommandService::execute`](command::CommandService::execute) then runs the
/// command inside the span `command.{CommandType}`: load, decide, save and delivery are
/// its children, a caller's span is its parent, and it records the event count, the event
/// types, one `domain_event_produced` span event per event, and errors.
///
/// Arguments, all optional:
/// - `name = "handle_command"`: the span's name (default `command.{CommandType}`);
/// - `enabled = false`: a constant switch for this handler's span;
/// - `aggregate_id = cmd.order_id`: generates `impl Command for {Command}`, the expression
///   reading the command through the handler's command parameter;
/// - `command_type = "PlaceOrder"`: the generated impl's `Command::TYPE` (default: the
///   command type's name).
///
/// ```
/// use eventsource_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub struct Opened { pub owner: String }
///
/// #[derive(Default, Aggregate)]
/// #[aggregate(type = "Account", events(Opened))]
/// pub struct Account { open: bool }
/// impl Apply<Opened> for Account {
///     fn apply(&mut self, _: &Opened) { self.open = true; }
/// }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("already open")]
/// pub struct AlreadyOpen;
///
/// pub struct Open { pub account_id: String, pub owner: String }
///
/// // A free decision function; the macro writes `impl Handle<Open> for Account` and, from
/// // `aggregate_id`, `impl Command for Open`.
/// #[command_handler(aggregate_id = command.account_id, name = "open_account")]
/// fn open(account: &Account, command: Open) -> Result<Vec<AccountEvent>, AlreadyOpen> {
///     if account.open {
///         return Err(AlreadyOpen);
///     }
///     Ok(vec![Opened { owner: command.owner }.into()])
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let accounts = CommandService::<Account>::new(InMemoryEventStore::new());
/// let opened = accounts.execute(Open { account_id: "a-1".into(), owner: "ada".into() }).await;
/// assert_eq!(opened.unwrap().version(), 1);
/// assert_eq!(<Open as Command>::TYPE, "Open");
/// # });
/// ```
#[cfg(feature = "macros")]
pub use eventsource_macros::command_handler;

/// Traces a function or method: each call runs inside a span.
///
/// Goes on free functions, inherent and trait-impl methods, sync or `async` (including
/// `async fn` in traits), generic or not. Arguments, all optional:
/// - `name = "orders.place"`: the span's name (a string, or a `&str` constant). Default:
///   `{Type}.{method}` for a method with a `self` receiver (`{Type}` is the short name of
///   `Self`, found only when the span is recorded), else the function's name.
/// - `kind = client`: the span kind, one of `internal` (the default), `client`, `server`,
///   `producer`, `consumer`.
/// - `attributes("channel" = "email", retries = 3)`: static attributes (literals or
///   constants). Keys are `a.b`, `"a.b"` or `{ CONSTANT }`.
/// - `fields(customer.id = customer_id, items.count = items.len(), order = %order_id, dbg = ?x)`:
///   attributes read from the arguments (and `self`) when the call starts. A plain value
///   must be an integer (recorded as an OTel `i64`, whatever its Rust type), a float, a
///   `bool` or a string; `%value` records any `Display`, `?value` any `Debug`. `fields(arg)`
///   is `fields(arg = arg)`. Arguments are never recorded unless named here.
/// - `enabled = self.tracing`: a switch for this instance or call; it may read `self` and
///   the arguments. Off (or with the process switch [`telemetry::set_enabled`] off), no span
///   is built and no field expression is evaluated.
/// - `ret`: records the return value's `Debug` as the attribute `return.value`.
/// - `err`: treats the return type as a `Result` even when its name does not end in
///   `Result` (an alias, say); a return type named `...Result` is treated so already.
///
/// An `Err` return, or a panic (which then goes on unwinding), ends the span with status
/// ERROR, the error's `Display` as description, and one `exception` span event
/// (`exception.type`, `exception.message`). Success leaves the status unset. In an `async
/// fn` the span is current across every `.await`. Inside the body,
/// [`telemetry::set_attribute`] adds attributes to the span.
///
/// Without the `tracing` feature the function is left unchanged.
///
/// ```
/// use eventsource_runtime::telemetry;
/// use eventsource_runtime::traced;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("no stock for {0}")]
/// pub struct OutOfStock(String);
///
/// pub struct OrderService { tracing: bool }
///
/// impl OrderService {
///     // Span `OrderService.place_order`, attributes `customer.id`, `items.count` (i64),
///     // `order` (Display) and `channel`; ERROR status when it returns `Err`.
///     #[traced(
///         fields(customer.id = customer_id, items.count = items.len(), order = %order_id),
///         attributes("channel" = "web"),
///         enabled = self.tracing,
///     )]
///     pub async fn place_order(
///         &self,
///         order_id: u64,
///         customer_id: &str,
///         items: &[&str],
///     ) -> Result<usize, OutOfStock> {
///         if items.is_empty() {
///             return Err(OutOfStock("nothing".into()));
///         }
///         telemetry::set_attribute("order.priority", "express");
///         Ok(items.len())
///     }
/// }
///
/// // A client span with its own name, recording the return value.
/// #[traced(name = "pricing.quote", kind = client, ret)]
/// fn quote(cents: u64) -> u64 {
///     cents * 2
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let service = OrderService { tracing: true };
/// assert_eq!(service.place_order(7, "c-1", &["book"]).await.unwrap(), 1);
/// assert!(service.place_order(8, "c-1", &[]).await.is_err());
/// assert_eq!(quote(100), 200);
/// # });
/// ```
#[cfg(feature = "macros")]
pub use eventsource_macros::traced;

/// The names most code needs: `use eventsource_runtime::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "macros")]
    pub use crate::Aggregate;
    pub use crate::aggregate::{Aggregate, AggregateRoot, Apply};
    #[cfg(feature = "broker")]
    pub use crate::broker::BrokerGroup;
    pub use crate::bus::{
        EventBus, EventHandler, HandlerError, InMemoryEventBus, RunnableGroup, Subscribe,
        WithBusTelemetry, handler_fn,
    };
    pub use crate::command::{Command, CommandError, CommandOutcome, CommandService, Handle};
    #[cfg(feature = "macros")]
    pub use crate::command_handler;
    pub use crate::event::{DomainEvent, EventEnvelope, EventType, Metadata, StreamId};
    pub use crate::projection::runner::ProjectionRunner;
    pub use crate::projection::{Projection, ProjectionError, ProjectionRegistry};
    pub use crate::repository::{Repository, RepositoryError};
    pub use crate::snapshot::InMemorySnapshotStore;
    pub use crate::store::{
        EventStore, ExpectedVersion, InMemoryEventStore, StoreError, WithStoreTelemetry,
    };
    #[cfg(feature = "macros")]
    pub use crate::traced;
    #[cfg(feature = "macros")]
    pub use eventsource_macros::projection;
}
