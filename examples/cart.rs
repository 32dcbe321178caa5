//! Seed 002's tutorial (observability with OpenTelemetry), as a shopping cart: traced
//! application services with static attributes and a per-instance switch, the runtime's own
//! spans under them, a projection with its spans switched on, and log lines that carry the
//! trace id.
//!
//! `cargo run --example cart` prints each trace as a tree on stderr;
//! `OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318` sends them to a collector instead.
//!
//! - `CartService` (seed 002's `TracingMixin` service): one span per call
//!   (`cart_service.add_item`, ...), with the service's static attribute and the call's
//!   fields; its `tracing` switch is read per instance (the importer below runs with it off:
//!   the repository and store spans stay, its own do not);
//! - `NotificationService` (seed 002's `@traced(name, attributes={"channel": ...})`):
//!   `notification_service.send_email` with `channel=email`;
//! - `CartSummary`: a projection whose spans are on (`#[projection(enable_tracing = true)]`),
//!   each a new root linked to the append that stored the event;
//! - `tracing::info!` lines inside the spans: `telemetry::init()` prints them with their
//!   `trace_id` and `span_id`.

#[path = "support/exit.rs"]
mod support;

use std::collections::BTreeMap;
use std::error::Error;
use std::process::ExitCode;

use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

// ---- The cart: events, state, decisions. -------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemAdded {
    pub product: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRemoved {
    pub product: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedOut {
    pub items: u32,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Cart", events(ItemAdded, ItemRemoved, CheckedOut))]
pub struct Cart {
    items: BTreeMap<String, u32>,
    checked_out: bool,
}

impl Apply<ItemAdded> for Cart {
    fn apply(&mut self, event: &ItemAdded) {
        *self.items.entry(event.product.clone()).or_default() += event.quantity;
    }
}

impl Apply<ItemRemoved> for Cart {
    fn apply(&mut self, event: &ItemRemoved) {
        self.items.remove(&event.product);
    }
}

impl Apply<CheckedOut> for Cart {
    fn apply(&mut self, _: &CheckedOut) {
        self.checked_out = true;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("the cart was checked out already")]
    CheckedOut,
    #[error("{0} is not in the cart")]
    NotInCart(String),
    #[error("an empty cart cannot be checked out")]
    Empty,
}

pub struct AddItem {
    pub cart_id: String,
    pub product: String,
    pub quantity: u32,
}

pub struct RemoveItem {
    pub cart_id: String,
    pub product: String,
}

pub struct CheckOut {
    pub cart_id: String,
}

impl Cart {
    fn open(&self) -> Result<(), CartError> {
        if self.checked_out {
            return Err(CartError::CheckedOut);
        }
        Ok(())
    }
}

#[command_handler(aggregate_id = cmd.cart_id)]
impl Handle<AddItem> for Cart {
    type Error = CartError;
    fn handle(&self, cmd: AddItem) -> Result<Vec<CartEvent>, CartError> {
        self.open()?;
        let added = ItemAdded {
            product: cmd.product,
            quantity: cmd.quantity,
        };
        Ok(vec![added.into()])
    }
}

#[command_handler(aggregate_id = cmd.cart_id)]
impl Handle<RemoveItem> for Cart {
    type Error = CartError;
    fn handle(&self, cmd: RemoveItem) -> Result<Vec<CartEvent>, CartError> {
        self.open()?;
        if !self.items.contains_key(&cmd.product) {
            return Err(CartError::NotInCart(cmd.product));
        }
        let removed = ItemRemoved {
            product: cmd.product,
        };
        Ok(vec![removed.into()])
    }
}

#[command_handler(aggregate_id = cmd.cart_id)]
impl Handle<CheckOut> for Cart {
    type Error = CartError;
    fn handle(&self, cmd: CheckOut) -> Result<Vec<CartEvent>, CartError> {
        let _ = cmd;
        self.open()?;
        if self.items.is_empty() {
            return Err(CartError::Empty);
        }
        let items = self.items.values().sum();
        Ok(vec![CheckedOut { items }.into()])
    }
}

// ---- The read side: a projection with its spans on. -----------------------------------------

/// Items per cart, and the carts checked out.
#[derive(Debug, Default)]
pub struct CartSummary {
    pub items: BTreeMap<String, u32>,
    pub checked_out: Vec<String>,
}

#[projection(enable_tracing = true)]
impl CartSummary {
    fn on_added(&mut self, added: &ItemAdded, envelope: &EventEnvelope) {
        *self
            .items
            .entry(envelope.aggregate_id().to_owned())
            .or_default() += added.quantity;
    }

    fn on_checked_out(&mut self, _: &CheckedOut, envelope: &EventEnvelope) {
        self.checked_out.push(envelope.aggregate_id().to_owned());
    }
}

// ---- Application services. ---------------------------------------------------------------

/// Sends e-mails (here: a log line).
pub struct NotificationService;

impl NotificationService {
    #[traced(name = "notification_service.send_email", attributes("channel" = "email"))]
    async fn send_email(&self, recipient: &str, subject: &str) {
        tracing::info!(recipient, subject, "e-mail sent");
    }
}

/// The cart's use cases: each call one span, switched per instance.
pub struct CartService {
    carts: CommandService<Cart>,
    notifications: NotificationService,
    tracing: bool,
}

impl CartService {
    #[traced(
        name = "cart_service.add_item",
        attributes("service" = "cart"),
        fields(cart.id = cart_id, product = product, quantity = quantity),
        enabled = self.tracing,
    )]
    async fn add_item(
        &self,
        cart_id: &str,
        product: &str,
        quantity: u32,
    ) -> Result<(), CommandError<CartError>> {
        let command = AddItem {
            cart_id: cart_id.to_owned(),
            product: product.to_owned(),
            quantity,
        };
        self.carts.execute(command).await?;
        tracing::info!(cart_id, product, quantity, "item added");
        Ok(())
    }

    #[traced(
        name = "cart_service.remove_item",
        attributes("service" = "cart"),
        fields(cart.id = cart_id, product = product),
        enabled = self.tracing,
    )]
    async fn remove_item(
        &self,
        cart_id: &str,
        product: &str,
    ) -> Result<(), CommandError<CartError>> {
        let command = RemoveItem {
            cart_id: cart_id.to_owned(),
            product: product.to_owned(),
        };
        self.carts.execute(command).await?;
        Ok(())
    }

    #[traced(
        name = "cart_service.check_out",
        attributes("service" = "cart"),
        fields(cart.id = cart_id, customer = customer),
        enabled = self.tracing,
    )]
    async fn check_out(
        &self,
        cart_id: &str,
        customer: &str,
    ) -> Result<(), CommandError<CartError>> {
        let command = CheckOut {
            cart_id: cart_id.to_owned(),
        };
        self.carts.execute(command).await?;
        let subject = format!("your cart {cart_id} is on its way");
        self.notifications.send_email(customer, &subject).await;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = eventsource_runtime::telemetry::init();
    let outcome = run().await;
    // Exported before exiting; an error printed as one line, its causes once.
    support::finish(telemetry, outcome)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let store = InMemoryEventStore::new();
    let carts = CommandService::<Cart>::new(store.clone());
    let summary = carts.register(CartSummary::default());

    // The shop's service, traced.
    let shop = CartService {
        carts: carts.clone(),
        notifications: NotificationService,
        tracing: true,
    };
    shop.add_item("cart-1", "book", 2).await?;
    shop.add_item("cart-1", "mug", 1).await?;
    shop.remove_item("cart-1", "mug").await?;
    shop.check_out("cart-1", "ada@example.com").await?;
    println!("cart-1 checked out");

    // A second checkout is refused: the command span and the service span end with ERROR.
    match shop.check_out("cart-1", "ada@example.com").await {
        Err(CommandError::Rejected(reason)) => println!("cart-1 again -> rejected: {reason}"),
        other => println!("cart-1 again -> unexpected: {other:?}"),
    }

    // A bulk importer: the same service with its own spans off (per instance).
    let importer = CartService {
        carts,
        notifications: NotificationService,
        tracing: false,
    };
    importer.add_item("cart-2", "pen", 10).await?;
    println!("cart-2 imported");

    let summary = summary.lock().await;
    for (cart, items) in &summary.items {
        println!("summary: {cart} holds {items} item(s) added");
    }
    println!("summary: checked out {:?}", summary.checked_out);
    Ok(())
}
