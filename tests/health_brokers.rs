//! The lag and health of consumer groups on the real brokers (RabbitMQ, NATS JetStream,
//! Kafka): messages published and not consumed yet are counted, then 0 once the running group
//! consumed them; the gauges carry `messaging.system`; the group's state follows its run.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use eventsource_runtime::bus::{BusError, EventBus, HandlerError};
use eventsource_runtime::event::NewEvent;
use eventsource_runtime::health::{
    ComponentHealth, ComponentKind, ComponentState, Health, Lag, LeaseState, Watchable,
};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{MetricCapture, capture_metrics};
use tokio::sync::oneshot;

static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

/// The broker's address from `variable`, or `None` (with a visible message).
fn address(test: &str, variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let line = format!("{test}: skipped: {variable} not set\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// `n` stored `Order` events.
async fn stored(n: usize) -> Vec<EventEnvelope> {
    let store = InMemoryEventStore::new();
    let events = (0..n)
        .map(|i| NewEvent::new("OrderPlaced", 1, serde_json::json!({ "n": i })))
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

/// What every broker's group is put through: what a test needs of it.
trait Group: Watchable + Clone + Send + Sync + 'static {
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

/// The group (declared, its handler counting into `handled`) has `published` messages
/// waiting: counted; then it runs, consumes them, and reports 0.
async fn lag_then_none<G: Group>(
    system: &str,
    name: &str,
    group: G,
    handled: Arc<AtomicUsize>,
    published: usize,
) {
    LazyLock::force(&METRICS);
    until("the published messages to be counted", || async {
        group.lag().await.map(|lag| lag.events).ok() == Some(published as u64)
    })
    .await;
    let health = Health::new();
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
    until("every message to be handled", || async {
        handled.load(Ordering::SeqCst) >= published
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

fn counter() -> (Arc<AtomicUsize>, impl Fn() -> Arc<AtomicUsize>) {
    let handled = Arc::new(AtomicUsize::new(0));
    let handler = {
        let handled = Arc::clone(&handled);
        move || Arc::clone(&handled)
    };
    (handled, handler)
}

#[tokio::test]
async fn a_rabbitmq_group_reports_its_lag() {
    let test = "a_rabbitmq_group_reports_its_lag";
    let Some(url) = address(test, "EVENTSOURCE_AMQP_URL") else {
        return;
    };
    let exchange = format!("es-test-health-{}", uuid::Uuid::now_v7().simple());
    let bus = eventsource_runtime::rabbitmq::RabbitMqBus::new(&url)
        .unwrap()
        .with_exchange(&exchange);
    let group = bus
        .consumer_group("lagging")
        .bind("Order.*")
        .lag_interval(Duration::from_millis(50));
    let (handled, handler) = counter();
    let count = handler();
    group.subscribe_fn("count", move |_| {
        let count = Arc::clone(&count);
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    });
    group.declare().await.unwrap();
    bus.publish(&stored(3).await).await.unwrap();
    lag_then_none("rabbitmq", "lagging", group.clone(), handled, 3).await;
    assert_eq!(group.health().await.parked, 0);
}

#[tokio::test]
async fn a_nats_group_reports_its_lag_and_age() {
    let test = "a_nats_group_reports_its_lag_and_age";
    let Some(url) = address(test, "EVENTSOURCE_NATS_URL") else {
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
    let (handled, handler) = counter();
    let count = handler();
    group.subscribe_fn("count", move |_| {
        let count = Arc::clone(&count);
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    });
    group.declare().await.unwrap();
    let events = stored(2).await;
    bus.publish(&events).await.unwrap();
    // The age of the first message after the acknowledgement floor: the first event's.
    let lag = group.lag().await.unwrap();
    assert_eq!(lag.events, 2);
    let age = (chrono::Utc::now() - events[0].timestamp).to_std().unwrap();
    assert!(lag.oldest_age >= age, "{lag} vs {age:?}");
    lag_then_none("nats", "lagging", group, handled, 2).await;
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
    let Some(url) = address(test, "EVENTSOURCE_KAFKA_BROKERS") else {
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
    let (handled, handler) = counter();
    let count = handler();
    group.subscribe_fn("count", move |_| {
        let count = Arc::clone(&count);
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    });
    group.declare().await.unwrap();
    bus.publish(&stored(4).await).await.unwrap();
    lag_then_none("kafka", "lagging", group, handled, 4).await;
}
