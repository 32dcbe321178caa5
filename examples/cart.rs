//! Observability with OpenTelemetry, as a shopping cart: traced
//! application services with static attributes and a per-instance switch, the runtime's own
//! spans under them, a projection with its spans switched on, and log lines that carry the
//! trace id.
//!
//! `cargo run --example cart` prints each trace as a tree on stderr;
//! `OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318` sends them to a collector instead.
//!
//! - `CartService` (a service traced as a whole, switchable per instance): one span per call
//!   (`cart_service.add_item`, ...), with the service's static attribute and the call's
//!   fields; its `tracing` switch is read per instance (the importer below runs with it off:
//!   the repository and store spans stay, its own do not);
//! - `NotificationService` (one method traced under a name of its own, with a static
//!   attribute): `notification_service.send_email` with `channel=email`;
//! - `CartSummary`: a projection whose spans are on (`#[projection(enable_tracing = true)]`),
//!   each a new root linked to the append that stored the event;
//! - `tracing::info!` lines inside the spans: `telemetry::init()` prints them with their
//!   `trace_id` and `span_id`;
//! - a second service, `FulfilmentService`, with its own store: the cart service publishes
//!   its events on an in-memory bus, and the fulfilment service's handler prepares a
//!   shipment for each checkout. Its events carry the checkout's correlation id (the
//!   dispatcher hands the handler the message's lineage), so both services' command,
//!   publish, consume and handle spans show the same `eventsource.correlation.id`, and the
//!   causation tree of the checkout, printed at the end, spans both stores.

#[path = "support/exit.rs"]
mod support;

use std::collections::BTreeMap;
use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use eventsource_runtime::lineage::CausationTree;
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

// ---- Fulfilment, the second service: a shipment per checked-out cart. -------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentPrepared {
    pub cart_id: String,
    pub items: u32,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Shipment", events(ShipmentPrepared))]
pub struct Shipment {
    prepared: bool,
}

impl Apply<ShipmentPrepared> for Shipment {
    fn apply(&mut self, _: &ShipmentPrepared) {
        self.prepared = true;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the shipment was prepared already")]
pub struct AlreadyPrepared;

pub struct PrepareShipment {
    pub cart_id: String,
    pub items: u32,
}

#[command_handler(aggregate_id = cmd.cart_id)]
impl Handle<PrepareShipment> for Shipment {
    type Error = AlreadyPrepared;
    fn handle(&self, cmd: PrepareShipment) -> Result<Vec<ShipmentEvent>, AlreadyPrepared> {
        if self.prepared {
            return Err(AlreadyPrepared);
        }
        let prepared = ShipmentPrepared {
            cart_id: cmd.cart_id,
            items: cmd.items,
        };
        Ok(vec![prepared.into()])
    }
}

/// The fulfilment service: reacts to checkouts published by the cart service.
pub struct FulfilmentService {
    shipments: CommandService<Shipment>,
}

impl FulfilmentService {
    /// Runs inside the bus's handle span, so inside the checkout message's lineage: the
    /// shipment's event carries the checkout's correlation id, and the checkout event as its
    /// cause, with nothing passed by hand.
    #[traced(
        name = "fulfilment_service.prepare_shipment",
        attributes("service" = "fulfilment"),
        fields(cart.id = cart_id),
    )]
    async fn prepare_shipment(
        &self,
        cart_id: &str,
        items: u32,
    ) -> Result<(), CommandError<AlreadyPrepared>> {
        let command = PrepareShipment {
            cart_id: cart_id.to_owned(),
            items,
        };
        self.shipments.execute(command).await?;
        tracing::info!(cart_id, items, "shipment prepared");
        Ok(())
    }

    /// The bus handler: decodes a checkout and prepares its shipment.
    fn on_checkout(self: Arc<Self>) -> impl EventHandler {
        handler_fn("fulfilment", move |event: EventEnvelope| {
            let service = Arc::clone(&self);
            async move {
                let Some(checked_out) = event.decode_as::<CheckedOut>() else {
                    return Ok(());
                };
                let items = checked_out?.items;
                let prepared = service.prepare_shipment(event.aggregate_id(), items);
                prepared.await.map_err(HandlerError::new)
            }
        })
        .only(["CheckedOut"])
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
    /// Checks the cart out; returns the correlation id its events carry (the checkout's
    /// id: nothing came before it).
    async fn check_out(
        &self,
        cart_id: &str,
        customer: &str,
    ) -> Result<String, CommandError<CartError>> {
        let command = CheckOut {
            cart_id: cart_id.to_owned(),
        };
        let outcome = self.carts.execute(command).await?;
        let subject = format!("your cart {cart_id} is on its way");
        self.notifications.send_email(customer, &subject).await;
        let correlation_id = outcome.events[0].metadata.correlation_id();
        Ok(correlation_id.unwrap_or_default().to_owned())
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
    // The fulfilment service, with its own store, listening on the bus.
    let shipments_store = InMemoryEventStore::new();
    let fulfilment = Arc::new(FulfilmentService {
        shipments: CommandService::new(shipments_store.clone()),
    });
    let bus = InMemoryEventBus::new().with_destination("carts");
    bus.subscribe(fulfilment.on_checkout());

    // The cart service publishes what it stores on the bus.
    let store = InMemoryEventStore::new();
    let carts = CommandService::<Cart>::new(store.clone()).with_bus(bus);
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
    let checkout = shop.check_out("cart-1", "ada@example.com").await?;
    println!("cart-1 checked out (correlation id {checkout})");

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

    // Everything the checkout caused, in both services' stores, with each event's trace id.
    let carts = store.events_by_correlation(&checkout).await?;
    let shipments = shipments_store.events_by_correlation(&checkout).await?;
    let tree = CausationTree::from_events(&checkout, carts.into_iter().chain(shipments));
    println!("causation tree of the checkout:\n{tree}");
    Ok(())
}
