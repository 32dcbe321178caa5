//! `eventsource dead-letters list|requeue|purge`: a consumer group's dead letters on the
//! service's broker, through `operate::DeadLetterAddress` (which broker the URL names).

use crate::args::DeadLettersCommand;
use crate::exit::CliError;

#[cfg(not(feature = "broker"))]
pub async fn run(_: DeadLettersCommand, _: bool) -> Result<(), CliError> {
    Err(CliError::Usage(
        "this eventsource was built without a broker: install it with --features \
         cli,rabbitmq (or kafka, or nats)"
            .to_owned(),
    ))
}

#[cfg(feature = "broker")]
pub use with_broker::{open_group, run};

#[cfg(feature = "broker")]
mod with_broker {
    use eventsource_runtime::bus::{BusError, DeadLetterEntry, DeadLetterQueue};
    use eventsource_runtime::operate::{DeadLetterAddress, DeadLetterAddressError};
    use serde::Serialize;

    use super::{CliError, DeadLettersCommand};
    use crate::args::BrokerArgs;
    use crate::output;

    /// One dead letter, as `list` prints it.
    #[derive(Debug, Serialize)]
    struct Letter {
        /// `failed` (a handler failed on it) or `undecodable` (not a stored event).
        kind: &'static str,
        /// The message id: the event's id for a stored event (the console's key too).
        message_id: Option<String>,
        event_type: Option<String>,
        stream: Option<String>,
        position: Option<u64>,
        correlation_id: Option<String>,
        trace_id: Option<String>,
        /// The handlers that failed, comma-separated.
        handler: Option<String>,
        attempts: Option<u32>,
        /// The last error, or why the body could not be read.
        error: String,
    }

    impl From<&DeadLetterEntry> for Letter {
        fn from(entry: &DeadLetterEntry) -> Self {
            if let Some(failed) = entry.as_failed() {
                let event = &failed.message.event;
                return Self {
                    kind: "failed",
                    message_id: Some(failed.message.message_id.to_string()),
                    event_type: Some(event.event_type.to_string()),
                    stream: Some(format!(
                        "{}/{}",
                        event.aggregate_type(),
                        event.aggregate_id()
                    )),
                    position: Some(event.position),
                    correlation_id: event.metadata.correlation_id().map(str::to_owned),
                    trace_id: event.metadata.trace_id(),
                    handler: Some(failed.handler.clone()),
                    attempts: Some(failed.attempts),
                    error: failed.error.clone(),
                };
            }
            let undecodable = entry.as_undecodable();
            Self {
                kind: "undecodable",
                message_id: undecodable.and_then(|u| u.message_id.clone()),
                event_type: None,
                stream: None,
                position: None,
                correlation_id: None,
                trace_id: None,
                handler: None,
                attempts: None,
                error: undecodable.map(|u| u.reason.clone()).unwrap_or_default(),
            }
        }
    }

    pub async fn run(command: DeadLettersCommand, json: bool) -> Result<(), CliError> {
        match command {
            DeadLettersCommand::List { broker, limit } => list(&broker, limit, json).await,
            DeadLettersCommand::Requeue { broker } => requeue(&broker, json).await,
            DeadLettersCommand::Purge { broker } => purge(&broker, json).await,
        }
    }

    /// The group's dead letters, once the broker said it knows the group.
    async fn open(
        args: &BrokerArgs,
    ) -> Result<(DeadLetterAddress, Box<dyn DeadLetterQueue>), CliError> {
        open_group(
            &args.broker,
            &args.group,
            args.prefix.as_deref(),
            args.stream.as_deref(),
        )
        .await
    }

    /// The dead letters of group `group` on the broker at `url` (the bus's `prefix` and
    /// NATS `stream` when the service set them), once the broker said it knows the group:
    /// a group that is not there is not found (exit 3), and nothing is declared for it.
    pub async fn open_group(
        url: &str,
        group: &str,
        prefix: Option<&str>,
        stream: Option<&str>,
    ) -> Result<(DeadLetterAddress, Box<dyn DeadLetterQueue>), CliError> {
        let mut address = DeadLetterAddress::new(url, group);
        if let Some(prefix) = prefix {
            address = address.with_prefix(prefix);
        }
        if let Some(stream) = stream {
            address = address.with_stream(stream);
        }
        let queue = address.open().map_err(|error| match error {
            // The URL's own problems are the operator's to fix: usage. The message shows
            // no secret.
            DeadLetterAddressError::InvalidUrl { .. } => CliError::Usage(chain(&error)),
            other => CliError::Usage(other.to_string()),
        })?;
        let exists = queue.group_exists().await.map_err(broker_failed(
            &address,
            "cannot ask the broker about the group",
        ))?;
        if !exists {
            return Err(CliError::NotFound(format!(
                "no consumer group `{group}` on {} (the service declares it when it starts; \
                 check --group and --prefix)",
                address.redacted_url()
            )));
        }
        Ok((address, queue))
    }

    /// A broker error met while doing `what`, naming the broker (secrets hidden).
    fn broker_failed(address: &DeadLetterAddress, what: &str) -> impl FnOnce(BusError) -> CliError {
        let what = format!("{what} ({})", address.redacted_url());
        move |source| CliError::Broker { what, source }
    }

    /// `error` and its sources on one line.
    fn chain(error: &dyn std::error::Error) -> String {
        let mut line = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            line.push_str(": ");
            line.push_str(&cause.to_string());
            source = cause.source();
        }
        line
    }

    async fn list(args: &BrokerArgs, limit: u32, json: bool) -> Result<(), CliError> {
        let (address, queue) = open(args).await?;
        let max = usize::try_from(limit).unwrap_or(usize::MAX);
        let entries = queue
            .list(max)
            .await
            .map_err(broker_failed(&address, "cannot list the dead letters"))?;
        let letters: Vec<Letter> = entries.iter().map(Letter::from).collect();
        if json {
            return output::json(&letters);
        }
        if letters.is_empty() {
            return output::text(&format!(
                "{}: no dead letters ({})\n",
                args.group,
                queue.location()
            ));
        }
        let dash = || "-".to_owned();
        let rows: Vec<Vec<String>> = letters
            .iter()
            .map(|l| {
                vec![
                    l.message_id.clone().unwrap_or_else(dash),
                    l.event_type.clone().unwrap_or_else(|| l.kind.to_owned()),
                    l.stream.clone().unwrap_or_else(dash),
                    l.handler.clone().unwrap_or_else(dash),
                    l.attempts.map_or_else(dash, |a| a.to_string()),
                    l.error.replace('\n', " "),
                ]
            })
            .collect();
        output::text(&output::table(
            &["ID", "EVENT", "STREAM", "HANDLER", "ATTEMPTS", "ERROR"],
            &rows,
        ))
    }

    async fn requeue(args: &BrokerArgs, json: bool) -> Result<(), CliError> {
        let (address, queue) = open(args).await?;
        let moved = queue
            .requeue()
            .await
            .map_err(broker_failed(&address, "cannot move the dead letters back"))?;
        if json {
            return output::json(&serde_json::json!({ "group": args.group, "requeued": moved }));
        }
        output::text(&format!(
            "{}: {moved} dead letter(s) moved back to the group ({})\n",
            args.group,
            queue.location()
        ))
    }

    async fn purge(args: &BrokerArgs, json: bool) -> Result<(), CliError> {
        let (address, queue) = open(args).await?;
        let purged = queue
            .purge()
            .await
            .map_err(broker_failed(&address, "cannot purge the dead letters"))?;
        if json {
            return output::json(&serde_json::json!({ "group": args.group, "purged": purged }));
        }
        output::text(&format!(
            "{}: {purged} dead letter(s) deleted ({})\n",
            args.group,
            queue.location()
        ))
    }
}
