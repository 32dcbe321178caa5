//! Commands: load -> decide -> record -> save -> deliver, in one call.

use std::sync::Arc;

use crate::aggregate::{Aggregate, AggregateRoot};
use crate::bus::{BusError, EventBus, PublishReport};
use crate::event::{EventEnvelope, Metadata};
use crate::projection::{DeliveryFailure, Projection, ProjectionRegistry, SharedProjection};
use crate::repository::{Repository, RepositoryError};
use crate::store::{EventStore, VersionConflict};
use crate::telemetry::config::HandlerTelemetry;
#[cfg(feature = "tracing")]
use crate::telemetry::{metrics, spans};
#[cfg(feature = "tracing")]
use tracing::Instrument as _;

/// The command type recorded for [`CommandService::execute_with`] decisions.
pub const ANONYMOUS_COMMAND: &str = "anonymous";

/// A request to change one aggregate.
pub trait Command: Send + 'static {
    /// The command's type name, e.g. `"PlaceOrder"` (used in telemetry and metrics).
    const TYPE: &'static str;
    /// The id of the aggregate the command is for.
    fn aggregate_id(&self) -> String;
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

/// Why a command did not produce stored events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// The aggregate refused the command; nothing was stored.
    #[error("command rejected: {0}")]
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
    /// The aggregate after the command, with no uncommitted event.
    pub aggregate: AggregateRoot<A>,
    /// The events the command stored (empty when it decided on none).
    pub events: Vec<EventEnvelope>,
    /// Projections that failed on these events. The events are stored regardless.
    pub delivery_failures: Vec<DeliveryFailure>,
    /// What publishing the events on the service's [bus](CommandService::with_bus) did:
    /// `None` without a bus or without events. An `Err` never undoes the save: the events
    /// are stored, and can be published again from the store.
    pub publish: Option<Result<PublishReport, BusError>>,
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
        self.execute_with_metadata(command, Metadata::new()).await
    }

    /// As [`execute`](Self::execute), storing `metadata` with each produced event.
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
        let id = command.aggregate_id();
        let settings = <A as Handle<C>>::TELEMETRY;
        self.traced_run(C::TYPE, settings, id, metadata, |state| {
            state.handle(command)
        })
        .await
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
        self.traced_run(
            ANONYMOUS_COMMAND,
            HandlerTelemetry::DEFAULT,
            id.into(),
            Metadata::new(),
            decide,
        )
        .await
    }

    /// Runs the command inside its span (the command's whole lifecycle: load, decide,
    /// save, deliver) and records its metrics.
    async fn traced_run<F, E>(
        &self,
        command_type: &'static str,
        settings: HandlerTelemetry,
        id: String,
        metadata: Metadata,
        decide: F,
    ) -> Result<CommandOutcome<A>, CommandError<E>>
    where
        F: FnOnce(&A) -> Result<Vec<A::Event>, E>,
        E: std::error::Error,
    {
        #[cfg(feature = "tracing")]
        {
            if !crate::telemetry::toggles::is_enabled() {
                return self.run(id, metadata, decide, |_| {}).await;
            }
            let started = std::time::Instant::now();
            let stream = crate::event::StreamId::new(A::TYPE, id.as_str());
            let span = if settings.enabled {
                spans::command(settings.span_name, command_type, &stream)
            } else {
                tracing::Span::none()
            };
            let on_decided = |events: &[A::Event]| {
                let types: Vec<&'static str> = events
                    .iter()
                    .map(crate::event::DomainEvent::event_type)
                    .collect();
                spans::command_decided(&span, &types);
            };
            let result = self
                .run(id, metadata, decide, on_decided)
                .instrument(span.clone())
                .await;
            let produced = result.as_ref().map_or(0, |outcome| outcome.events.len());
            metrics::record_command(command_type, result.is_ok(), produced, started.elapsed());
            if let Err(error) = &result {
                let error_type = match error {
                    CommandError::Rejected(_) => std::any::type_name::<E>(),
                    CommandError::Repository(_) => "RepositoryError",
                };
                spans::record_error(&span, error_type, error);
            }
            result
        }
        #[cfg(not(feature = "tracing"))]
        {
            let _ = (command_type, settings);
            self.run(id, metadata, decide, |_| {}).await
        }
    }

    async fn run<F, E>(
        &self,
        id: String,
        metadata: Metadata,
        decide: F,
        on_decided: impl FnOnce(&[A::Event]),
    ) -> Result<CommandOutcome<A>, CommandError<E>>
    where
        F: FnOnce(&A) -> Result<Vec<A::Event>, E>,
    {
        let mut aggregate = self.repository.load(id).await?;
        let decided = decide(aggregate.state()).map_err(CommandError::Rejected)?;
        on_decided(&decided);
        for event in decided {
            aggregate.record(event);
        }
        let events = self
            .repository
            .save_with_metadata(&mut aggregate, &metadata)
            .await?;
        let delivery_failures = self.projections.deliver(&events).await;
        let publish = match &self.bus {
            Some(bus) if !events.is_empty() => Some(publish(&**bus, &events).await),
            _ => None,
        };
        Ok(CommandOutcome {
            aggregate,
            events,
            delivery_failures,
            publish,
        })
    }
}

/// Publishes stored events on the bus; a failure is logged (the events stay stored).
async fn publish(bus: &dyn EventBus, events: &[EventEnvelope]) -> Result<PublishReport, BusError> {
    let result = bus.publish(events).await;
    #[cfg(feature = "tracing")]
    if let Err(error) = &result {
        tracing::warn!(
            target: spans::TARGET,
            error = %error,
            events = events.len(),
            "publishing stored events failed; they stay stored"
        );
    }
    result
}
