//! Commands with an id ([`CommandService::execute_once`]): a retry of the same id returns
//! the events its first execution stored.

use super::instrument::CommandSpan;
use super::{CommandOutcome, CommandService};
use crate::aggregate::{Aggregate, AggregateRoot};
use crate::event::EventEnvelope;
use crate::repository::RepositoryError;

/// What loading for a command id found.
pub(super) enum Recall<A: Aggregate> {
    /// The id's first execution: its outcome.
    First(CommandOutcome<A>),
    /// A new id: the aggregate to decide on.
    New(AggregateRoot<A>),
}

impl<A: Aggregate> CommandService<A> {
    /// Loads the aggregate `id`, looking for `command_id` among the events read.
    pub(super) async fn recall(
        &self,
        id: &str,
        command_id: &str,
        command: &CommandSpan,
    ) -> Result<Recall<A>, RepositoryError> {
        let (aggregate, first) = self.repository.load_for_command(id, command_id).await?;
        Ok(if first.is_empty() {
            Recall::New(aggregate)
        } else {
            Recall::First(duplicate(aggregate, first, command))
        })
    }

    /// The save of `command_id` met a version conflict: another execution of the same id
    /// may have saved first (then its outcome is the answer), or another command (then the
    /// conflict stands, as it does when the second look fails).
    pub(super) async fn after_conflict(
        &self,
        id: &str,
        command_id: &str,
        conflict: RepositoryError,
        command: &CommandSpan,
    ) -> Result<CommandOutcome<A>, RepositoryError> {
        match self.recall(id, command_id, command).await {
            Ok(Recall::First(outcome)) => Ok(outcome),
            Ok(Recall::New(_)) | Err(_) => Err(conflict),
        }
    }
}

/// The outcome of a recognised command id: its first execution's events.
fn duplicate<A: Aggregate>(
    aggregate: AggregateRoot<A>,
    events: Vec<EventEnvelope>,
    command: &CommandSpan,
) -> CommandOutcome<A> {
    command.duplicate(events.len());
    CommandOutcome {
        aggregate,
        events,
        delivery_failures: Vec::new(),
        publish: None,
        duplicate: true,
    }
}
