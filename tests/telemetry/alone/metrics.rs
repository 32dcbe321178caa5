//! The contract's metrics, read back from an in-memory meter provider: names, units,
//! attributes and values of `cqrs.command.duration`, `cqrs.command.total`,
//! `cqrs.events.produced`, `cqrs.projection.lag` and `cqrs.query.*`, and no unbounded
//! attribute anywhere.
//!
//! A test binary of its own: the meter provider is global. Its tests run in parallel, so
//! each one uses command types and projection names no other test here uses.

use eventsource_test_support::domain;

use std::sync::LazyLock;
use std::time::Duration;

use domain::{CancelOrder, Order, OrderError, ShipOrder, sample_order};
use eventsource_runtime::event::NewEvent;
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{MetricCapture, capture_metrics};
use serde::{Deserialize, Serialize};

static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

fn metrics() -> &'static MetricCapture {
    &METRICS
}

// ---- a cart, for the tests that must not share command types with the order tests --------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemAdded {
    pub sku: String,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRemoved {
    pub sku: String,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Cart", events(ItemAdded, ItemRemoved))]
pub struct Cart {
    items: Vec<String>,
}
impl Apply<ItemAdded> for Cart {
    fn apply(&mut self, e: &ItemAdded) {
        self.items.push(e.sku.clone());
    }
}
impl Apply<ItemRemoved> for Cart {
    fn apply(&mut self, e: &ItemRemoved) {
        self.items.retain(|sku| *sku != e.sku);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no {0} in the cart")]
pub struct NotInCart(String);

pub struct AddItems {
    pub cart_id: String,
    pub skus: Vec<String>,
}
pub struct RemoveItem {
    pub cart_id: String,
    pub sku: String,
}
pub struct SlowAdd {
    pub cart_id: String,
}

#[command_handler(aggregate_id = cmd.cart_id)]
fn add_items(_: &Cart, cmd: AddItems) -> Result<Vec<CartEvent>, NotInCart> {
    Ok(cmd
        .skus
        .into_iter()
        .map(|sku| ItemAdded { sku }.into())
        .collect())
}

#[command_handler(aggregate_id = cmd.cart_id)]
fn remove_item(cart: &Cart, cmd: RemoveItem) -> Result<Vec<CartEvent>, NotInCart> {
    if !cart.items.contains(&cmd.sku) {
        return Err(NotInCart(cmd.sku));
    }
    Ok(vec![ItemRemoved { sku: cmd.sku }.into()])
}

// The commands of `no_metric_carries_an_unbounded_attribute`: types of their own, since the
// tests share one metric capture and run at once (`AddItems` and `RemoveItem` are counted).
pub struct AddUnbounded {
    pub cart_id: String,
    pub sku: String,
}
pub struct RemoveUnbounded {
    pub cart_id: String,
    pub sku: String,
}

#[command_handler(aggregate_id = cmd.cart_id)]
fn add_unbounded(_: &Cart, cmd: AddUnbounded) -> Result<Vec<CartEvent>, NotInCart> {
    Ok(vec![ItemAdded { sku: cmd.sku }.into()])
}

// Always refused: the test removes an item no cart holds, for the commands' error metrics.
#[command_handler(aggregate_id = cmd.cart_id)]
fn remove_unbounded(_: &Cart, cmd: RemoveUnbounded) -> Result<Vec<CartEvent>, NotInCart> {
    Err(NotInCart(cmd.sku))
}

// The span of this handler is off: its metrics are recorded all the same.
#[command_handler(aggregate_id = cmd.cart_id, enabled = false)]
fn slow_add(_: &Cart, cmd: SlowAdd) -> Result<Vec<CartEvent>, NotInCart> {
    drop(cmd);
    Ok(vec![ItemAdded { sku: "slow".into() }.into()])
}

/// A projection that takes its time, inside the command's duration.
#[derive(Default)]
pub struct Sluggish;

#[projection(projection_name = "Sluggish")]
impl Sluggish {
    async fn on_added(&mut self, _: &ItemAdded) {
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

/// Projections by lag: traced, untraced (the default) and failing.
#[derive(Default)]
pub struct LagTraced;

#[projection(projection_name = "LagTraced", enable_tracing = true)]
impl LagTraced {
    fn on_added(&mut self, _: &ItemAdded) {}
    fn on_removed(&mut self, _: &ItemRemoved) {}
}

#[derive(Default)]
pub struct LagUntraced;

#[projection(projection_name = "LagUntraced")]
impl LagUntraced {
    fn on_added(&mut self, _: &ItemAdded) {}
}

#[derive(Default)]
pub struct LagFailing;

#[projection(projection_name = "LagFailing", enable_tracing = true)]
impl LagFailing {
    fn on_added(&mut self, added: &ItemAdded) -> Result<(), String> {
        Err(format!("cannot project {}", added.sku))
    }
}

/// The projections of the unbounded-attribute test, traced and not.
#[derive(Default)]
pub struct Watcher;

#[projection(projection_name = "Watcher", enable_tracing = true)]
impl Watcher {
    fn on_added(&mut self, _: &ItemAdded) {}
}

#[derive(Default)]
pub struct QuietWatcher;

#[projection(projection_name = "QuietWatcher")]
impl QuietWatcher {
    fn on_added(&mut self, _: &ItemAdded) {}
}

// ---- tests ---------------------------------------------------------------------------------

#[tokio::test]
async fn commands_are_counted_and_timed_by_type_and_status() {
    let m = metrics();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    orders.execute(sample_order("m-1", "ada")).await.unwrap();
    orders.execute(sample_order("m-2", "bob")).await.unwrap();
    orders
        .execute(ShipOrder {
            order_id: "m-1".into(),
            carrier: "dhl".into(),
        })
        .await
        .unwrap();
    // Three refusals: never placed, already placed, already shipped.
    let refused = orders
        .execute(ShipOrder {
            order_id: "m-3".into(),
            carrier: "dhl".into(),
        })
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(OrderError::NotPlaced))
    ));
    orders
        .execute(sample_order("m-1", "ada"))
        .await
        .unwrap_err();
    orders
        .execute(CancelOrder {
            order_id: "m-1".into(),
            reason: "late".into(),
        })
        .await
        .unwrap_err();

    let (ty, status) = (
        attr::METRIC_ATTR_COMMAND_TYPE,
        attr::METRIC_ATTR_COMMAND_STATUS,
    );
    assert_eq!((ty, status), ("command.type", "command.status"));
    for (name, unit) in [
        (attr::METRIC_COMMAND_TOTAL, "{command}"),
        (attr::METRIC_COMMAND_DURATION, "s"),
    ] {
        for (command, outcome, expected) in [
            ("PlaceOrder", "success", 2),
            ("PlaceOrder", "error", 1),
            ("ShipOrder", "success", 1),
            ("ShipOrder", "error", 1),
            ("CancelOrder", "success", 0),
            ("CancelOrder", "error", 1),
        ] {
            assert_eq!(
                m.total(name, &[(ty, command), (status, outcome)]),
                expected,
                "{name} {command} {outcome}"
            );
        }
        assert_eq!(m.unit(name).as_deref(), Some(unit), "{name}");
        assert_eq!(m.attribute_keys(name), [status, ty], "{name}");
        for point in m.data_point_attributes(name) {
            let value = point
                .iter()
                .find(|kv| kv.key.as_str() == status)
                .map(|kv| kv.value.as_str().into_owned());
            assert!(
                matches!(value.as_deref(), Some("success" | "error")),
                "{name}: {point:?}"
            );
        }
    }
    assert_eq!(
        attr::METRIC_COMMAND_TOTAL,
        "cqrs.command.total",
        "the PromQL of seed 001"
    );
    assert_eq!(attr::METRIC_COMMAND_DURATION, "cqrs.command.duration");

    // Events produced: by command type only, successful commands only.
    let produced = attr::METRIC_EVENTS_PRODUCED;
    assert_eq!(produced, "cqrs.events.produced");
    assert_eq!(m.total(produced, &[(ty, "PlaceOrder")]), 2);
    assert_eq!(m.total(produced, &[(ty, "ShipOrder")]), 1);
    assert_eq!(m.total(produced, &[(ty, "CancelOrder")]), 0);
    assert_eq!(m.unit(produced).as_deref(), Some("{event}"));
    assert_eq!(m.attribute_keys(produced), [ty]);
}

#[tokio::test]
async fn events_produced_counts_every_event_and_durations_are_seconds() {
    let m = metrics();
    let carts = CommandService::<Cart>::new(InMemoryEventStore::new());
    carts
        .execute(AddItems {
            cart_id: "c-1".into(),
            skus: vec!["a".into(), "b".into(), "c".into()],
        })
        .await
        .unwrap();
    carts
        .execute(RemoveItem {
            cart_id: "c-1".into(),
            sku: "z".into(),
        })
        .await
        .unwrap_err();
    let ty = attr::METRIC_ATTR_COMMAND_TYPE;
    let status = attr::METRIC_ATTR_COMMAND_STATUS;
    assert_eq!(
        m.total(attr::METRIC_EVENTS_PRODUCED, &[(ty, "AddItems")]),
        3
    );
    assert_eq!(
        m.total(attr::METRIC_EVENTS_PRODUCED, &[(ty, "RemoveItem")]),
        0
    );
    assert_eq!(
        m.total(
            attr::METRIC_COMMAND_TOTAL,
            &[(ty, "RemoveItem"), (status, "error")]
        ),
        1
    );

    // A command whose delivery takes >= 60 ms, with its span switched off: still timed,
    // in seconds (60 ms is 0.06 s, not 60).
    let slow = CommandService::<Cart>::new(InMemoryEventStore::new());
    slow.register(Sluggish);
    slow.execute(SlowAdd {
        cart_id: "c-2".into(),
    })
    .await
    .unwrap();
    let having = [(ty, "SlowAdd"), (status, "success")];
    assert_eq!(m.total(attr::METRIC_COMMAND_DURATION, &having), 1);
    assert_eq!(m.total(attr::METRIC_COMMAND_TOTAL, &having), 1);
    let seconds = m.histogram_sum(attr::METRIC_COMMAND_DURATION, &having);
    assert!((0.06..5.0).contains(&seconds), "{seconds}");
}

#[tokio::test]
async fn projection_lag_by_projection_and_event_type_in_seconds() {
    let m = metrics();
    let store = InMemoryEventStore::new();
    let stream = Repository::<Cart>::stream("lag-1");
    let new = |event: CartEvent| NewEvent::from_event(&event).unwrap();
    let appended = store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![
                new(ItemAdded { sku: "a".into() }.into()),
                new(ItemAdded { sku: "b".into() }.into()),
                new(ItemRemoved { sku: "a".into() }.into()),
            ],
        )
        .await
        .unwrap();
    // The events wait 150 ms before they are projected.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let registry = ProjectionRegistry::new();
    registry.register(LagTraced);
    registry.register(LagUntraced);
    registry.register(LagFailing);
    let failures = registry.deliver(&appended.events).await;
    assert_eq!(failures.len(), 2, "LagFailing fails on both ItemAdded");

    let lag = attr::METRIC_PROJECTION_LAG;
    assert_eq!(lag, "cqrs.projection.lag");
    assert_eq!(m.unit(lag).as_deref(), Some("s"));
    let (name, ty) = (
        attr::METRIC_ATTR_PROJECTION_NAME,
        attr::METRIC_ATTR_EVENT_TYPE,
    );
    assert_eq!((name, ty), ("projection.name", "event.type"));
    assert_eq!(m.attribute_keys(lag), [ty, name]);
    for (projection, event_type, expected) in [
        ("LagTraced", "ItemAdded", 2),
        ("LagTraced", "ItemRemoved", 1),
        // Projections are not traced by default; their lag is measured all the same.
        ("LagUntraced", "ItemAdded", 2),
        ("LagUntraced", "ItemRemoved", 0),
        // A failing projection received the events: its lag is measured too.
        ("LagFailing", "ItemAdded", 2),
    ] {
        let having = [(name, projection), (ty, event_type)];
        assert_eq!(m.total(lag, &having), expected, "{projection} {event_type}");
        if expected > 0 {
            let seconds = m.histogram_sum(lag, &having);
            let per_event = seconds / expected as f64;
            assert!((0.15..10.0).contains(&per_event), "{projection}: {seconds}");
        }
    }
}

#[tokio::test]
async fn queries_are_counted_timed_and_sized_by_type_and_status() {
    use eventsource_runtime::query;
    let m = metrics();
    let ty = attr::METRIC_ATTR_QUERY_TYPE;
    let status = attr::METRIC_ATTR_QUERY_STATUS;
    for size in [2, 5] {
        query::run_collection("MetricsOpenCarts", async move {
            Ok::<_, std::fmt::Error>(vec![0_u8; size])
        })
        .await
        .unwrap();
    }
    query::run("MetricsOpenCarts", async {
        Err::<Vec<u8>, _>(std::fmt::Error)
    })
    .await
    .unwrap_err();
    let ok = [(ty, "MetricsOpenCarts"), (status, attr::STATUS_SUCCESS)];
    let failed = [(ty, "MetricsOpenCarts"), (status, attr::STATUS_ERROR)];
    assert_eq!(m.total(attr::METRIC_QUERY_TOTAL, &ok), 2);
    assert_eq!(m.total(attr::METRIC_QUERY_TOTAL, &failed), 1);
    assert_eq!(m.total(attr::METRIC_QUERY_DURATION, &ok), 2);
    assert_eq!(m.unit(attr::METRIC_QUERY_DURATION).as_deref(), Some("s"));
    assert_eq!(m.unit(attr::METRIC_QUERY_TOTAL).as_deref(), Some("{query}"));
    assert_eq!(
        m.unit(attr::METRIC_QUERY_RESULT_SIZE).as_deref(),
        Some("{item}")
    );
    assert_eq!(
        m.histogram_sum(attr::METRIC_QUERY_RESULT_SIZE, &[(ty, "MetricsOpenCarts")]),
        7.0,
        "2 + 5 items; the failed query records no size"
    );
    assert_eq!(m.attribute_keys(attr::METRIC_QUERY_TOTAL), [status, ty]);
    assert_eq!(m.attribute_keys(attr::METRIC_QUERY_RESULT_SIZE), [ty]);
}

#[tokio::test]
async fn no_metric_carries_an_unbounded_attribute() {
    let m = metrics();
    let carts = CommandService::<Cart>::new(InMemoryEventStore::new());
    carts.register(Watcher);
    carts.register(QuietWatcher);
    for i in 0..3 {
        let cart_id = format!("unbounded-cart-{i}");
        carts
            .execute(AddUnbounded {
                cart_id: cart_id.clone(),
                sku: format!("unbounded-sku-{i}"),
            })
            .await
            .unwrap();
        carts
            .execute(RemoveUnbounded {
                cart_id,
                sku: "unbounded-missing".into(),
            })
            .await
            .unwrap_err();
    }

    // Every key any metric may carry, from the contract's metric table.
    let allowed = [
        attr::METRIC_ATTR_COMMAND_TYPE,
        attr::METRIC_ATTR_COMMAND_STATUS,
        attr::METRIC_ATTR_PROJECTION_NAME,
        attr::METRIC_ATTR_EVENT_TYPE,
        attr::METRIC_ATTR_REASON,
        attr::METRIC_ATTR_QUERY_TYPE,
        attr::METRIC_ATTR_QUERY_STATUS,
        "handler.name",
        attr::METRIC_ATTR_HANDLER_STATUS,
        attr::ERROR_TYPE,
        attr::MESSAGING_SYSTEM,
        attr::MESSAGING_DESTINATION_NAME,
    ];
    let names = m.names();
    for expected in [
        attr::METRIC_COMMAND_DURATION,
        attr::METRIC_COMMAND_TOTAL,
        attr::METRIC_EVENTS_PRODUCED,
        attr::METRIC_PROJECTION_LAG,
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
    for metric in &names {
        for key in m.attribute_keys(metric) {
            assert_ne!(key, attr::AGGREGATE_ID, "{metric}");
            assert!(
                allowed.contains(&key.as_str()),
                "{metric} carries `{key}`, not in the contract"
            );
        }
        for point in m.data_point_attributes(metric) {
            for kv in &point {
                assert!(
                    !kv.value.as_str().contains("unbounded-"),
                    "{metric} carries an aggregate id or user data: {point:?}"
                );
            }
        }
    }
}
