//! `#[command_handler]`: span names and switches, the decision-function form, and seed 000's
//! six-span trace reproduced with name overrides.

use crate::domain;

use domain::{OrderReadModel, sample_order};
use eventsource_runtime::prelude::*;
use eventsource_runtime::repository::RepositorySpanNames;
use eventsource_runtime::store::StoreSpanNames;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{attribute, capture, kind};
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

// ---- a small aggregate whose handlers use every form and argument -------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    pub email: String,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Renamed {
    pub name: String,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "User", events(Registered, Renamed))]
pub struct User {
    registered: bool,
}
impl Apply<Registered> for User {
    fn apply(&mut self, _: &Registered) {
        self.registered = true;
    }
}
impl Apply<Renamed> for User {
    fn apply(&mut self, _: &Renamed) {}
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("already registered")]
    AlreadyRegistered,
    #[error("unknown user")]
    Unknown,
}

pub struct Register {
    pub user_id: u32,
    pub email: String,
}
pub struct Rename {
    pub user_id: String,
    pub name: String,
}
pub struct Touch {
    pub user_id: String,
}

/// Free decision function with a renamed span and a generated `Command` impl whose id is
/// not a `String` field.
#[command_handler(aggregate_id = register.user_id, name = "user.register", command_type = "RegisterUser")]
fn register(user: &User, register: Register) -> Result<Vec<UserEvent>, UserError> {
    if user.registered {
        return Err(UserError::AlreadyRegistered);
    }
    Ok(vec![
        Registered {
            email: register.email,
        }
        .into(),
    ])
}

#[command_handler(aggregate_id = cmd.user_id)]
impl Handle<Rename> for User {
    type Error = UserError;
    fn handle(&self, cmd: Rename) -> Result<Vec<UserEvent>, UserError> {
        if !self.registered {
            return Err(UserError::Unknown);
        }
        Ok(vec![Renamed { name: cmd.name }.into()])
    }
}

const TOUCH_TRACED: bool = false;

#[command_handler(aggregate_id = cmd.user_id, enabled = TOUCH_TRACED)]
impl Handle<Touch> for User {
    type Error = UserError;
    fn handle(&self, cmd: Touch) -> Result<Vec<UserEvent>, UserError> {
        drop(cmd);
        Ok(vec![])
    }
}

#[test]
fn generated_command_impls() {
    assert_eq!(<Register as Command>::TYPE, "RegisterUser");
    assert_eq!(
        Register {
            user_id: 7,
            email: String::new()
        }
        .aggregate_id(),
        "7"
    );
    assert_eq!(<Rename as Command>::TYPE, "Rename");
    assert_eq!(<User as Handle<Rename>>::TELEMETRY.span_name, None);
    assert_eq!(
        <User as Handle<Register>>::TELEMETRY.span_name,
        Some("user.register")
    );
    const { assert!(!<User as Handle<Touch>>::TELEMETRY.enabled) };
}

/// The generated impl writes the id straight into the runtime's shared text: the events go
/// to the stream its `Display` names, as `aggregate_id()` says, and the span says the same.
#[tokio::test]
async fn a_generated_command_stores_its_events_under_its_aggregate_id() {
    let capture = capture();
    let store = InMemoryEventStore::new();
    let users = CommandService::<User>::new(store.clone());
    let command = Register {
        user_id: 70_001,
        email: "a@b.c".into(),
    };
    assert_eq!(command.aggregate_id(), "70001");
    let outcome = users.execute(command).await.unwrap();
    assert_eq!(outcome.events[0].aggregate_id(), "70001");
    assert_eq!(outcome.aggregate.id(), "70001");
    let stored = store
        .load(&StreamId::new("User", "70001"), 1)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type, "Registered");
    drop(outcome);
    let spans = capture.spans();
    assert_eq!(
        attribute(spans.get("user.register"), attr::AGGREGATE_ID),
        Some(&Value::from("70001"))
    );
}

#[tokio::test]
async fn span_names_and_the_handler_switch() {
    let capture = capture();
    let users = CommandService::<User>::new(InMemoryEventStore::new());
    users
        .execute(Register {
            user_id: 7,
            email: "a@b.c".into(),
        })
        .await
        .unwrap();
    users
        .execute(Rename {
            user_id: "7".into(),
            name: "Ada".into(),
        })
        .await
        .unwrap();
    async {
        users
            .execute(Touch {
                user_id: "7".into(),
            })
            .await
            .unwrap();
    }
    .instrument(tracing::info_span!("caller"))
    .await;

    let spans = capture.spans();
    let register = spans.get("user.register");
    assert_eq!(
        attribute(register, attr::COMMAND_TYPE),
        Some(&Value::from("RegisterUser"))
    );
    assert_eq!(
        attribute(register, attr::AGGREGATE_ID),
        Some(&Value::from("7"))
    );
    assert_eq!(
        attribute(register, attr::AGGREGATE_TYPE),
        Some(&Value::from("User"))
    );
    let rename = spans.get("command.Rename");
    assert_eq!(attribute(rename, attr::EVENT_COUNT), Some(&Value::I64(1)));
    // The switched-off handler has no span: its repository spans hang under the caller.
    assert!(spans.all("command.Touch").is_empty(), "{}", spans.tree());
    let caller = spans.get("caller");
    let under_caller: Vec<&str> = spans
        .children(caller)
        .iter()
        .map(|s| s.name.as_ref())
        .collect();
    assert!(
        under_caller.contains(&"eventsource.repository.load"),
        "{under_caller:?}"
    );
}

/// Seed 000's trace, with its exact names: `handle_command` (root) -> `load_aggregate` ->
/// `event_store.load`, `persist_events` -> `event_store.append`, and `projection.update`
/// linked, not parented.
#[tokio::test]
async fn seed_000_six_span_trace() {
    #[derive(Default)]
    struct SeedProjection(OrderReadModel);
    #[eventsource_runtime::async_trait]
    impl Projection for SeedProjection {
        fn name(&self) -> &str {
            "OrderReadModel"
        }
        fn tracing_enabled(&self) -> bool {
            true
        }
        fn span_name(&self) -> Option<&str> {
            Some("projection.update")
        }
        async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
            self.0.handle(event).await
        }
    }

    let capture = capture();
    let store = InMemoryEventStore::new().with_span_names(StoreSpanNames {
        load: "event_store.load",
        append: "event_store.append",
        ..StoreSpanNames::default()
    });
    let repository = Repository::<SeedOrder>::new(store).with_span_names(RepositorySpanNames {
        load: "load_aggregate",
        save: "persist_events",
        ..RepositorySpanNames::default()
    });
    let orders = CommandService::with_repository(repository, ProjectionRegistry::new());
    orders.register(SeedProjection::default());
    orders
        .execute(SeedPlace(sample_order("o-1", "ada")))
        .await
        .unwrap();

    let spans = capture.spans();
    assert_eq!(spans.len(), 6, "{}", spans.tree());
    assert!(spans.is_root(spans.get("handle_command")));
    spans.assert_child_of("load_aggregate", "handle_command");
    spans.assert_child_of("event_store.load", "load_aggregate");
    spans.assert_child_of("persist_events", "handle_command");
    spans.assert_child_of("event_store.append", "persist_events");
    spans.assert_linked_root("projection.update", "event_store.append");
    assert_eq!(kind(spans.get("event_store.load")), SpanKind::Client);
    assert_eq!(kind(spans.get("projection.update")), SpanKind::Consumer);
}

// Seed 000 names its command span `handle_command`: a handler of its own for the order
// aggregate, with that name.
#[derive(Debug, Default)]
pub struct SeedOrder(domain::Order);
impl Aggregate for SeedOrder {
    const TYPE: &'static str = "Order";
    type Event = domain::OrderEvent;
    fn apply_event(&mut self, event: &Self::Event) {
        self.0.apply_event(event);
    }
}
pub struct SeedPlace(domain::PlaceOrder);

#[command_handler(aggregate_id = cmd.0.order_id, name = "handle_command", command_type = "PlaceOrder")]
impl Handle<SeedPlace> for SeedOrder {
    type Error = domain::OrderError;
    fn handle(&self, cmd: SeedPlace) -> Result<Vec<domain::OrderEvent>, domain::OrderError> {
        self.0.place(cmd.0)
    }
}

// ---- errors on spans say why: a user error's sources, the runtime's, each said once -------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemAdded {
    pub item: String,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Cart", events(ItemAdded))]
pub struct Cart {
    items: Vec<String>,
}
impl Apply<ItemAdded> for Cart {
    fn apply(&mut self, event: &ItemAdded) {
        self.items.push(event.item.clone());
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the warehouse is offline")]
pub struct WarehouseDown;

#[derive(Debug, thiserror::Error)]
pub enum CartError {
    #[error("item {0} is not in the cart")]
    NotInCart(String),
    /// Names its source in its text and exposes it: said once.
    #[error("stock unknown: {0}")]
    StockUnknown(#[source] WarehouseDown),
    /// Exposes its source only: said after it.
    #[error("checkout unavailable")]
    CheckoutUnavailable(#[source] WarehouseDown),
}

pub struct RemoveItem {
    pub cart_id: String,
    pub item: String,
}

#[command_handler(aggregate_id = cmd.cart_id)]
impl Handle<RemoveItem> for Cart {
    type Error = CartError;
    fn handle(&self, cmd: RemoveItem) -> Result<Vec<CartEvent>, CartError> {
        match cmd.item.as_str() {
            "stock" => Err(CartError::StockUnknown(WarehouseDown)),
            "checkout" => Err(CartError::CheckoutUnavailable(WarehouseDown)),
            item if !self.items.iter().any(|i| i == item) => Err(CartError::NotInCart(cmd.item)),
            _ => Ok(vec![]),
        }
    }
}

/// The application's own error, wrapping the runtime's as thiserror users do.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error("command failed: {0}")]
    Command(#[from] CommandError<CartError>),
}

#[traced(err)]
async fn remove_from_cart(carts: &CommandService<Cart>, item: &str) -> Result<(), ShopError> {
    carts
        .execute(RemoveItem {
            cart_id: "c-1".into(),
            item: item.into(),
        })
        .await?;
    Ok(())
}

/// The span's status description and its one `exception` event's message.
fn error_texts(span: &opentelemetry_sdk::trace::SpanData) -> (String, String) {
    let opentelemetry::trace::Status::Error { description } = &span.status else {
        panic!("{} did not end in error: {:?}", span.name, span.status);
    };
    let exceptions = eventsource_runtime::testing::events(span, "exception");
    assert_eq!(exceptions.len(), 1, "{}", span.name);
    let message = exceptions[0]
        .iter()
        .find(|kv| kv.key.as_str() == "exception.message")
        .expect("exception.message")
        .value
        .as_str()
        .into_owned();
    (description.to_string(), message)
}

#[tokio::test]
async fn a_user_error_wrapping_a_rejection_records_why_once() {
    let capture = capture();
    let carts = CommandService::<Cart>::new(InMemoryEventStore::new());
    let error = remove_from_cart(&carts, "lamp").await.unwrap_err();
    assert_eq!(error.to_string(), "command failed: command rejected");
    let spans = capture.spans();

    let why = "command failed: command rejected: item lamp is not in the cart";
    let traced = spans.get("remove_from_cart");
    assert_eq!(error_texts(traced), (why.into(), why.into()));
    for part in [
        "command failed",
        "command rejected",
        "item lamp is not in the cart",
    ] {
        assert_eq!(why.matches(part).count(), 1, "{part}");
    }
    // The command's own span says the same, from the rejection down.
    let command = spans.get("command.RemoveItem");
    let rejected = "command rejected: item lamp is not in the cart";
    assert_eq!(error_texts(command), (rejected.into(), rejected.into()));
}

#[tokio::test]
async fn the_command_span_of_a_user_error_with_a_source_shows_the_chain() {
    let capture = capture();
    let carts = CommandService::<Cart>::new(InMemoryEventStore::new());
    let remove = |item: &str| RemoveItem {
        cart_id: "c-2".into(),
        item: item.into(),
    };
    assert!(carts.execute(remove("checkout")).await.is_err());
    assert!(carts.execute(remove("stock")).await.is_err());
    let spans = capture.spans();
    let commands = spans.all("command.RemoveItem");
    assert_eq!(commands.len(), 2);
    let texts: Vec<_> = commands.into_iter().map(error_texts).collect();
    let checkout = "command rejected: checkout unavailable: the warehouse is offline";
    let stock = "command rejected: stock unknown: the warehouse is offline";
    assert!(
        texts.contains(&(checkout.into(), checkout.into())),
        "{texts:?}"
    );
    assert!(texts.contains(&(stock.into(), stock.into())), "{texts:?}");
}
