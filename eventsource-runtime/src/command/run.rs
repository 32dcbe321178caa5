//! How a command runs: load, decide, record, save, deliver, publish, inside its span.

use std::sync::Arc;

use super::instrument::{self, CommandSpan};
use super::once::Recall;
use super::{
    ANONYMOUS_COMMAND, Command, CommandError, CommandOutcome, CommandService, Handle,
    HandlerTelemetry,
};
use crate::aggregate::{Aggregate, AggregateRoot};
use crate::bus::{BusError, EventBus, PublishReport};
use crate::event::{EventEnvelope, Metadata, StreamId};
use crate::projection::DeliveryFailure;
use crate::repository::RepositoryError;
use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

impl<A: Aggregate> CommandService<A> {
    /// Runs the command inside its span (the command's whole lifecycle: load, decide,
    /// save, deliver) and records its metrics. With a command id in the metadata, a stored
    /// outcome of it is recognised (see [`execute_once`](Self::execute_once)).
    ///
    /// Only this shell is generic over the decision: the load and the save (with delivery
    /// and publishing) are generic over the aggregate alone, so a service's command types
    /// share one copy of them, and a workload mixing commands runs the same code.
    pub(super) async fn traced_run<F, E>(
        &self,
        run: Run,
        decide: F,
    ) -> Result<CommandOutcome<A>, CommandError<E>>
    where
        F: FnOnce(&A) -> Result<Vec<A::Event>, E>,
        E: std::error::Error,
    {
        let Run {
            command_type,
            settings,
            id,
            mut metadata,
        } = run;
        // Asked before the stamp: read after it, the stamped metadata would be parsed into
        // entries, which every stored event would then keep beside its JSON text.
        let has_command_id = metadata.command_id().is_some();
        // The correlation and causation ids every event of the command carries.
        crate::lineage::stamp(&mut metadata);
        let command_id = if has_command_id {
            metadata.command_id()
        } else {
            None
        };
        // The aggregate id, shared from here on by the spans, the root and its envelopes.
        let stream = StreamId::from_shared(A::TYPE, id);
        let command = instrument::start(&instrument::CommandStart {
            settings,
            command_type,
            stream: &stream,
            command_id,
            stamped: &metadata,
        });
        let saved = match self.repository.at_once() {
            // A store that answers at once: no future until the delivery.
            Some(store) if command_id.is_none() => command.span.in_scope(|| {
                let mut aggregate = self.repository.load_at_once(store, &stream)?;
                let decided = decide(aggregate.state()).map_err(CommandError::Rejected)?;
                command.decided(&decided);
                aggregate.record_decided(decided);
                let events = self
                    .repository
                    .save_at_once(store, &mut aggregate, &metadata)?;
                Ok(Saved::Stored(aggregate, events))
            }),
            _ => {
                let work = async {
                    let aggregate = match self.load(&stream, command_id, &command).await? {
                        Recall::First(outcome) => return Ok(Saved::Before(outcome)),
                        Recall::New(aggregate) => aggregate,
                    };
                    let decided = decide(aggregate.state()).map_err(CommandError::Rejected)?;
                    let saved = self.save(aggregate, decided, &metadata, command_id, &command);
                    Ok(saved.await?)
                };
                command.span.run(OutOfLine { work }).await
            }
        };
        let result = match saved {
            Ok(Saved::Stored(aggregate, events)) => {
                let (delivery_failures, publish) = command.span.run(self.deliver(&events)).await;
                Ok(CommandOutcome {
                    aggregate,
                    events,
                    delivery_failures,
                    publish,
                    duplicate: false,
                })
            }
            Ok(Saved::Before(outcome)) => Ok(outcome),
            Err(error) => Err(error),
        };
        let produced = match &result {
            Ok(outcome) if !outcome.duplicate => outcome.events.len(),
            _ => 0,
        };
        command.finish(&result, produced);
        result
    }

    /// Loads the aggregate of `stream` for a command, or, for a command id already
    /// executed, that execution's outcome.
    async fn load(
        &self,
        stream: &StreamId,
        command_id: Option<&str>,
        command: &CommandSpan,
    ) -> Result<Recall<A>, RepositoryError> {
        match command_id {
            None => Ok(Recall::New(
                self.repository.load_stream(stream.clone()).await?,
            )),
            // Boxed, as below: commands with an id are the rare path, and their load is
            // as large as the common one; inline, every command's future would carry both.
            Some(command_id) => {
                Box::pin(self.recall(stream.aggregate_id(), command_id, command)).await
            }
        }
    }

    /// Records the decided events on the loaded aggregate and saves them with `metadata`.
    /// A command id's version conflict is answered with the outcome of the execution that
    /// saved first, if it had the same id.
    async fn save(
        &self,
        mut aggregate: AggregateRoot<A>,
        decided: Vec<A::Event>,
        metadata: &Metadata,
        command_id: Option<&str>,
        command: &CommandSpan,
    ) -> Result<Saved<A>, RepositoryError> {
        command.decided(&decided);
        aggregate.record_decided(decided);
        let saved = self
            .repository
            .save_with_metadata(&mut aggregate, metadata)
            .await;
        match (saved, command_id) {
            (Ok(events), _) => Ok(Saved::Stored(aggregate, events)),
            (Err(error), Some(command_id)) if error.as_conflict().is_some() => {
                let id = aggregate.stream().aggregate_id();
                let first = Box::pin(self.after_conflict(id, command_id, error, command));
                Ok(Saved::Before(first.await?))
            }
            (Err(error), _) => Err(error),
        }
    }

    /// Delivers the stored events to the projections and publishes them: what failed to
    /// receive them, and what the bus did.
    async fn deliver(&self, events: &[EventEnvelope]) -> (Vec<DeliveryFailure>, Published) {
        let delivery_failures = self.projections.deliver(events).await;
        let publish = match &self.bus {
            Some(bus) if !events.is_empty() => Some(publish(&**bus, events).await),
            _ => None,
        };
        (delivery_failures, publish)
    }
}

pin_project_lite::pin_project! {
    /// A future polled out of line: its code stays out of the function that awaits it. The
    /// path through a store that waits is compiled into every command's own future, beside
    /// the in-memory path, which then spread over more of the instruction cache.
    struct OutOfLine<F> {
        #[pin]
        work: F,
    }
}

impl<F: Future> Future for OutOfLine<F> {
    type Output = F::Output;

    #[inline(never)]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.project().work.poll(cx)
    }
}

/// What publishing the events did (see [`CommandOutcome::publish`]).
type Published = Option<Result<PublishReport, BusError>>;

/// What a save did.
enum Saved<A: Aggregate> {
    /// The events are stored.
    Stored(AggregateRoot<A>, Vec<EventEnvelope>),
    /// Another execution of the command id stored its events first: its outcome.
    Before(CommandOutcome<A>),
}

/// One command run: what its span and its events say about it.
pub(super) struct Run {
    command_type: &'static str,
    settings: HandlerTelemetry,
    /// The aggregate's id.
    id: Arc<str>,
    /// Stored with each event; its command id, if any, makes the run
    /// [`CommandService::execute_once`].
    metadata: Metadata,
}

impl Run {
    /// The run of `command`, storing `metadata` with its events.
    pub(super) fn of<A: Handle<C>, C: Command>(command: &C, metadata: Metadata) -> Self {
        Self {
            command_type: C::TYPE,
            settings: <A as Handle<C>>::TELEMETRY,
            id: command.shared_aggregate_id(),
            metadata,
        }
    }

    /// The run of a decision given as a closure, for the aggregate `id`.
    pub(super) fn anonymous(id: String) -> Self {
        Self {
            command_type: ANONYMOUS_COMMAND,
            settings: HandlerTelemetry::DEFAULT,
            id: Arc::from(id),
            metadata: Metadata::new(),
        }
    }
}

/// Publishes stored events on the bus; a failure is logged (the events stay stored).
async fn publish(bus: &dyn EventBus, events: &[EventEnvelope]) -> Result<PublishReport, BusError> {
    let result = bus.publish(events).await;
    if let Err(error) = &result {
        log_warn!(
            error = %Chain(error),
            events = events.len(),
            "publishing stored events failed; they stay stored"
        );
    }
    result
}
