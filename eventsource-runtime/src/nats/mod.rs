//! NATS JetStream (feature `nats`): everything the event bus does over a NATS server with
//! JetStream, through [async-nats](https://docs.rs/async-nats) on tokio.
//!
//! - [`NatsBus`] publishes stored events ([`EventBus`](crate::bus::EventBus)): each message stored in a
//!   file-backed stream and acknowledged by JetStream before the publish succeeds, subject
//!   `{prefix}.{aggregate_type}.{event_type}`, `Nats-Msg-Id` = the event id (JetStream's
//!   duplicate window drops a relay's republish); an error acknowledgement (no stream for
//!   the subject, say), a lost connection or no acknowledgement within the timeout is a
//!   typed [`BusError`], never a silent drop;
//! - [`ConsumerGroup`] consumes them: one durable pull consumer per group, filtered by
//!   patterns, its handlers run through a [`Dispatcher`](crate::bus::Dispatcher), an
//!   acknowledgement only after every handler succeeded, a failure retried after a delay
//!   (for the failed handlers only, even across restarts), then dead-lettered;
//! - [`DeadLetters`] lists, counts, moves back and purges a group's dead letters.
//!
//! # Topology
//!
//! Declared idempotently by whichever side starts first ([`NatsBus::declare`] for the
//! streams, [`ConsumerGroup::declare`] for a group's consumers: declare the groups from the
//! producer too, so that a group sees what was published before it first ran):
//!
//! | name | what |
//! |---|---|
//! | stream `{stream}` (default `EVENTSOURCE`), subjects `{prefix}.>` (default `eventsource`) | the events, file storage, limits retention, a two-minute duplicate window |
//! | stream `{stream}_RETRY`, subjects `{prefix}-retry.>` | retry copies, work-queue retention (gone once acknowledged) |
//! | stream `{stream}_DEAD`, subjects `{prefix}-dead.>` | dead letters, limits retention |
//! | consumer `{prefix}-{group}` on `{stream}` | the group's durable pull consumer, explicit acks, filtered by its pattern (default `{prefix}.>`) |
//! | consumer `{prefix}-{group}-retry` on `{stream}_RETRY`, subject `{prefix}-retry.{group}` | the group's retry copies |
//! | subject `{prefix}-dead.{group}` on `{stream}_DEAD` | the group's dead letters, with the last error in `x-eventsource-error` |
//!
//! (`{group}` with `.`, `*`, `>` and whitespace replaced by `_`.)
//!
//! # Messages
//!
//! The bus's [wire format](crate::bus::wire), every header as text: the body is the stored
//! event as JSON; the headers carry the message id (`eventsource-message-id`, and
//! `Nats-Msg-Id` on the first publish), the W3C context of the publish span
//! (`traceparent`, `tracestate`, `baggage`), the event's identity (`eventsource-*`), and
//! the delivery state of a retried or dead-lettered copy (`x-eventsource-attempt`,
//! `x-eventsource-handlers`: those that failed, `x-eventsource-error`).
//!
//! # Telemetry
//!
//! The bus's spans are the contract's (`docs/telemetry.md`) with `messaging.system` = `nats`
//! ([`SYSTEM`]), `server.address`/`server.port`, `messaging.operation.name` = `publish` or
//! `process`, `messaging.destination.name` = the subject
//! (`{prefix}.{aggregate_type}.{event_type}`; on a consume span the subject the message arrived
//! on, the group's retry subject for a retry copy), and on consume spans
//! `messaging.consumer.group.name` = the durable consumer that delivered it
//! ([`ConsumerGroup::consumer_name`], or its retry consumer's). A first delivery's consume span
//! continues the producer's trace; a retry, or a message JetStream delivered again (its
//! consumer died or stopped before acknowledging it), is a new root linked to the producer's
//! span.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use eventsource_runtime::bus::{EventBus, HandlerError, Subscribe};
//! use eventsource_runtime::nats::NatsBus;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = NatsBus::new("nats://127.0.0.1:4222")?.with_stream("SHOP").with_subject_prefix("shop");
//! bus.declare().await?;
//!
//! // A consumer group: its own durable consumer, retries after 1 s and 10 s, then the
//! // dead letters.
//! let mailer = bus
//!     .consumer_group("mailer")
//!     .bind("Order.OrderPlaced")
//!     .retry_delays([Duration::from_secs(1), Duration::from_secs(10)]);
//! mailer.subscribe_fn("send-confirmation", |event| async move {
//!     println!("confirming {}", event.aggregate_id());
//!     Ok::<(), HandlerError>(())
//! });
//! mailer.declare().await?; // so that what is published now is kept for it
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let consuming = tokio::spawn(async move { mailer.run(async { let _ = stopped.await; }).await });
//!
//! // ... `CommandService::with_bus(bus.clone())`, or a relay, publishes ...
//! let _ = stop.send(());
//! consuming.await??;
//! # Ok(()) }
//! ```

mod codec;
mod consumer;
mod dead_letters;
mod error;
mod inbox;
mod lag;
mod settle;
mod tls;
mod topology;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::Context;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use uuid::Uuid;

use crate::broker::publish::{InFlight, Outcomes, SpanParent, event_bus_by_publish_all};
use crate::broker::settings::configured;
use crate::bus::instrument;
use crate::bus::wire::DeliveryState;
use crate::bus::{
    BusError, BusMessage, BusTelemetry, PublishFailure, PublishReport, WithBusTelemetry,
};
use crate::event::EventEnvelope;
use error::{connect_failed, invalid_url, publish_error};
use topology::Streams;

/// The NATS client this module is built on, for tools of your own (and so that they match
/// its version).
pub use async_nats;
pub use consumer::{
    ConsumerGroup, DEFAULT_ACK_WAIT, DEFAULT_DRAIN_ON_STOP, DEFAULT_PREFETCH, DEFAULT_RETRY_DELAYS,
};
pub use dead_letters::DeadLetters;

/// `messaging.system` of the NATS bus. Not (yet) among the OpenTelemetry messaging
/// conventions' `messaging.system` values; the conventional name of the system.
pub const SYSTEM: &str = "nats";

/// The stream a bus publishes to unless told otherwise.
pub const DEFAULT_STREAM: &str = "EVENTSOURCE";

/// The first token of every subject a bus publishes to, unless told otherwise.
pub const DEFAULT_SUBJECT_PREFIX: &str = "eventsource";

/// How long a publish waits for JetStream's acknowledgement by default.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How many messages of one publish may wait for their acknowledgement at once (async-nats
/// holds a permit, of 5,000 per connection, for each).
const MAX_IN_FLIGHT: usize = 1024;

/// How long connecting to the server may take before a publish fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An [`EventBus`](crate::bus::EventBus) over a NATS server with JetStream; see the [module](self) for the
/// topology, the messages and the telemetry.
///
/// It connects on first use (or [`declare`](Self::declare)); async-nats reconnects by
/// itself after the connection was lost: a publish meanwhile fails with
/// [`BusError::Unavailable`], a later one goes through once the connection is back. Cheap
/// to clone; clones share the connection. Its `Debug` shows the server, never a password.
#[derive(Clone)]
pub struct NatsBus {
    shared: Arc<Shared>,
}

struct Shared {
    /// The server's address (it may hold a user and password: never printed).
    addr: ServerAddr,
    streams: Streams,
    ack_timeout: Duration,
    /// TLS settings (async-nats's defaults when `None`).
    tls: Option<crate::broker::BrokerTls>,
    telemetry: BusTelemetry,
    /// The connection and its JetStream context, once connected.
    connection: Mutex<Option<(Client, Context)>>,
    /// How many times the connection was made again after it was lost: a publish sent
    /// before waits no longer for its acknowledgement (none comes on the new connection).
    connections: watch::Sender<u64>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("server", &self.shared.telemetry.server)
            .field("stream", &self.shared.streams.live)
            .field("subject_prefix", &self.shared.streams.prefix)
            .field("ack_timeout", &self.shared.ack_timeout)
            .finish_non_exhaustive()
    }
}

impl WithBusTelemetry for NatsBus {
    fn configure_telemetry(self, change: impl FnOnce(&mut BusTelemetry)) -> Self {
        self.configure(|shared| change(&mut shared.telemetry))
    }
}

impl NatsBus {
    /// A bus on the server at `url` (`nats://host:4222`, `nats://user:password@host:4222`,
    /// `tls://...`, see [`with_tls`](Self::with_tls)), publishing to [`DEFAULT_STREAM`] under [`DEFAULT_SUBJECT_PREFIX`].
    /// Nothing is connected yet.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when `url` is not a NATS URL
    /// ([`UnavailableReason::InvalidUrl`](crate::bus::UnavailableReason::InvalidUrl)).
    pub fn new(url: &str) -> Result<Self, BusError> {
        let addr: ServerAddr = url.parse().map_err(invalid_url)?;
        // The password (or a token, `nats://token@host`) stays out of every log line.
        crate::telemetry::secrets::hide_url_password(url);
        if addr.password().is_none()
            && let Some(token) = addr.username()
        {
            crate::telemetry::secrets::hide(token);
            crate::telemetry::secrets::hide(&percent_decoded(token));
        }
        let mut telemetry = BusTelemetry::new(SYSTEM);
        telemetry.server = Some((addr.host().to_owned(), addr.port()));
        Ok(Self {
            shared: Arc::new(Shared {
                addr,
                streams: Streams::new(DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX),
                ack_timeout: DEFAULT_ACK_TIMEOUT,
                tls: None,
                telemetry,
                connection: Mutex::new(None),
                connections: watch::Sender::new(0),
            }),
        })
    }

    /// Builder: the stream to publish to (and the prefix of the retry and dead-letter
    /// streams' names).
    #[must_use]
    pub fn with_stream(self, stream: impl Into<String>) -> Self {
        let stream = stream.into();
        self.configure(|shared| shared.streams = Streams::new(&stream, &shared.streams.prefix))
    }

    /// Builder: the first token of every subject (`{prefix}.{aggregate_type}.{event_type}`;
    /// the stream takes `{prefix}.>`).
    #[must_use]
    pub fn with_subject_prefix(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.configure(|shared| shared.streams = Streams::new(&shared.streams.live, &prefix))
    }

    /// Builder: how long a publish waits for JetStream's acknowledgement before failing
    /// with [`BusError::Unconfirmed`] (default [`DEFAULT_ACK_TIMEOUT`]).
    #[must_use]
    pub fn with_ack_timeout(self, timeout: Duration) -> Self {
        self.configure(|shared| shared.ack_timeout = timeout)
    }

    /// The bus with its settings changed by `change` (copied first if a clone holds them).
    fn configure(self, change: impl FnOnce(&mut Shared)) -> Self {
        let fresh = |shared: &Shared| Shared {
            addr: shared.addr.clone(),
            streams: shared.streams.clone(),
            ack_timeout: shared.ack_timeout,
            tls: shared.tls.clone(),
            telemetry: shared.telemetry.clone(),
            connection: Mutex::new(None),
            connections: watch::Sender::new(0),
        };
        Self {
            shared: configured(self.shared, fresh, change),
        }
    }

    /// The stream messages are published to.
    #[must_use]
    pub fn stream(&self) -> &str {
        &self.shared.streams.live
    }

    /// The first token of every subject.
    #[must_use]
    pub fn subject_prefix(&self) -> &str {
        &self.shared.streams.prefix
    }

    /// The subject of `event`: `{prefix}.{aggregate_type}.{event_type}`.
    #[must_use]
    pub fn subject(&self, event: &EventEnvelope) -> String {
        subject(&self.shared.streams.prefix, event)
    }

    /// The bus's telemetry settings.
    #[must_use]
    pub fn telemetry(&self) -> &BusTelemetry {
        &self.shared.telemetry
    }

    /// Connects now and declares the streams (the live one, the retry copies', the dead
    /// letters'; created, or updated to this configuration).
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the server cannot be reached or refuses (JetStream
    /// off, say).
    pub async fn declare(&self) -> Result<(), BusError> {
        let context = self.context().await?;
        self.shared.streams.declare(&context).await
    }

    /// A consumer group named `name` on this bus: its own durable consumer (of every event
    /// until [`bind`](ConsumerGroup::bind) says otherwise), retries and dead letters.
    #[must_use]
    pub fn consumer_group(&self, name: &str) -> ConsumerGroup {
        ConsumerGroup::new(self.clone(), name)
    }

    /// The JetStream context, connected if it was not.
    async fn context(&self) -> Result<Context, BusError> {
        let mut connection = self.shared.connection.lock().await;
        if let Some((client, context)) = connection.as_ref() {
            return match client.connection_state() {
                State::Disconnected => Err(BusError::unavailable(
                    "the connection to the NATS server is lost (reconnecting)",
                )),
                State::Connected | State::Pending => Ok(context.clone()),
            };
        }
        let server = self.server();
        let connections = self.shared.connections.clone();
        // Only a connection made after one was lost counts (the first one is reported too,
        // possibly after a publish on it was sent).
        let lost = AtomicBool::new(false);
        let options = ConnectOptions::new().event_callback(move |event| {
            match event {
                Event::Disconnected => lost.store(true, Ordering::SeqCst),
                Event::Connected if lost.swap(false, Ordering::SeqCst) => {
                    connections.send_modify(|made| *made += 1);
                }
                _ => {}
            }
            std::future::ready(())
        });
        let options = credentials(&self.shared.addr, options);
        let client = tls::apply(self.shared.tls.as_ref(), options, &server)?
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(without_credentials(&self.shared.addr))
            .await
            .map_err(|error| {
                let tls = self.shared.tls.as_ref();
                let presented = tls.is_some_and(|tls| tls.client_certificate().is_some());
                let host = self.shared.addr.host();
                let failure = tls::failure(&error, host, presented);
                connect_failed(error, &server, failure)
            })?;
        // Our own deadline ends a publish's wait; async-nats's is a backstop behind it.
        let context = async_nats::jetstream::ContextBuilder::new()
            .timeout(self.shared.ack_timeout + Duration::from_secs(1))
            .build(client.clone());
        *connection = Some((client, context.clone()));
        Ok(context)
    }

    /// The server's `host:port`, for errors (never the URL: it may hold a password).
    fn server(&self) -> String {
        let (host, port) = (self.shared.addr.host(), self.shared.addr.port());
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// Whether the connection is lost (async-nats is reconnecting).
    async fn disconnected(&self) -> bool {
        let connection = self.shared.connection.lock().await;
        connection
            .as_ref()
            .is_some_and(|(client, _)| client.connection_state() == State::Disconnected)
    }

    /// The error of a message whose acknowledgement did not come within the timeout: the
    /// connection is lost ([`BusError::Unavailable`]), or it is just late
    /// ([`BusError::Unconfirmed`]).
    async fn late(&self, message_id: Uuid) -> BusError {
        if self.disconnected().await {
            BusError::unavailable(
                "the connection to the NATS server was lost before the acknowledgement",
            )
        } else {
            BusError::Unconfirmed {
                message_id,
                waited: self.shared.ack_timeout,
            }
        }
    }
}

/// `options` with the credentials of `addr`'s URL: `nats://user:password@host` a user and
/// password, `nats://token@host` a token. async-nats (0.50) reads the host and port of a
/// URL, never its credentials: without this they would not be sent, and a server with
/// users would refuse every connection.
fn credentials(addr: &ServerAddr, options: ConnectOptions) -> ConnectOptions {
    let Some(user) = addr.username() else {
        return options;
    };
    match addr.password() {
        Some(password) => {
            options.user_and_password(percent_decoded(user), percent_decoded(password))
        }
        None => options.token(percent_decoded(user)),
    }
}

/// `text` with its `%XX` escapes decoded (a URL's user and password are kept escaped).
fn percent_decoded(text: &str) -> String {
    crate::telemetry::secrets::decoded(text)
}

/// `addr` without its user info: what async-nats is given, so that its own log lines (the
/// address at `DEBUG`) never hold the password; [`credentials`] sends them.
fn without_credentials(addr: &ServerAddr) -> ServerAddr {
    let mut url = addr.clone().into_inner();
    // Both only fail for URLs that cannot have user info, which then has none to remove.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    ServerAddr::from_url(url).unwrap_or_else(|_| addr.clone())
}

/// The subject of `event` under `prefix`.
fn subject(prefix: &str, event: &EventEnvelope) -> String {
    format!("{prefix}.{}.{}", event.aggregate_type(), event.event_type)
}

/// A message sent, its acknowledgement not yet in.
struct Sent {
    ack: PublishAckFuture,
    /// Changes when the connection is made again: the acknowledgement is then lost.
    connections: watch::Receiver<u64>,
}

/// Sends `message` with `state` to `subject` (`Nats-Msg-Id` set when `dedup`); the
/// acknowledgement is awaited by [`acknowledged`].
async fn send(
    bus: &Shared,
    context: &Context,
    subject: &str,
    message: &BusMessage,
    state: &DeliveryState,
    dedup: bool,
) -> Result<Sent, BusError> {
    let body = codec::body(message)?;
    let headers = codec::headers(message, state, dedup);
    let connections = bus.connections.subscribe();
    let ack = context
        .publish_with_headers(subject.to_owned(), headers, body.into())
        .await
        .map_err(|error| publish_error(message.message_id, error, Duration::ZERO))?;
    Ok(Sent { ack, connections })
}

/// Waits until `deadline` for JetStream's acknowledgement of the message `message_id`, or
/// until the connection is made again (the acknowledgement is lost with the old one).
async fn acknowledged(
    sent: Sent,
    message_id: Uuid,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), BusError> {
    let Sent {
        ack,
        mut connections,
    } = sent;
    tokio::select! {
        outcome = tokio::time::timeout_at(deadline, ack.into_future()) => match outcome {
            Err(_) => Err(BusError::Unconfirmed {
                message_id,
                waited: timeout,
            }),
            Ok(Err(error)) => Err(publish_error(message_id, error, timeout)),
            Ok(Ok(_)) => Ok(()),
        },
        Ok(()) = connections.changed() => Err(BusError::unavailable(
            "the connection to the NATS server was lost, and made again, before the \
             acknowledgement: the message may be stored or not (publishing it again is \
             safe: `Nats-Msg-Id` deduplicates)",
        )),
    }
}

/// Publishes a copy of `message` with `state` to `subject` (no `Nats-Msg-Id`: a retry or
/// a dead letter is a copy of its own) and waits for JetStream's acknowledgement.
async fn publish_copy(
    bus: &NatsBus,
    context: &Context,
    subject: &str,
    message: &BusMessage,
    state: &DeliveryState,
) -> Result<(), BusError> {
    let timeout = bus.shared.ack_timeout;
    let sent = send(&bus.shared, context, subject, message, state, false).await?;
    acknowledged(sent, message.message_id, Instant::now() + timeout, timeout).await
}

impl NatsBus {
    /// Sends every event, in order, without waiting between them (up to
    /// [`MAX_IN_FLIGHT`] unacknowledged), then waits for the acknowledgements; each publish
    /// span lasts until its message's acknowledgement. Stops sending at the first failure,
    /// which names the messages acknowledged before the first one that failed (later ones
    /// may have been stored too).
    async fn publish_all(
        &self,
        events: &[EventEnvelope],
        parent: SpanParent,
    ) -> Result<PublishReport, PublishFailure> {
        let context = &self
            .context()
            .await
            .map_err(|error| PublishFailure::new(PublishReport::default(), error))?;
        let shared = &self.shared;
        let mut in_flight: VecDeque<InFlight<Sent>> =
            VecDeque::with_capacity(events.len().min(MAX_IN_FLIGHT));
        let mut outcomes = Outcomes::with_capacity(events.len());
        for event in events {
            if outcomes.failed() {
                break;
            }
            let sending = async {
                let subject = subject(&shared.streams.prefix, event);
                let mut message = BusMessage::new(subject.as_str(), event.clone());
                let publishing = instrument::start_publish(&shared.telemetry, &mut message);
                let state = DeliveryState::default();
                let sending = send(shared, context, &subject, &message, &state, true);
                let sent = publishing.run(sending).await;
                (message.message_id, publishing, sent)
            };
            let deadline = || Instant::now() + shared.ack_timeout;
            if let Some(sent) = outcomes.sent(parent, event, sending, deadline).await {
                in_flight.push_back(sent);
                if in_flight.len() >= MAX_IN_FLIGHT
                    && let Some(oldest) = in_flight.pop_front()
                {
                    self.settle(oldest, &mut outcomes).await;
                }
            }
        }
        while let Some(sent) = in_flight.pop_front() {
            self.settle(sent, &mut outcomes).await;
        }
        outcomes.report()
    }

    /// Waits for the acknowledgement of a message sent and records its outcome.
    async fn settle(&self, sent: InFlight<Sent>, outcomes: &mut Outcomes) {
        let timeout = self.shared.ack_timeout;
        let mut outcome = acknowledged(sent.pending, sent.message_id, sent.deadline, timeout).await;
        if let Err(BusError::Unconfirmed { message_id, .. }) = outcome {
            outcome = Err(self.late(message_id).await);
        }
        outcomes.record(sent.message_id, sent.publishing, outcome);
    }
}

event_bus_by_publish_all! {
    /// Publishes each event as one message, in order, several in flight at once; each
    /// publish span is a child of the current span and lasts until JetStream acknowledged
    /// the message. Fails with the first message that failed (the messages before it are
    /// published, later ones may be).
    NatsBus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_credentials_are_percent_decoded() {
        assert_eq!(percent_decoded("p%40ss%2Fword"), "p@ss/word");
        assert_eq!(percent_decoded("plain"), "plain");
        assert_eq!(percent_decoded("100%"), "100%");
        assert_eq!(percent_decoded("%zz%4"), "%zz%4");
        assert_eq!(percent_decoded("caf%C3%A9"), "café");
        let addr: ServerAddr = "nats://es:p%40ss@127.0.0.1:4222".parse().unwrap();
        assert_eq!(addr.username(), Some("es"));
        assert_eq!(
            addr.password().map(percent_decoded).as_deref(),
            Some("p@ss")
        );
    }
}
