//! Commands: load -> decide -> record -> save -> deliver, in one call.

mod instrument;
mod once;
mod run;

use std::sync::Arc;

use crate::aggregate::{Aggregate, AggregateRoot};
use crate::bus::{BusError, EventBus, PublishReport};
use crate::event::{EventEnvelope, Metadata};
use crate::projection::{DeliveryFailure, Projection, ProjectionRegistry, SharedProjection};
use crate::repository::{Repository, RepositoryError};
use crate::store::{EventStore, VersionConflict};
use run::Run;

/// The command type recorded for [`CommandService::execute_with`] decisions.
pub const ANONYMOUS_COMMAND: &str = "anonymous";

/// A request to change one aggregate.
pub trait Command: Send + 'static {
    /// The command's type name, e.g. `"PlaceOrder"` (used in telemetry and metrics).
    const TYPE: &'static str;
    /// The id of the aggregate the command is for.
    fn aggregate_id(&self) -> String;

    /// The same id, as the runtime keeps it (shared by the command's spans, its aggregate
    /// and its events). `#[command_handler]` writes it straight from its `aggregate_id`
    /// expression; by default, [`aggregate_id`](Self::aggregate_id)'s text, copied.
    #[doc(hidden)]
    fn shared_aggregate_id(&self) -> Arc<str> {
        Arc::from(self.aggregate_id())
    }
}

/// An aggregate's decision on command `C`: the events it produces, or why it refuses.
///
/// The decision only reads the state; the events are applied by the caller. Write the
/// decision as a plain method and delegate to it.
pub trait Handle<C>: Aggregate {
    /// Why the aggregate refuses the command.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The handler's telemetry settings (span switch and name); `#[command_handler]` sets
    /// them.
    const TELEMETRY: HandlerTelemetry = HandlerTelemetry::DEFAULT;

    /// Decides which events the command produces.
    ///
    /// # Errors
    /// The domain's reason to refuse the command.
    fn handle(&self, command: C) -> Result<Vec<Self::Event>, Self::Error>;
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

/// Why a command did not produce stored events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// The aggregate refused the command; nothing was stored.
    #[error("command rejected")]
    Rejected(#[source] E),
    /// Loading or saving failed; nothing was stored.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

impl<E> CommandError<E> {
    /// The version conflict, when another writer saved first.
    #[must_use]
    pub fn as_conflict(&self) -> Option<&VersionConflict> {
        match self {
            Self::Repository(e) => e.as_conflict(),
            Self::Rejected(_) => None,
        }
    }

    /// The domain error, when the aggregate refused the command.
    #[must_use]
    pub fn as_rejection(&self) -> Option<&E> {
        match self {
            Self::Rejected(e) => Some(e),
            Self::Repository(_) => None,
        }
    }
}

/// What a successful command did.
#[derive(Debug)]
pub struct CommandOutcome<A: Aggregate> {
    /// The aggregate after the command, with no uncommitted event. Dropped, it goes back to
    /// the repository's [cache](crate::repository::Repository::with_cache): drop the outcome
    /// (or this root) before the aggregate's next command, or that command reads its stream.
    pub aggregate: AggregateRoot<A>,
    /// The events the command stored (empty when it decided on none); they carry the events
    /// as recorded (see [`EventEnvelope::decode`]).
    pub events: Vec<EventEnvelope>,
    /// Projections that failed on these events. The events are stored regardless.
    pub delivery_failures: Vec<DeliveryFailure>,
    /// What publishing the events on the service's [bus](CommandService::with_bus) did:
    /// `None` without a bus or without events. An `Err` never undoes the save: the events
    /// are stored, and can be published again from the store.
    pub publish: Option<Result<PublishReport, BusError>>,
    /// `true` when [`execute_once`](CommandService::execute_once) recognised the command
    /// id: `events` are those its first execution stored, and nothing was decided,
    /// appended, delivered or published this time.
    pub duplicate: bool,
}

impl<A: Aggregate> CommandOutcome<A> {
    /// The aggregate's version after the command.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.aggregate.version()
    }

    /// The bus's error, when publishing the stored events failed.
    #[must_use]
    pub fn publish_error(&self) -> Option<&BusError> {
        self.publish.as_ref().and_then(|p| p.as_ref().err())
    }
}

/// Runs commands against aggregates of type `A`: load, decide, record, save, deliver.
///
/// With a bus ([`with_bus`](Self::with_bus)), the stored events are then published, inside
/// the command's span.
///
/// Cheap to clone; clones share the store, the projections and the bus.
///
/// ```
/// use eventsource_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub struct Deposited { pub amount: u64 }
///
/// #[derive(Default, Aggregate)]
/// #[aggregate(type = "Account", events(Deposited))]
/// pub struct Account { balance: u64 }
///
/// impl Apply<Deposited> for Account {
///     fn apply(&mut self, e: &Deposited) { self.balance += e.amount; }
/// }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("nothing to deposit")]
/// pub struct ZeroAmount;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let accounts = CommandService::<Account>::new(InMemoryEventStore::new());
/// let outcome = accounts
///     .execute_with("acc-1", |_account| match 25 {
///         0 => Err(ZeroAmount),
///         amount => Ok(vec![Deposited { amount }.into()]),
///     })
///     .await
///     .unwrap();
/// assert_eq!(outcome.version(), 1);
/// assert_eq!(outcome.aggregate.state().balance, 25);
/// # });
/// ```
pub struct CommandService<A: Aggregate> {
    repository: Repository<A>,
    projections: ProjectionRegistry,
    bus: Option<Arc<dyn EventBus>>,
}

impl<A: Aggregate> Clone for CommandService<A> {
    fn clone(&self) -> Self {
        Self {
            repository: self.repository.clone(),
            projections: self.projections.clone(),
            bus: self.bus.clone(),
        }
    }
}

impl<A: Aggregate> std::fmt::Debug for CommandService<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandService")
            .field("repository", &self.repository)
            .field("projections", &self.projections)
            .field("bus", &self.bus.is_some())
            .finish()
    }
}

impl<A: Aggregate> CommandService<A> {
    /// A service over `store`, with no projection.
    pub fn new(store: impl EventStore) -> Self {
        Self::with_repository(Repository::new(store), ProjectionRegistry::new())
    }

    /// A service from a repository and the projections to deliver to (which other
    /// services may share).
    #[must_use]
    pub fn with_repository(repository: Repository<A>, projections: ProjectionRegistry) -> Self {
        Self {
            repository,
            projections,
            bus: None,
        }
    }

    /// Builder: after each save (and the projections), publish the stored events on `bus`,
    /// inside the command's span: each publish span is a child of the command span.
    ///
    /// A failed publish never undoes the save; it is logged and reported in
    /// [`CommandOutcome::publish`].
    ///
    /// For in-process buses. For a broker, publish through a
    /// [`Relay`](crate::relay::Relay) instead: it publishes every stored event at least
    /// once, even when this process dies between the save and the publish, or the broker is
    /// down then.
    ///
    /// ```
    /// use eventsource_runtime::bus::InMemoryEventBus;
    /// use eventsource_runtime::prelude::*;
    /// # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    /// # pub struct Opened;
    /// # #[derive(Default, Aggregate)]
    /// # #[aggregate(type = "Account", events(Opened))]
    /// # pub struct Account;
    /// # impl Apply<Opened> for Account { fn apply(&mut self, _: &Opened) {} }
    ///
    /// let bus = InMemoryEventBus::new();
    /// let accounts = CommandService::<Account>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    /// assert!(accounts.bus().is_some());
    /// ```
    #[must_use]
    pub fn with_bus(mut self, bus: impl EventBus) -> Self {
        self.bus = Some(Arc::new(bus));
        self
    }

    /// The bus the service publishes stored events on, if any.
    #[must_use]
    pub fn bus(&self) -> Option<&Arc<dyn EventBus>> {
        self.bus.as_ref()
    }

    /// The repository the service loads and saves through.
    #[must_use]
    pub fn repository(&self) -> &Repository<A> {
        &self.repository
    }

    /// The projections the service delivers to.
    #[must_use]
    pub fn projections(&self) -> &ProjectionRegistry {
        &self.projections
    }

    /// Registers a projection to receive every event this service saves.
    pub fn register<P: Projection>(&self, projection: P) -> SharedProjection<P> {
        self.projections.register(projection)
    }

    /// Runs `command` through the aggregate's [`Handle`] impl.
    ///
    /// # Errors
    /// [`CommandError::Rejected`] with the aggregate's error, or
    /// [`CommandError::Repository`] (a [`VersionConflict`] when another writer saved first).
    pub async fn execute<C>(&self, command: C) -> Result<CommandOutcome<A>, CommandError<A::Error>>
    where
        C: Command,
        A: Handle<C>,
    {
        // Not through `execute_with_metadata`: one future less around every command's.
        let run = Run::of::<A, C>(&command, Metadata::new());
        self.traced_run(run, |state| state.handle(command)).await
    }

    /// As [`execute`](Self::execute), storing `metadata` with each produced event. With a
    /// command id in it ([`Metadata::COMMAND_ID`]), as
    /// [`execute_once`](Self::execute_once).
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_with_metadata<C>(
        &self,
        command: C,
        metadata: Metadata,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>>
    where
        C: Command,
        A: Handle<C>,
    {
        let run = Run::of::<A, C>(&command, metadata);
        self.traced_run(run, |state| state.handle(command)).await
    }

    /// Runs `command` at most once per `command_id`: a retry with the same id (after an
    /// uncertain outcome, such as a connection lost while the append was committing)
    /// returns the events the first execution stored, instead of deciding and appending
    /// again.
    ///
    /// The id is stored in each produced event's metadata ([`Metadata::COMMAND_ID`]; to
    /// store more metadata, give the id in the metadata of
    /// [`execute_with_metadata`](Self::execute_with_metadata)).
    /// Before deciding, the events the load reads anyway are searched for it: when some
    /// carry it, they are the outcome ([`CommandOutcome::duplicate`] is `true`, the
    /// aggregate is the current one), and nothing is decided (so no rejection from the new
    /// state), appended, delivered to the projections or published. A first execution that
    /// was rejected or failed stored nothing, so its retry decides afresh. When another
    /// execution of the same id saves first (a retry racing the first attempt), the
    /// [`VersionConflict`] is answered with that execution's events.
    ///
    /// Ids are recognised per aggregate. Without snapshots every event of the stream is
    /// searched; with them, the events after the newest snapshot and the `every` events up
    /// to it, that is at least the stream's last `every` events: a command id older than
    /// that is not recognised (retries come soon after the first attempt; the snapshot
    /// interval bounds how far back they are recognised).
    ///
    /// A duplicate does not deliver or publish the events again: an in-process projection
    /// or bus may thus have missed them when the first attempt's outcome was lost. Feed
    /// what must see every event from the store (a projection runner).
    ///
    /// ```
    /// use eventsource_runtime::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    /// # pub struct Deposited { pub amount: u64 }
    /// # #[derive(Default, Aggregate)]
    /// # #[aggregate(type = "Account", events(Deposited))]
    /// # pub struct Account { balance: u64 }
    /// # impl Apply<Deposited> for Account {
    /// #     fn apply(&mut self, e: &Deposited) { self.balance += e.amount; }
    /// # }
    /// pub struct Deposit { pub account: String, pub amount: u64 }
    /// impl Command for Deposit {
    ///     const TYPE: &'static str = "Deposit";
    ///     fn aggregate_id(&self) -> String { self.account.clone() }
    /// }
    /// impl Handle<Deposit> for Account {
    ///     type Error = std::convert::Infallible;
    ///     fn handle(&self, cmd: Deposit) -> Result<Vec<AccountEvent>, Self::Error> {
    ///         Ok(vec![Deposited { amount: cmd.amount }.into()])
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let accounts = CommandService::<Account>::new(InMemoryEventStore::new());
    /// let deposit = || Deposit { account: "acc-1".into(), amount: 25 };
    /// let first = accounts.execute_once("req-7", deposit()).await.unwrap();
    /// // The client did not hear back and sends the same request again.
    /// let retry = accounts.execute_once("req-7", deposit()).await.unwrap();
    /// assert!(retry.duplicate);
    /// assert_eq!(retry.events, first.events);
    /// assert_eq!(retry.aggregate.state().balance, 25, "deposited once");
    /// # });
    /// ```
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_once<C>(
        &self,
        command_id: impl Into<String>,
        command: C,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>>
    where
        C: Command,
        A: Handle<C>,
    {
        let metadata = Metadata::new().with(Metadata::COMMAND_ID, command_id);
        self.execute_with_metadata(command, metadata).await
    }

    /// Runs a decision given as a closure over the current state, for the aggregate `id`.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_with<F, E>(
        &self,
        id: impl Into<String>,
        decide: F,
    ) -> Result<CommandOutcome<A>, CommandError<E>>
    where
        F: FnOnce(&A) -> Result<Vec<A::Event>, E>,
        E: std::error::Error,
    {
        self.traced_run(Run::anonymous(id.into()), decide).await
    }
}
