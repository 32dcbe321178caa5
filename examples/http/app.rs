//! The cart service behind HTTP, as teams build one with axum: commands and queries behind
//! routes, server spans from `axum-tracing-opentelemetry` (the caller's `traceparent`
//! continued), a call to another service carrying `traceparent`, and errors as status
//! codes. Shared by `examples/http_service.rs` and `tests/telemetry/alone/http_service.rs`.
//!
//! - `POST /carts/{id}/items` `{"product": "book", "quantity": 2}`: asks the price service
//!   for the unit price (`GET {prices}/prices/{product}`, in a CLIENT span whose context
//!   goes out as `traceparent`), then runs `AddItem` (`command.AddItem`, load, append).
//!   `201` with the cart's new version; `422` when the cart refuses the command (its reason
//!   in the body), `409` when another request changed the cart first, `502` when the price
//!   service fails, `500` when the store does.
//! - `GET /carts/{id}`: the read model (`query.CartById`); `404` for a cart never seen.
//! - `GET /prices/{product}`: the price service (in the same process here, to keep the
//!   example whole; its server span is a child of the caller's CLIENT span all the same).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_tracing_opentelemetry::middleware::{OtelAxumLayer, OtelInResponseLayer};
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::SharedProjection;
use eventsource_runtime::{query, telemetry};
use serde::{Deserialize, Serialize};

// ---- The cart: one event, one decision. -------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemAdded {
    pub product: String,
    pub quantity: u32,
    pub unit_price_cents: u64,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Cart", events(ItemAdded))]
pub struct Cart {
    lines: u32,
}

impl Apply<ItemAdded> for Cart {
    fn apply(&mut self, _: &ItemAdded) {
        self.lines += 1;
    }
}

/// The most lines a cart holds.
pub const MAX_LINES: u32 = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("the quantity must be at least 1")]
    NoQuantity,
    #[error("a cart holds at most {MAX_LINES} lines")]
    Full,
}

pub struct AddItem {
    pub cart_id: String,
    pub product: String,
    pub quantity: u32,
    pub unit_price_cents: u64,
}

#[command_handler(aggregate_id = cmd.cart_id)]
impl Handle<AddItem> for Cart {
    type Error = CartError;
    fn handle(&self, cmd: AddItem) -> Result<Vec<CartEvent>, CartError> {
        if cmd.quantity == 0 {
            return Err(CartError::NoQuantity);
        }
        if self.lines >= MAX_LINES {
            return Err(CartError::Full);
        }
        let added = ItemAdded {
            product: cmd.product,
            quantity: cmd.quantity,
            unit_price_cents: cmd.unit_price_cents,
        };
        Ok(vec![added.into()])
    }
}

// ---- The read side. ------------------------------------------------------------------------

/// A cart as `GET /carts/{id}` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CartView {
    pub items: BTreeMap<String, u32>,
    pub total_cents: u64,
}

/// Every cart, kept up to date by the command service.
#[derive(Debug, Default)]
pub struct Carts {
    carts: BTreeMap<String, CartView>,
}

#[projection]
impl Carts {
    fn on_added(&mut self, added: &ItemAdded, envelope: &EventEnvelope) {
        let cart = self
            .carts
            .entry(envelope.aggregate_id().to_owned())
            .or_default();
        *cart.items.entry(added.product.clone()).or_default() += added.quantity;
        cart.total_cents += u64::from(added.quantity) * added.unit_price_cents;
    }
}

// ---- The service. ----------------------------------------------------------------------------

/// What the routes share.
pub struct App {
    carts: CommandService<Cart>,
    view: SharedProjection<Carts>,
    /// The price service's base URL (`http://127.0.0.1:3000`).
    prices: String,
    http: reqwest::Client,
}

impl App {
    /// The service on `store`, asking `prices` (a base URL) for prices.
    pub fn new(store: impl EventStore, prices: impl Into<String>) -> Arc<Self> {
        let carts = CommandService::<Cart>::new(store);
        let view = carts.register(Carts::default());
        Arc::new(Self {
            carts,
            view,
            prices: prices.into(),
            http: reqwest::Client::new(),
        })
    }
}

/// The routes, each request in a SERVER span that continues the caller's trace.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/carts/{id}/items", post(add_item))
        .route("/carts/{id}", get(cart))
        .route("/prices/{product}", get(price))
        // The response's `traceparent`: the caller learns the trace id.
        .layer(OtelInResponseLayer)
        .layer(OtelAxumLayer::default())
        .with_state(app)
}

#[derive(Debug, Deserialize)]
pub struct NewItem {
    pub product: String,
    pub quantity: u32,
}

/// An error as the caller sees it: a status and the reason.
pub struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1 });
        (self.0, Json(body)).into_response()
    }
}

async fn add_item(
    State(app): State<Arc<App>>,
    Path(cart_id): Path<String>,
    Json(item): Json<NewItem>,
) -> Result<(StatusCode, Json<serde_json::Value>), Failure> {
    let unit_price_cents = unit_price(&app, &item.product)
        .await
        .map_err(|error| Failure(StatusCode::BAD_GATEWAY, error.to_string()))?;
    let command = AddItem {
        cart_id,
        product: item.product,
        quantity: item.quantity,
        unit_price_cents,
    };
    match app.carts.execute(command).await {
        Ok(outcome) => {
            let body = serde_json::json!({ "version": outcome.version() });
            Ok((StatusCode::CREATED, Json(body)))
        }
        Err(error) => Err(if let Some(refused) = error.as_rejection() {
            Failure(StatusCode::UNPROCESSABLE_ENTITY, refused.to_string())
        } else if error.as_conflict().is_some() {
            Failure(StatusCode::CONFLICT, "the cart changed: try again".into())
        } else {
            Failure(StatusCode::INTERNAL_SERVER_ERROR, "the store failed".into())
        }),
    }
}

/// The price service's answer: a CLIENT span, its context sent as `traceparent`.
#[traced(name = "prices.lookup", kind = client, fields(product = product))]
async fn unit_price(app: &App, product: &str) -> Result<u64, reqwest::Error> {
    let mut headers = HeaderMap::new();
    let context = telemetry::current_context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        let mut injector = opentelemetry_http::HeaderInjector(&mut headers);
        propagator.inject_context(&context, &mut injector);
    });
    let url = format!("{}/prices/{product}", app.prices);
    let response = app.http.get(url).headers(headers).send().await?;
    response.error_for_status()?.json::<u64>().await
}

async fn cart(
    State(app): State<Arc<App>>,
    Path(cart_id): Path<String>,
) -> Result<Json<CartView>, StatusCode> {
    let found = query::run("CartById", async {
        let view = app.view.lock().await;
        Ok::<_, std::convert::Infallible>(view.carts.get(&cart_id).cloned())
    })
    .await;
    match found {
        Ok(Some(cart)) => Ok(Json(cart)),
        Ok(None) | Err(_) => Err(StatusCode::NOT_FOUND),
    }
}

async fn price(Path(product): Path<String>) -> Json<u64> {
    // A price list of one rule: a cent per letter.
    Json(product.len() as u64 * 100)
}
