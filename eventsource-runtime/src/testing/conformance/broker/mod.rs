//! The behaviour every broker adapter must have, for an adapter of your own to run: the
//! runtime's RabbitMQ, Kafka and NATS adapters run this suite in their own tests.
//!
//! A [`BrokerFixture`] gives the suite what only the broker can: a bus and consumer groups
//! of the test's own, the groups' dead letters, and a way to send a message as a foreign
//! client would (raw headers and body). Each scenario is a function taking the fixture;
//! give each its own fixture (its own exchange, topics or stream), as the scenarios start
//! and stop consumer groups of fixed names. A failed check panics, as a test's assertion
//! does.
//!
//! - [`trace`]: one trace from the publisher to the handlers, fan-out to two groups, a
//!   malformed trace context, the relay's trace;
//! - [`baggage`]: baggage values reaching the handlers of three hops unchanged;
//! - [`failures`]: retries then dead letters then a move back, purge, an undecodable
//!   message, a retry for a handler the group no longer has, a graceful stop;
//! - [`upcasting`]: a consumer of a newer schema handling an older producer's messages, and
//!   dead-lettering what it cannot upcast;
//! - [`footprint`]: a group running, handling and stopping on a quarter of a tokio worker's
//!   stack.
//!
//! The scenarios read spans through [`capture`](crate::testing::capture) and metrics
//! through the [`MetricCapture`](crate::testing::MetricCapture) they are given (metrics are
//! process-wide: share one capture in a `static LazyLock`, as each scenario tells its own
//! apart by an event type of its own).
//!
//! [`broker_scenarios!`](crate::broker_scenarios) lists every scenario but
//! [`trace::one_trace`] (which hands its spans back for the adapter's own checks), so that
//! an adapter's tests run a scenario added later without a change of theirs.

pub mod baggage;
pub mod failures;
pub mod footprint;
pub mod trace;
pub mod upcasting;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::bus::RunnableGroup;
use crate::bus::{BusError, DeadLetterQueue as _, EventBus, HandlerError, Subscribe, handler_fn};
use crate::event::{EventEnvelope, Metadata, StreamId};

/// A group's run, boxed: the suite spawns it or runs it on a thread of its own.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the suite needs from a broker: implemented by a test of the adapter, over one
/// test's own part of the broker (an exchange, a topic prefix, a stream of its own).
#[async_trait]
pub trait BrokerFixture: Send + Sync {
    /// The adapter's bus.
    type Bus: EventBus + Clone;
    /// The adapter's consumer group: the suite declares it, runs it and reads its dead
    /// letters through [`RunnableGroup`], and adds its handlers through [`Subscribe`].
    type Group: RunnableGroup + Subscribe + Clone + Send + Sync + 'static;

    /// The broker's `messaging.system` (`rabbitmq`, `kafka`, `nats`).
    fn system(&self) -> &'static str;

    /// How long a scenario waits for the broker to deliver (a Kafka group's first join takes
    /// seconds). Ten seconds unless told otherwise.
    fn patience(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// A bus publishing to this test's part of the broker.
    fn bus(&self) -> Self::Bus;

    /// A consumer group named `name` receiving every event of the aggregate type `Order`
    /// published on `bus`, retrying a failed handler after each of `retry_delays` (then
    /// dead-lettering).
    fn group(&self, bus: &Self::Bus, name: &str, retry_delays: &[Duration]) -> Self::Group;

    /// The group's `messaging.consumer.group.name` on its consume spans.
    fn consumer_group_name(&self, group: &Self::Group) -> String;

    /// Sends `message` as a client other than the adapter would, where `group` takes it (a
    /// retry where the group's retries arrive), and waits until the broker holds it.
    ///
    /// # Panics
    /// When the broker does not take it.
    async fn send_raw(&self, bus: &Self::Bus, group: &Self::Group, message: RawMessage<'_>);
}

/// A message written by hand, with the headers a scenario names in the broker's own form
/// (an AMQP field, a Kafka header's bytes, a NATS header's text).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RawMessage<'a> {
    /// The aggregate type of its event (`Order`).
    pub aggregate_type: &'a str,
    /// The aggregate id (a Kafka record's key).
    pub aggregate_id: &'a str,
    /// The event type (part of a routing key or subject).
    pub event_type: &'a str,
    /// The body, as it is.
    pub body: &'a [u8],
    /// A `traceparent` header, when given.
    pub traceparent: Option<&'a str>,
    /// A retry's headers ([`wire::HEADER_ATTEMPT`](crate::bus::wire::HEADER_ATTEMPT) and
    /// [`wire::HEADER_HANDLERS`](crate::bus::wire::HEADER_HANDLERS)), when it is one.
    pub retry: Option<RawRetry<'a>>,
}

/// The headers of a retry written by hand.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RawRetry<'a> {
    /// The delivery attempt it is (2 for a first retry).
    pub attempt: u32,
    /// The handlers it is for.
    pub handlers: &'a [&'a str],
}

/// A consumer group running in a task of its own, stopped gracefully by [`Running::stop`].
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), BusError>>,
}

impl Running {
    async fn start<G: RunnableGroup + Clone + Send + 'static>(group: &G) -> Self {
        let (stop, run) = Self::declared(group).await;
        Self {
            stop,
            task: tokio::spawn(run),
        }
    }

    /// [`start`](Self::start), the group run by a runtime of its own on a thread of
    /// `stack` bytes of stack.
    async fn start_on_stack<G: RunnableGroup + Clone + Send + 'static>(
        group: &G,
        stack: usize,
    ) -> Self {
        let (stop, run) = Self::declared(group).await;
        let thread = std::thread::Builder::new()
            .name("small-stack-group".to_owned())
            .stack_size(stack)
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the group")
                    .block_on(run)
            })
            .expect("a thread for the group");
        let task = tokio::task::spawn_blocking(move || thread.join().expect("the group's thread"));
        Self { stop, task }
    }

    /// Declares `group`: the sender that stops it, and its run until then.
    async fn declared<G: RunnableGroup + Clone + Send + 'static>(
        group: &G,
    ) -> (oneshot::Sender<()>, BoxFuture<Result<(), BusError>>) {
        group.declare().await.expect("the group's topology");
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = Box::pin(async move {
            let _ = stopped.await;
        });
        let group = group.clone();
        (stop, Box::pin(async move { group.run(stopped).await }))
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("the group's task")
            .expect("the group stops cleanly");
    }
}

/// The scenarios' usual consumer group, running: `mailer`, one retry after 50 ms, and
/// its handler `send-confirmation`, which counts its calls and never fails.
struct Mailer<G> {
    group: G,
    calls: Arc<AtomicUsize>,
    running: Running,
}

impl<G: RunnableGroup + Subscribe + Clone + Send + Sync + 'static> Mailer<G> {
    /// A bus of the fixture's and the group running on it.
    async fn start<F: BrokerFixture<Group = G>>(fixture: &F) -> (F::Bus, Self) {
        let bus = fixture.bus();
        let group = fixture.group(&bus, "mailer", &[Duration::from_millis(50)]);
        let calls = counting(&group, "send-confirmation", 0);
        let running = Running::start(&group).await;
        (
            bus,
            Self {
                group,
                calls,
                running,
            },
        )
    }

    /// Waits until the handler ran `calls` times, then stops the group; the group.
    async fn stop_once_handled<F: BrokerFixture>(self, fixture: &F, calls: usize) -> G {
        until(fixture, &format!("the handler ran {calls} time(s)"), || {
            self.calls.load(Ordering::SeqCst) == calls
        })
        .await;
        self.running.stop().await;
        self.group
    }
}

/// A message of order `o-1`'s, of `event_type`, with `body` and no other header.
fn order_message<'a>(event_type: &'a str, body: &'a [u8]) -> RawMessage<'a> {
    RawMessage {
        aggregate_type: "Order",
        aggregate_id: "o-1",
        event_type,
        body,
        traceparent: None,
        retry: None,
    }
}

/// Waits, up to the fixture's patience, until `done` holds.
async fn until<F: BrokerFixture>(fixture: &F, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + fixture.patience();
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits, up to the fixture's patience, until the group holds `count` dead letters.
async fn dead_letters_reach<F: BrokerFixture>(fixture: &F, group: &F::Group, count: u64) {
    let deadline = tokio::time::Instant::now() + fixture.patience();
    loop {
        let now = group
            .dead_letters()
            .count()
            .await
            .expect("the dead letters' count");
        if now == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {count} dead letter(s) (the group holds {now})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A handler of `group` that counts its calls and fails the first `failures` of them.
fn counting(group: &impl Subscribe, name: &'static str, failures: usize) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    group
        .dispatcher()
        .subscribe(handler_fn(name, move |_event| {
            let call = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if call < failures {
                    Err(HandlerError::new(format!("{name} failed (call {call})")))
                } else {
                    Ok(())
                }
            }
        }));
    calls
}

/// An event type of the scenario's own (`Placed` and a fresh id), so that the process-wide
/// metrics tell its messages apart from every other test's.
fn event_type() -> String {
    format!("Placed{}", Uuid::now_v7().simple())
}

/// A stored `Order` event of type `event_type`, as a bus publishes it.
fn stored_event(aggregate_id: &str, event_type: &str) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::now_v7(),
        stream: StreamId::new("Order", aggregate_id),
        version: 1,
        position: 1,
        event_type: event_type.to_owned().into(),
        schema_version: 1,
        timestamp: chrono::Utc::now(),
        payload: serde_json::json!({ "customer": "ada" }).into(),
        metadata: Metadata::new(),
    }
}

/// Every scenario of the broker suite but [`trace::one_trace`], handed to a macro of the
/// caller's: `$run! { name => scenario; ...; name => scenario, $metrics; ... }`, each
/// scenario a path to its function, followed by `$metrics` (a
/// `&`[`MetricCapture`](crate::testing::MetricCapture)) when it reads metrics. The caller's
/// macro makes one test of each, with a fixture of the test's own:
///
/// ```ignore
/// macro_rules! conformance {
///     ($($test:ident => $scenario:path $(, $metrics:expr)?;)*) => {
///         $(
///             #[tokio::test]
///             async fn $test() {
///                 let fixture = MyBrokerFixture::new(stringify!($test)).await;
///                 $scenario(&fixture $(, $metrics)?).await;
///             }
///         )*
///     };
/// }
///
/// eventsource_runtime::broker_scenarios!(conformance, &METRICS);
/// ```
#[macro_export]
macro_rules! broker_scenarios {
    ($run:ident, $metrics:expr) => {
        $run! {
            baggage_survives_three_hops =>
                $crate::testing::conformance::broker::baggage::baggage_survives_three_hops;
            fan_out => $crate::testing::conformance::broker::trace::fan_out;
            malformed_traceparent_starts_a_new_root =>
                $crate::testing::conformance::broker::trace::malformed_traceparent_starts_a_new_root;
            relay_continues_the_stored_trace =>
                $crate::testing::conformance::broker::trace::relay_continues_the_stored_trace;
            retried_then_dead_lettered_then_moved_back =>
                $crate::testing::conformance::broker::failures::retried_then_dead_lettered_then_moved_back,
                $metrics;
            purge_empties_the_dead_letters =>
                $crate::testing::conformance::broker::failures::purge_empties_the_dead_letters;
            undecodable_message_is_dead_lettered_with_the_reason =>
                $crate::testing::conformance::broker::failures::undecodable_message_is_dead_lettered_with_the_reason;
            retry_for_an_unknown_handler_is_dead_lettered =>
                $crate::testing::conformance::broker::failures::retry_for_an_unknown_handler_is_dead_lettered;
            graceful_stop_finishes_the_handler_in_flight =>
                $crate::testing::conformance::broker::failures::graceful_stop_finishes_the_handler_in_flight;
            a_v2_consumer_handles_v1_messages_and_dead_letters_what_it_cannot_upcast =>
                $crate::testing::conformance::broker::upcasting::a_v2_consumer_handles_v1_messages_and_dead_letters_what_it_cannot_upcast;
            a_group_runs_on_a_quarter_of_a_worker_stack =>
                $crate::testing::conformance::broker::footprint::a_group_runs_on_a_quarter_of_a_worker_stack;
        }
    };
}
