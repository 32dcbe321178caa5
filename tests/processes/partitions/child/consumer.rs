//! The `consumer` child: a member of a consumer group (NATS JetStream, or RabbitMQ with the
//! feature), recording in its history the start and the end of every event it handles (at
//! least once: its effect is the record itself), each under the member's epoch: how many
//! times its share of the group changed so far ([`Membership`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use eventsource_runtime::bus::{HandlerError, Subscribe};
use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::nats::NatsBus;
use eventsource_test_support::history::{Call, Handling, HistoryWriter};

use super::{PROJECTION, Told, terminated};

/// The broker's URL (the host side of the child's namespace, or loopback): `nats://...` or
/// `amqp://...`.
pub const BROKER: &str = "EVENTSOURCE_PARTITION_CHILD_BROKER";
/// The group's name (RabbitMQ: its exchange's too; Kafka: the prefix of its topics and
/// group id, the group being `partition`).
pub const GROUP: &str = "EVENTSOURCE_PARTITION_CHILD_GROUP";
/// `listen=>upstream`: a forwarder the member runs from `listen` (on its own loopback) to
/// `upstream` before it connects (a Kafka member in a namespace: the broker names itself
/// `127.0.0.1`).
pub const LOOPBACK: &str = "EVENTSOURCE_PARTITION_CHILD_LOOPBACK";
/// Kafka's topics' partitions: each member of two has some.
pub const KAFKA_PARTITIONS: u16 = 4;
/// Messages a member takes ahead: with a takeover, the most it may handle again.
pub const PREFETCH: u16 = 16;
/// How long handling an event takes.
const HANDLING: std::time::Duration = std::time::Duration::from_millis(30);

/// Runs the group member until SIGTERM.
pub async fn run(told: Told) {
    let Told {
        name,
        timeout,
        history,
        ..
    } = told;
    let url = std::env::var(BROKER).unwrap();
    let group_name = std::env::var(GROUP).unwrap();
    let _loopback = std::env::var(LOOPBACK).ok().map(|forward| {
        let (listen, upstream) = forward.split_once("=>").expect("listen=>upstream");
        super::super::forwarder::Forwarder::start(
            listen.parse().unwrap(),
            upstream.parse().unwrap(),
        )
    });
    if url.starts_with("kafka://") {
        #[cfg(feature = "kafka")]
        {
            let bus = eventsource_runtime::kafka::KafkaBus::new(&url)
                .unwrap()
                .with_topic_prefix(&group_name)
                .with_partitions(KAFKA_PARTITIONS);
            let group = bus.consumer_group("partition").bind("Counter.*");
            group.declare().await.unwrap();
            record_handling(&group, history);
            group.run(terminated()).await.unwrap();
        }
        #[cfg(not(feature = "kafka"))]
        panic!("a Kafka member needs the `kafka` feature");
    } else if url.starts_with("amqp://") {
        #[cfg(feature = "rabbitmq")]
        {
            let bus = eventsource_runtime::rabbitmq::RabbitMqBus::new(&url)
                .unwrap()
                .with_exchange(&group_name);
            bus.declare().await.unwrap();
            let group = bus.consumer_group(&group_name).prefetch(PREFETCH);
            group.declare().await.unwrap();
            record_handling(&group, history);
            group.run(terminated()).await.unwrap();
        }
        #[cfg(not(feature = "rabbitmq"))]
        panic!("a RabbitMQ member needs the `rabbitmq` feature");
    } else {
        let group = NatsBus::new(&url)
            .unwrap()
            .consumer_group(&group_name)
            .prefetch(PREFETCH)
            .ack_wait(timeout);
        group.declare().await.unwrap();
        record_handling(&group, history);
        group.run(terminated()).await.unwrap();
    }
    println!("{name} stopped");
}

/// Subscribes the member's handler: each event's start and end recorded, under the
/// member's epoch.
fn record_handling(group: &impl Subscribe, history: Arc<HistoryWriter>) {
    group.subscribe_fn(PROJECTION, move |event: EventEnvelope| {
        let history = Arc::clone(&history);
        async move {
            let mut handling = Handling::of(PROJECTION, &event);
            handling.epoch = Some(Membership::epoch());
            let started = history
                .invoke(Call::HandleStart(handling))
                .map_err(HandlerError::new)?;
            // Slower than the appends come, so that a member always has messages in hand
            // and waiting when it is cut off.
            tokio::time::sleep(HANDLING).await;
            history.ok(&started).map_err(HandlerError::new)?;
            Ok::<(), HandlerError>(())
        }
    });
}

/// How many times this member's share of its group changed, as the library logs it: a
/// session began (`consuming`), or Kafka partitions were assigned, revoked or lost (its
/// retry and requeue consumers' aside). What a member handled and had not settled with the
/// broker comes again after such a change to whoever has that work then, this member
/// included (a Kafka member cut off past its session gets its partitions back from the
/// last commit that reached the group): the checker counts a change of epoch as a takeover.
pub struct Membership;

static MEMBERSHIP_CHANGES: AtomicU64 = AtomicU64::new(0);

impl Membership {
    fn epoch() -> u64 {
        MEMBERSHIP_CHANGES.load(Ordering::SeqCst)
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Membership {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = LoggedFields::default();
        event.record(&mut fields);
        let live = !fields.group_id.contains(".retry.") && !fields.group_id.ends_with(".requeue");
        if live && (fields.message == "consuming" || fields.message.starts_with("kafka partitions"))
        {
            MEMBERSHIP_CHANGES.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The fields of a library's log line [`Membership`] reads.
#[derive(Default)]
struct LoggedFields {
    message: String,
    group_id: String,
}

impl tracing::field::Visit for LoggedFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "group_id" => self.group_id = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}
