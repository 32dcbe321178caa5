//! The lag and health of consumer groups on the real brokers (RabbitMQ, NATS JetStream,
//! Kafka): messages published and not consumed yet are counted, then 0 once the running group
//! consumed them; the gauges carry `messaging.system`; the group's state follows its run.

use eventsource_test_support::servers;

use servers::Server;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use eventsource_runtime::bus::{BusError, EventBus, HandlerError};
use eventsource_runtime::event::NewEvent;
use eventsource_runtime::health::{
    ComponentHealth, ComponentKind, ComponentState, HealthRegistry, Lag, LeaseState, Watchable,
};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{MetricCapture, capture_metrics};
use tokio::sync::{Semaphore, oneshot};

static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

/// How old the test's events are.
const AGE: Duration = Duration::from_secs(3600);

/// `n` stored `Order` events, recorded [`AGE`] ago.
async fn stored(n: usize) -> Vec<EventEnvelope> {
    let store = InMemoryEventStore::new();
    let recorded_at = chrono::Utc::now() - chrono::Duration::from_std(AGE).unwrap();
    let events = (0..n)
        .map(|i| {
            let mut event = NewEvent::new("OrderPlaced", 1, serde_json::json!({ "n": i }));
            event.timestamp = recorded_at;
            event
        })
        .collect();
    store
        .append(&StreamId::new("Order", "o-1"), ExpectedVersion::Any, events)
        .await
        .unwrap()
        .events
}

/// Waits (up to 30 s) until `done` holds.
async fn until<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    for _ in 0..1500 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The test's handler: counts the messages it starts and handles, and holds each until the
/// test opens the gate.
#[derive(Clone)]
struct Handler {
    started: Arc<AtomicUsize>,
    handled: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl Default for Handler {
    fn default() -> Self {
        Self {
            started: Arc::default(),
            handled: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Handler {
    fn handle(&self) -> impl Future<Output = Result<(), HandlerError>> + Send + use<> {
        let this = self.clone();
        async move {
            this.started.fetch_add(1, Ordering::SeqCst);
            this.gate.acquire().await.unwrap().forget();
            this.handled.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
}

/// What every broker's group is put through: what a test needs of it.
trait Group: Watchable + Subscribe + Clone + Send + Sync + 'static {
    fn subscribe_handler(&self, handler: Handler) {
        self.subscribe_fn("count", move |_| handler.handle());
    }
    fn lag(&self) -> impl Future<Output = Result<Lag, BusError>> + Send;
    fn health(&self) -> impl Future<Output = ComponentHealth> + Send;
    fn run_until(
        &self,
        stop: oneshot::Receiver<()>,
    ) -> impl Future<Output = Result<(), BusError>> + Send;
}

macro_rules! group {
    ($group:ty) => {
        impl Group for $group {
            async fn lag(&self) -> Result<Lag, BusError> {
                <$group>::lag(self).await
            }
            async fn health(&self) -> ComponentHealth {
                <$group>::health(self).await
            }
            async fn run_until(&self, stop: oneshot::Receiver<()>) -> Result<(), BusError> {
                self.run(async move {
                    let _ = stop.await;
                })
                .await
            }
        }
    };
}
group!(eventsource_runtime::rabbitmq::ConsumerGroup);
group!(eventsource_runtime::nats::ConsumerGroup);
group!(eventsource_runtime::kafka::ConsumerGroup);

/// The group (declared, with the test's handler) has `published` messages waiting: counted;
/// then it runs, the message in hand is as old as the events, and once it consumed them
/// all it reports 0.
async fn lag_then_none<G: Group>(
    system: &str,
    name: &str,
    group: G,
    handler: Handler,
    published: usize,
) {
    LazyLock::force(&METRICS);
    until("the published messages to be counted", || async {
        group.lag().await.map(|lag| lag.events).ok() == Some(published as u64)
    })
    .await;
    let health = HealthRegistry::new();
    health.watch(&group);
    let report = health.report().await;
    let before = &report.components()[0];
    assert_eq!(
        (before.kind, before.state, before.lease),
        (
            ComponentKind::ConsumerGroup,
            ComponentState::Starting,
            LeaseState::NotApplicable
        )
    );
    assert_eq!(before.name, name);
    assert_eq!(before.lag.unwrap().events, published as u64);
    assert!(!report.is_ready(), "not started");

    let (stop, stopped) = oneshot::channel();
    let running = tokio::spawn({
        let group = group.clone();
        async move { group.run_until(stopped).await }
    });
    until("the first message to be in hand", || async {
        handler.started.load(Ordering::SeqCst) >= 1
    })
    .await;
    let in_hand = group.lag().await.unwrap();
    assert!(
        in_hand.events >= 1 && in_hand.oldest_age >= AGE,
        "{name} on {system}: {in_hand}"
    );
    handler.gate.add_permits(published);
    until("every message to be handled", || async {
        handler.handled.load(Ordering::SeqCst) >= published
    })
    .await;
    until("the lag to be 0", || async {
        group.lag().await.ok() == Some(Lag::ZERO)
    })
    .await;
    let having = [
        (attr::METRIC_ATTR_COMPONENT_KIND, "consumer_group"),
        (attr::METRIC_ATTR_COMPONENT_NAME, name),
        (attr::MESSAGING_SYSTEM, system),
    ];
    until("the gauges to say 0", || async {
        METRICS.gauge(attr::METRIC_LAG_EVENTS, &having) == Some(0.0)
            && METRICS.gauge(attr::METRIC_LAG_OLDEST_AGE, &having) == Some(0.0)
    })
    .await;
    let report = health.report().await;
    let following = &report.components()[0];
    assert_eq!(following.state, ComponentState::Following);
    assert_eq!(following.lag, Some(Lag::ZERO));
    assert!(report.is_ready());

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(group.health().await.state, ComponentState::Stopped);
}

/// A group whose broker does not answer: retrying, saying why, its lag unknown, not ready.
async fn unreachable<G: Group>(group: G) {
    let (stop, stopped) = oneshot::channel();
    let running = tokio::spawn({
        let group = group.clone();
        async move { group.run_until(stopped).await }
    });
    until("the group to retry", || async {
        group.health().await.state == ComponentState::Retrying
    })
    .await;
    let health = HealthRegistry::new();
    health.watch(&group);
    // Not asked again while it retries: a readiness probe answers at once.
    let asked = std::time::Instant::now();
    let report = health.report().await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let retrying = &report.components()[0];
    assert_eq!(retrying.lag, None, "the broker cannot be asked");
    let why = retrying.last_error.as_ref().expect("why");
    assert!(why.message.contains("127.0.0.1:1"), "{}", why.message);
    assert!(!report.is_ready());
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(group.health().await.state, ComponentState::Stopped);
}

#[tokio::test]
async fn a_group_whose_broker_is_down_is_retrying() {
    let rabbitmq = eventsource_runtime::rabbitmq::RabbitMqBus::new("amqp://127.0.0.1:1/%2f")
        .unwrap()
        .consumer_group("unreachable");
    unreachable(rabbitmq).await;
    let nats = eventsource_runtime::nats::NatsBus::new("nats://127.0.0.1:1")
        .unwrap()
        .consumer_group("unreachable");
    unreachable(nats).await;
    let kafka = eventsource_runtime::kafka::KafkaBus::new("127.0.0.1:1")
        .unwrap()
        .consumer_group("unreachable")
        .bind("Order.*");
    unreachable(kafka).await;
}

#[tokio::test]
async fn a_rabbitmq_group_reports_its_lag() {
    let test = "a_rabbitmq_group_reports_its_lag";
    let Some(url) = Server::RabbitMq.address(test) else {
        return;
    };
    let exchange = format!("es-test-health-{}", uuid::Uuid::now_v7().simple());
    let bus = eventsource_runtime::rabbitmq::RabbitMqBus::new(&url)
        .unwrap()
        .with_exchange(&exchange);
    let group = bus
        .consumer_group("lagging")
        .bind("Order.*")
        .retry_delays([])
        .lag_interval(Duration::from_millis(50));
    let handler = Handler::default();
    group.subscribe_handler(handler.clone());
    group.declare().await.unwrap();
    bus.publish(&stored(3).await).await.unwrap();
    lag_then_none("rabbitmq", "lagging", group.clone(), handler, 3).await;
    assert_eq!(group.health().await.parked, 0);

    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for queue in [group.queue(), group.dead_letters().queue()] {
        let _ = channel
            .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
            .await;
    }
    let _ = channel
        .exchange_delete(
            exchange.as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await;
    let _ = connection.close(200, "clean".into()).await;
}

#[tokio::test]
async fn a_nats_group_reports_its_lag_and_age() {
    let test = "a_nats_group_reports_its_lag_and_age";
    let Some(url) = Server::Nats.address(test) else {
        return;
    };
    let id = uuid::Uuid::now_v7().simple().to_string();
    let bus = eventsource_runtime::nats::NatsBus::new(&url)
        .unwrap()
        .with_stream(format!("ES_TEST_HEALTH_{id}"))
        .with_subject_prefix(format!("es-test-health-{id}"));
    let group = bus
        .consumer_group("lagging")
        .bind("Order.*")
        .lag_interval(Duration::from_millis(50));
    let handler = Handler::default();
    group.subscribe_handler(handler.clone());
    group.declare().await.unwrap();
    let events = stored(2).await;
    bus.publish(&events).await.unwrap();
    // Not running: aged by the first message after the acknowledgement floor.
    let lag = group.lag().await.unwrap();
    assert_eq!(lag.events, 2);
    assert!(lag.oldest_age >= AGE, "{lag}");
    lag_then_none("nats", "lagging", group, handler, 2).await;
    let js = eventsource_runtime::nats::async_nats::jetstream::new(
        eventsource_runtime::nats::async_nats::connect(&url)
            .await
            .unwrap(),
    );
    for suffix in ["", "_RETRY", "_DEAD"] {
        let _ = js
            .delete_stream(format!("ES_TEST_HEALTH_{id}{suffix}"))
            .await;
    }
}

#[tokio::test]
async fn a_failing_handler_is_the_groups_last_error_and_its_message_parked() {
    let test = "a_failing_handler_is_the_groups_last_error_and_its_message_parked";
    let Some(url) = Server::Nats.address(test) else {
        return;
    };
    let id = uuid::Uuid::now_v7().simple().to_string();
    let bus = eventsource_runtime::nats::NatsBus::new(&url)
        .unwrap()
        .with_stream(format!("ES_TEST_HEALTH_{id}"))
        .with_subject_prefix(format!("es-test-health-{id}"));
    let group = bus.consumer_group("failing").retry_delays([]);
    group.subscribe_fn("refuse", |_| async {
        Err::<(), HandlerError>(HandlerError::new("the warehouse is closed"))
    });
    group.declare().await.unwrap();
    bus.publish(&stored(1).await).await.unwrap();
    let (stop, stopped) = oneshot::channel();
    let running = tokio::spawn({
        let group = group.clone();
        async move { group.run_until(stopped).await }
    });
    until("the message to be dead-lettered", || async {
        group.health().await.parked == 1
    })
    .await;
    let health = group.health().await;
    assert_eq!(
        health.state,
        ComponentState::Following,
        "a failed message is not a failed group"
    );
    let why = health.last_error.expect("the handler's failure");
    assert!(
        why.message
            .starts_with("handler `refuse` failed on message")
            && why.message.ends_with("the warehouse is closed"),
        "{}",
        why.message
    );
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let js = eventsource_runtime::nats::async_nats::jetstream::new(
        eventsource_runtime::nats::async_nats::connect(&url)
            .await
            .unwrap(),
    );
    for suffix in ["", "_RETRY", "_DEAD"] {
        let _ = js
            .delete_stream(format!("ES_TEST_HEALTH_{id}{suffix}"))
            .await;
    }
}

#[tokio::test]
async fn a_kafka_group_reports_its_lag() {
    let test = "a_kafka_group_reports_its_lag";
    let Some(url) = Server::Kafka.address(test) else {
        return;
    };
    let prefix = format!("es-health-{}", uuid::Uuid::now_v7().simple());
    let bus = eventsource_runtime::kafka::KafkaBus::new(&url)
        .unwrap()
        .with_topic_prefix(&prefix)
        .with_delivery_timeout(Duration::from_secs(10));
    let group = bus
        .consumer_group("lagging")
        .bind("Order.*")
        .lag_interval(Duration::from_millis(50));
    let handler = Handler::default();
    group.subscribe_handler(handler.clone());
    group.declare().await.unwrap();
    bus.publish(&stored(4).await).await.unwrap();
    lag_then_none("kafka", "lagging", group, handler, 4).await;
}

/// A group whose handler holds its first message past the stall bound: stalled (not
/// ready), with what the broker says of the group as its last error, counted once; then
/// the handler lets go, the group moves again and follows.
/// Runs `group` until its handler holds a message for longer than the stall bound: the group
/// says it stalled (health, a counted stall), then follows again once the handler goes on.
/// What the stall report said, for the broker's own checks.
async fn stalls_then_moves<G: Group>(
    system: &str,
    name: &str,
    group: G,
    handler: Handler,
) -> String {
    LazyLock::force(&METRICS);
    let (stop, stopped) = oneshot::channel();
    let running = tokio::spawn({
        let group = group.clone();
        async move { group.run_until(stopped).await }
    });
    until("the first message to be in hand", || async {
        handler.started.load(Ordering::SeqCst) >= 1
    })
    .await;
    until("the group to say it stalled", || async {
        group.health().await.state == ComponentState::Stalled
    })
    .await;
    let health = HealthRegistry::new();
    health.watch(&group);
    let report = health.report().await;
    assert!(!report.is_ready(), "a stalled group is not ready");
    let why = report.components()[0].last_error.clone().expect("why");
    assert!(
        why.message
            .starts_with(&format!("consumer group `{name}` stalled: "))
            && why.message.contains("events waiting and none handled for"),
        "{}",
        why.message
    );
    let stalls = [
        (attr::MESSAGING_SYSTEM, system),
        (attr::METRIC_ATTR_COMPONENT_NAME, name),
    ];
    assert_eq!(
        METRICS.total(attr::METRIC_BUS_CONSUMER_GROUP_STALLS, &stalls),
        1,
        "counted once, however long it lasts"
    );
    handler.gate.add_permits(100);
    until("the group to follow again", || async {
        group.health().await.state == ComponentState::Following
    })
    .await;
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    why.message
}

#[tokio::test]
async fn a_group_that_handles_nothing_for_its_bound_says_it_stalled_on_every_broker() {
    let test = "a_group_that_handles_nothing_for_its_bound_says_it_stalled_on_every_broker";
    let bound = Duration::from_secs(1);
    let id = uuid::Uuid::now_v7().simple().to_string();
    if let Some(url) = Server::Kafka.address(test) {
        let bus = eventsource_runtime::kafka::KafkaBus::new(&url)
            .unwrap()
            .with_topic_prefix(format!("es-stall-{id}"));
        let group = bus
            .consumer_group("stalling")
            .bind("Order.*")
            .stall_after(bound)
            .lag_interval(Duration::from_millis(50));
        let handler = Handler::default();
        group.subscribe_handler(handler.clone());
        group.declare().await.unwrap();
        bus.publish(&stored(2).await).await.unwrap();
        let protocol = group.group_protocol();
        let said = stalls_then_moves("kafka", "stalling", group.clone(), handler).await;
        // What the broker says of the group: DescribeGroups under the classic protocol (its
        // state, assignor and members); a consumer-protocol group is described by an API
        // rdkafka does not send, which the report says. The consumer's own view either way.
        match protocol {
            eventsource_runtime::kafka::GroupProtocol::Classic => assert!(
                said.contains("group state Stable, protocol range, 1 members: ")
                    && said.contains("(1 partitions)"),
                "{said}"
            ),
            _ => assert!(
                said.contains("(ConsumerGroupDescribe) is not available through this client"),
                "{said}"
            ),
        }
        assert!(
            said.contains(&format!(
                "this consumer ({protocol} protocol) holds 1 partitions (es-stall-{id}.Order[0])"
            )),
            "{said}"
        );
    }
    if let Some(url) = Server::Nats.address(test) {
        let bus = eventsource_runtime::nats::NatsBus::new(&url)
            .unwrap()
            .with_stream(format!("ES_TEST_STALL_{id}"))
            .with_subject_prefix(format!("es-test-stall-{id}"));
        let group = bus
            .consumer_group("stalling")
            .bind("Order.*")
            .stall_after(bound)
            .lag_interval(Duration::from_millis(50));
        let handler = Handler::default();
        group.subscribe_handler(handler.clone());
        group.declare().await.unwrap();
        bus.publish(&stored(2).await).await.unwrap();
        stalls_then_moves("nats", "stalling", group, handler).await;
        let js = eventsource_runtime::nats::async_nats::jetstream::new(
            eventsource_runtime::nats::async_nats::connect(&url)
                .await
                .unwrap(),
        );
        for suffix in ["", "_RETRY", "_DEAD"] {
            let _ = js
                .delete_stream(format!("ES_TEST_STALL_{id}{suffix}"))
                .await;
        }
    }
    if let Some(url) = Server::RabbitMq.address(test) {
        let bus = eventsource_runtime::rabbitmq::RabbitMqBus::new(&url)
            .unwrap()
            .with_exchange(format!("es-test-stall-{id}"));
        let group = bus
            .consumer_group("stalling")
            .bind("Order.*")
            .retry_delays([])
            .stall_after(bound)
            .lag_interval(Duration::from_millis(50));
        let handler = Handler::default();
        group.subscribe_handler(handler.clone());
        group.declare().await.unwrap();
        bus.publish(&stored(2).await).await.unwrap();
        stalls_then_moves("rabbitmq", "stalling", group, handler).await;
    }
}
