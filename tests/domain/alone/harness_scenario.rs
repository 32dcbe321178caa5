//! The user's view of `testing` (issue 11): a small cart service outside the runtime,
//! twelve tests of its spans, metrics and decisions written only against
//! `eventsource_runtime::testing` (no `opentelemetry` import), beside tests that run the
//! same code with no capture, on current-thread and multi-thread runtimes, with spawned
//! tasks. The binary must pass every time: `scenario_passes_500_times_in_a_row` (ignored;
//! `cargo test --test harness_scenario -- --ignored`) runs it 500 times.

use std::sync::Arc;
use std::time::Duration;

use eventsource_runtime::prelude::*;
use eventsource_runtime::testing::{
    SpanKind, Status, Value, attribute, capture, capture_metrics, event_attribute, given,
};
use serde::{Deserialize, Serialize};

// ---- the cart service ---------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemAdded {
    pub sku: String,
    pub quantity: u32,
    pub price_cents: u64,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedOut {
    pub total_cents: u64,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Cart", events(ItemAdded, CheckedOut))]
pub struct Cart {
    lines: Vec<(String, u32)>,
    total_cents: u64,
    checked_out: bool,
}
impl Apply<ItemAdded> for Cart {
    fn apply(&mut self, e: &ItemAdded) {
        self.lines.push((e.sku.clone(), e.quantity));
        self.total_cents += e.price_cents * u64::from(e.quantity);
    }
}
impl Apply<CheckedOut> for Cart {
    fn apply(&mut self, _: &CheckedOut) {
        self.checked_out = true;
    }
}

/// No `PartialEq`: one variant carries an I/O error.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    #[error("cart {0} is empty")]
    Empty(String),
    #[error("cart is already checked out")]
    CheckedOut,
    #[error("price list unavailable")]
    Prices(#[source] std::io::Error),
}

pub struct AddItem {
    pub cart_id: String,
    pub sku: String,
    pub quantity: u32,
}
pub struct CheckOut {
    pub cart_id: String,
}
/// Only the metric tests send it, so its counts are theirs.
pub struct ApplyCoupon {
    pub cart_id: String,
    pub code: String,
}

/// The price of a SKU (a traced lookup the decision makes).
#[eventsource_runtime::traced(name = "cart.price", fields(sku = sku), err)]
fn price(sku: &str) -> Result<u64, CartError> {
    match sku {
        "broken" => Err(CartError::Prices(std::io::Error::other("no price list"))),
        _ => Ok(250),
    }
}

#[command_handler(aggregate_id = cmd.cart_id)]
impl Handle<AddItem> for Cart {
    type Error = CartError;
    fn handle(&self, cmd: AddItem) -> Result<Vec<CartEvent>, CartError> {
        if self.checked_out {
            return Err(CartError::CheckedOut);
        }
        let price_cents = price(&cmd.sku)?;
        Ok(vec![
            ItemAdded {
                sku: cmd.sku,
                quantity: cmd.quantity,
                price_cents,
            }
            .into(),
        ])
    }
}

#[command_handler(aggregate_id = cmd.cart_id)]
impl Handle<CheckOut> for Cart {
    type Error = CartError;
    fn handle(&self, cmd: CheckOut) -> Result<Vec<CartEvent>, CartError> {
        if self.lines.is_empty() {
            return Err(CartError::Empty(cmd.cart_id));
        }
        if self.checked_out {
            return Err(CartError::CheckedOut);
        }
        Ok(vec![
            CheckedOut {
                total_cents: self.total_cents,
            }
            .into(),
        ])
    }
}

#[command_handler(aggregate_id = cmd.cart_id)]
impl Handle<ApplyCoupon> for Cart {
    type Error = CartError;
    fn handle(&self, cmd: ApplyCoupon) -> Result<Vec<CartEvent>, CartError> {
        if cmd.code == "expired" {
            return Err(CartError::CheckedOut);
        }
        Ok(vec![])
    }
}

fn coupon(cart_id: &str, code: &str) -> ApplyCoupon {
    ApplyCoupon {
        cart_id: cart_id.into(),
        code: code.into(),
    }
}

/// A read model of checked-out totals, traced.
#[derive(Default)]
pub struct Revenue {
    pub cents: u64,
}
#[projection(enable_tracing = true)]
impl Revenue {
    fn on_checked_out(&mut self, e: &CheckedOut) {
        self.cents += e.total_cents;
    }
}

fn service() -> Arc<CommandService<Cart>> {
    Arc::new(CommandService::<Cart>::new(InMemoryEventStore::new()))
}

fn add(cart_id: &str, sku: &str) -> AddItem {
    AddItem {
        cart_id: cart_id.into(),
        sku: sku.into(),
        quantity: 2,
    }
}

/// A user's own `tracing` span around a call, with an event in it.
async fn checkout_request(carts: &CommandService<Cart>, cart_id: &str) {
    use tracing::Instrument as _;
    async {
        tracing::info!(cart.id = cart_id, "checkout requested");
        let _ = carts
            .execute(CheckOut {
                cart_id: cart_id.into(),
            })
            .await;
    }
    .instrument(tracing::info_span!("http.checkout"))
    .await;
}

// ---- tests with no capture: they touch every callsite too ---------------------------------

#[tokio::test]
async fn commands_run_without_a_capture() {
    let carts = service();
    carts.execute(add("quiet-1", "tea")).await.unwrap();
    checkout_request(&carts, "quiet-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_commands_run_without_a_capture() {
    let carts = service();
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let carts = Arc::clone(&carts);
            tokio::spawn(async move { carts.execute(add(&format!("quiet-m{i}"), "tea")).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

// ---- the twelve -------------------------------------------------------------------------

#[tokio::test]
async fn add_item_has_the_command_story() {
    let spans_capture = capture();
    service().execute(add("cart-1", "tea")).await.unwrap();
    let spans = spans_capture.spans();
    spans.assert_shape(
        "
        command.AddItem [internal] eventsource.aggregate.id=cart-1
          eventsource.repository.load [internal]
            eventsource.event_store.load [client]
          cart.price [internal] sku=tea
          eventsource.repository.save [internal] eventsource.version=1
            eventsource.event_store.append [client]
        ",
    );
}

#[tokio::test]
async fn command_attributes_are_typed() {
    let spans_capture = capture();
    service().execute(add("cart-2", "tea")).await.unwrap();
    let spans = spans_capture.spans();
    let command = spans.get("command.AddItem");
    spans.assert_attribute(command, "eventsource.aggregate.id", "cart-2");
    spans.assert_attribute(command, "eventsource.event.count", 1);
    assert_eq!(
        attribute(command, "eventsource.command.type"),
        Some(&Value::from("AddItem"))
    );
    assert_eq!(command.span_kind, SpanKind::Internal);
}

#[tokio::test]
async fn a_rejection_is_an_error_with_one_exception() {
    let spans_capture = capture();
    let carts = service();
    let refused = carts
        .execute(CheckOut {
            cart_id: "cart-3".into(),
        })
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(CartError::Empty(_)))
    ));
    let spans = spans_capture.spans();
    spans.assert_error(
        spans.get("command.CheckOut"),
        std::any::type_name::<CartError>(),
        "command rejected: cart cart-3 is empty",
    );
    spans.assert_no_span("eventsource.repository.save");
}

#[tokio::test]
async fn a_traced_failure_inside_the_decision() {
    let spans_capture = capture();
    let _ = service().execute(add("cart-4", "broken")).await;
    let spans = spans_capture.spans();
    spans.assert_error(
        spans.get("cart.price"),
        std::any::type_name::<CartError>(),
        // The error and its source (issue 29: a span says why, the whole chain once).
        "price list unavailable: no price list",
    );
    spans.assert_descendant_of("cart.price", "command.AddItem");
    assert!(matches!(
        spans.get("command.AddItem").status,
        Status::Error { .. }
    ));
}

#[tokio::test]
async fn repeated_names_are_found_by_attribute() {
    let spans_capture = capture();
    let carts = service();
    for cart in ["cart-5a", "cart-5b", "cart-5c"] {
        carts.execute(add(cart, "tea")).await.unwrap();
    }
    let spans = spans_capture.spans();
    assert_eq!(spans.all("command.AddItem").len(), 3);
    let second = spans.get_with("command.AddItem", "eventsource.aggregate.id", "cart-5b");
    assert_eq!(spans.children(second).len(), 3);
    assert_eq!(
        spans
            .with_attribute("eventsource.aggregate.id", "cart-5c")
            .len(),
        5,
        "the command and its four repository and store spans"
    );
    assert!(spans.first("command.AddItem").is_some());
}

#[tokio::test]
async fn the_users_span_parents_the_command() {
    let spans_capture = capture();
    let carts = service();
    carts.execute(add("cart-6", "tea")).await.unwrap();
    spans_capture.clear();
    checkout_request(&carts, "cart-6").await;
    let spans = spans_capture.spans();
    spans.assert_child_of("command.CheckOut", "http.checkout");
    assert_eq!(
        event_attribute(spans.get("http.checkout"), "checkout requested", "cart.id"),
        Some(&Value::from("cart-6"))
    );
    spans.assert_shape(
        "
        http.checkout
          command.CheckOut eventsource.aggregate.id=cart-6
            eventsource.repository.load
              eventsource.event_store.load
            eventsource.repository.save eventsource.version=2
              eventsource.event_store.append
        ",
    );
}

#[tokio::test]
async fn the_projection_is_a_linked_root() {
    let spans_capture = capture();
    let carts = service();
    let revenue = carts.register(Revenue::default());
    carts.execute(add("cart-7", "tea")).await.unwrap();
    carts
        .execute(CheckOut {
            cart_id: "cart-7".into(),
        })
        .await
        .unwrap();
    assert_eq!(revenue.lock().await.cents, 500);
    let spans = spans_capture.spans();
    let checkout = spans.get("command.CheckOut");
    let append = spans
        .children(checkout)
        .into_iter()
        .flat_map(|save| spans.children(save))
        .find(|s| s.name == "eventsource.event_store.append")
        .expect("the checkout's append");
    let projection = spans.get("projection.Revenue");
    assert!(spans.is_root(projection));
    assert_eq!(projection.span_kind, SpanKind::Consumer);
    assert_eq!(
        projection.links.links[0].span_context.span_id(),
        append.span_context.span_id(),
        "{}",
        spans.tree()
    );
    spans.assert_shape(
        "
        command.AddItem
          eventsource.repository.load
            eventsource.event_store.load
          cart.price
          eventsource.repository.save
            eventsource.event_store.append
        command.CheckOut
          eventsource.repository.load
            eventsource.event_store.load
          eventsource.repository.save
            eventsource.event_store.append
        projection.Revenue [consumer] -> eventsource.event_store.append
        ",
    );
    assert_eq!(
        spans.link_names(projection),
        ["eventsource.event_store.append"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_commands_on_worker_threads_are_captured() {
    let spans_capture = capture();
    let carts = service();
    let tasks: Vec<_> = (0..7)
        .map(|i| {
            let carts = Arc::clone(&carts);
            tokio::spawn(async move { carts.execute(add(&format!("cart-8-{i}"), "tea")).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let spans = spans_capture.wait_spans(Duration::from_secs(10));
    assert_eq!(spans.all("command.AddItem").len(), 7, "{}", spans.tree());
    assert_eq!(spans.len(), 7 * 6, "{}", spans.tree());
    for command in spans.all("command.AddItem") {
        assert!(spans.is_root(command));
        assert_eq!(spans.children(command).len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_task_in_the_users_span_joins_its_trace() {
    use tracing::Instrument as _;
    let spans_capture = capture();
    let carts = service();
    let request = tracing::info_span!("http.add");
    let task = {
        let carts = Arc::clone(&carts);
        tokio::spawn(async move { carts.execute(add("cart-9", "tea")).await }.instrument(request))
    };
    task.await.unwrap().unwrap();
    let spans = spans_capture.wait_spans(Duration::from_secs(10));
    spans.assert_child_of("command.AddItem", "http.add");
    spans.assert_descendant_of("eventsource.event_store.append", "http.add");
}

#[tokio::test]
async fn metrics_count_this_tests_commands() {
    let metrics = capture_metrics();
    let carts = service();
    carts.execute(coupon("cart-10", "spring")).await.unwrap();
    carts.execute(coupon("cart-10", "summer")).await.unwrap();
    let _ = carts.execute(coupon("cart-10", "expired")).await;
    let coupons = |status| {
        metrics.total(
            "cqrs.command.total",
            &[("command.type", "ApplyCoupon"), ("command.status", status)],
        )
    };
    assert_eq!(coupons("success"), 2);
    assert_eq!(coupons("error"), 1);
    assert_eq!(
        metrics.attribute_keys("cqrs.command.duration"),
        ["command.status", "command.type"]
    );
}

/// Runs beside the test above: one capture at a time, so neither reads the other's
/// numbers nor zeros.
#[tokio::test]
async fn metrics_of_another_test_are_not_mixed_in() {
    let metrics = capture_metrics();
    let carts = service();
    for code in ["a", "b", "c"] {
        carts.execute(coupon("cart-11", code)).await.unwrap();
    }
    assert_eq!(
        metrics.total(
            "cqrs.command.total",
            &[
                ("command.type", "ApplyCoupon"),
                ("command.status", "success")
            ]
        ),
        3,
        "{:?}",
        metrics.names()
    );
    assert_eq!(metrics.unit("cqrs.command.duration").as_deref(), Some("s"));
}

#[test]
fn decisions_without_partial_eq() {
    let added = ItemAdded {
        sku: "tea".into(),
        quantity: 1,
        price_cents: 250,
    };
    let checked_out = CheckedOut { total_cents: 250 };
    let state = given::<Cart>([added.clone().into(), checked_out.into()])
        .when(CheckOut {
            cart_id: "cart-12".into(),
        })
        .then_error(CartError::CheckedOut);
    assert!(state.checked_out);
    given::<Cart>([])
        .when(CheckOut {
            cart_id: "cart-12".into(),
        })
        .then_error_message("cart cart-12 is empty");
    let state = given::<Cart>([added.into()])
        .when(CheckOut {
            cart_id: "cart-12".into(),
        })
        .then([CheckedOut { total_cents: 250 }]);
    assert!(state.checked_out);
}

// ---- the loop -----------------------------------------------------------------------------

/// Runs this binary's other tests 500 times in a row, each run a fresh process (the
/// callsite cache and the global subscriber start empty every time).
#[test]
#[ignore = "about 15 s: run with `-- --ignored`"]
fn scenario_passes_500_times_in_a_row() {
    let exe = std::env::current_exe().unwrap();
    for run in 1..=500 {
        let output = std::process::Command::new(&exe)
            .args(["-q", "--skip", "scenario_passes_500_times_in_a_row"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "run {run} failed:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}
