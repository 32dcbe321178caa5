//! The operator's console: a page a service mounts (an axum [`Router`]) or the command
//! line serves (`eventsource console`), showing what [`operate`](crate::operate) reads,
//! refreshing, with the actions an operator takes at 3 a.m.: retry or skip a parked
//! event, requeue or purge a consumer group's dead letters
//! ([`bus::DeadLetterQueue`](crate::bus::DeadLetterQueue), any broker's).
//!
//! - **Views**: projections, relays and split projections with checkpoint, lag (events and
//!   seconds), owners, epochs and parked events (the page polls `api/status`); parked
//!   events; dead letters; a stream browser (`TYPE/ID`, or the log from a position); a
//!   correlation's causation tree as inline SVG, each event linked to its trace.
//! - **Assets** (HTML, CSS, plain JavaScript) are in the binary; nothing is fetched from
//!   elsewhere, and the page's `Content-Security-Policy` allows nothing else.
//! - **Safe by default**: every action is a `POST` that needs an admin token
//!   ([`admin_token`](Console::admin_token); `Authorization: Bearer`, compared in constant
//!   time), refused without one (401) or with a cross-site `Origin`/`Sec-Fetch-Site`
//!   (403); with no token configured, or [`read_only`](Console::read_only), there are no
//!   actions (no buttons; the endpoints answer 403). It answers only to loopback names
//!   and those given ([`allowed_hosts`](Console::allowed_hosts)): a page on another name
//!   that resolves to its address (DNS rebinding) gets 403. Reads can need a token too
//!   ([`read_token`](Console::read_token)). Each action is logged (who: the
//!   client's address and the token's label; what) and traced: one span
//!   `eventsource.console.{action}` (`docs/telemetry.md`, "The operator console's spans"). Bad
//!   input is a 4xx with `{"error": ...}` and changes nothing. Tokens and store URLs are
//!   never shown.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use eventsource_runtime::console::Console;
//! use eventsource_runtime::operate::Stores;
//! use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
//! use eventsource_runtime::store::InMemoryEventStore;
//!
//! // The service's stores (`Stores::postgres(&store)`, `Stores::sqlite(&store)`).
//! let stores = Stores::new(
//!     Arc::new(InMemoryEventStore::new()),
//!     Arc::new(InMemoryCheckpointStore::new()),
//! );
//! let console = Console::new(stores)
//!     .trace_url("http://localhost:16686/trace/{trace_id}")?
//!     .admin_token("on-call", std::env::var("CONSOLE_TOKEN")?)?;
//! // Open it at http://127.0.0.1:8080/ops/ (with the slash).
//! let app = axum::Router::new().nest("/ops", console.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(
//!     listener,
//!     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
//! )
//! .await?;
//! # Ok(()) }
//! ```

mod action;
mod actions;
mod auth;
mod changes;
mod error;
mod reads;
mod svg;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use error::ConsoleError;

use crate::bus::DeadLetterQueue;
use crate::operate::Stores;
use crate::store::EventStore;
use auth::AdminToken;

/// The console's settings, turned into a [`Router`] by [`router`](Self::router).
#[derive(Clone)]
pub struct Console {
    /// What the router's handlers will share.
    settings: Shared,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings = &self.settings;
        let queues: Vec<String> = settings
            .queues
            .iter()
            .map(|queue| queue.location())
            .collect();
        f.debug_struct("Console")
            .field("stores", &settings.stores)
            .field("other_stores", &settings.other_stores.len())
            .field("queues", &queues)
            .field("trace_url", &settings.trace_url)
            .field("tokens", &settings.tokens)
            .field("read_only", &settings.read_only)
            .field("readers", &settings.readers)
            .field("hosts", &settings.hosts)
            .finish()
    }
}

/// What the handlers share: the console's settings.
#[derive(Clone)]
struct Shared {
    stores: Stores,
    /// Other services' event stores, read for causation trees.
    other_stores: Vec<Arc<dyn EventStore>>,
    queues: Vec<Arc<dyn DeadLetterQueue>>,
    /// Taken by each read or change of the dead letters: RabbitMQ's are listed by taking
    /// them and putting them back, and a requeue or purge meanwhile (the page refreshes)
    /// would miss those in hand.
    dead_letter_turn: Arc<tokio::sync::Mutex<()>>,
    trace_url: Option<String>,
    tokens: Vec<AdminToken>,
    read_only: bool,
    /// Tokens that may read; when there is one, every read needs a reader's or an admin's.
    readers: Vec<AdminToken>,
    /// Host names the console answers to besides loopback ones (lower case, no port).
    hosts: Vec<String>,
}

impl Shared {
    /// Whether actions are offered at all.
    fn actions_on(&self) -> bool {
        !self.read_only && !self.tokens.is_empty()
    }
}

type State = Arc<Shared>;

impl Console {
    /// A console reading `stores`: no dead letters, no trace links, no admin token (so no
    /// actions) until given.
    #[must_use]
    pub fn new(stores: Stores) -> Self {
        let settings = Shared {
            stores,
            other_stores: Vec::new(),
            queues: Vec::new(),
            dead_letter_turn: Arc::default(),
            trace_url: None,
            tokens: Vec::new(),
            read_only: false,
            readers: Vec::new(),
            hosts: Vec::new(),
        };
        Self { settings }
    }

    /// Also another service's event store, read for causation trees: a correlation's
    /// tree then follows a request across the services whose stores the console reads (as
    /// `eventsource causation --also-store` does). The status, the stream browser and the
    /// actions stay on the console's own stores.
    #[must_use]
    pub fn also_store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.settings.other_stores.push(store);
        self
    }

    /// Also a consumer group's dead letters (any broker's `DeadLetters`, e.g.
    /// `group.dead_letters()`), named on the page by their
    /// [`location`](DeadLetterQueue::location).
    #[must_use]
    pub fn dead_letters(self, queue: impl DeadLetterQueue + 'static) -> Self {
        self.boxed_dead_letters(Box::new(queue))
    }

    /// Also the dead letters [`operate::DeadLetterAddress::open`](crate::operate::DeadLetterAddress::open) found from a broker URL and
    /// a group name.
    #[must_use]
    pub fn boxed_dead_letters(mut self, queue: Box<dyn DeadLetterQueue>) -> Self {
        self.settings.queues.push(Arc::from(queue));
        self
    }

    /// Links each event to its trace: `template` with `{trace_id}` replaced (Jaeger's
    /// `http://host:16686/trace/{trace_id}`).
    ///
    /// # Errors
    /// [`ConsoleError::Setting`] unless it is an `http://` or `https://` URL with
    /// `{trace_id}`.
    pub fn trace_url(mut self, template: impl Into<String>) -> Result<Self, ConsoleError> {
        let template = template.into();
        let web = template.starts_with("http://") || template.starts_with("https://");
        if !web || !template.contains("{trace_id}") {
            return Err(ConsoleError::Setting(format!(
                "trace URL `{template}`: give an http(s) URL with {{trace_id}}, e.g. \
                 http://localhost:16686/trace/{{trace_id}}"
            )));
        }
        self.settings.trace_url = Some(template);
        Ok(self)
    }

    /// Allows the actions to whoever sends `token` (`Authorization: Bearer TOKEN`),
    /// logged and traced as `label`. Repeatable: one token per person or tool.
    ///
    /// # Errors
    /// [`ConsoleError::Setting`] when the token is shorter than 8 characters or the label
    /// is empty.
    pub fn admin_token(
        mut self,
        label: impl Into<String>,
        token: impl Into<String>,
    ) -> Result<Self, ConsoleError> {
        let token = checked_token("admin", label.into(), token.into())?;
        self.settings.tokens.push(token);
        Ok(self)
    }

    /// A token that may read, its holder known as `label`; once one is given, every read
    /// (`/api/...` but the actions) needs a reader's or an admin's token (`Authorization:
    /// Bearer`; the page asks for it), 401 without. The page and its assets stay open: they
    /// hold no data. Repeatable.
    ///
    /// # Errors
    /// [`ConsoleError::Setting`] when the token is shorter than 8 characters or the label
    /// is empty.
    pub fn read_token(
        mut self,
        label: impl Into<String>,
        token: impl Into<String>,
    ) -> Result<Self, ConsoleError> {
        let token = checked_token("read", label.into(), token.into())?;
        self.settings.readers.push(token);
        Ok(self)
    }

    /// Host names the console also answers to, as a browser sends them in `Host` (its port
    /// aside; `console.internal`): it always answers to `localhost` and loopback addresses,
    /// and refuses others with 403, so that a page on a name that resolves to the console's
    /// address (DNS rebinding) reads nothing. Give the names a reverse proxy or the
    /// operators reach it by.
    #[must_use]
    pub fn allowed_hosts(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        for name in names {
            let name: String = name.into();
            self.settings.hosts.push(name.trim().to_ascii_lowercase());
        }
        self
    }

    /// Without actions: no buttons, and every action's endpoint answers 403.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.settings.read_only = read_only;
        self
    }

    /// The page (`/`), its assets (`/assets/...`), its JSON reads (`/api/...`) and actions
    /// (`POST /api/actions/{action}`), to serve or to [`nest`](Router::nest) in a
    /// service's router.
    pub fn router(self) -> Router {
        let state: State = Arc::new(self.settings);
        Router::new()
            .route("/", get(page))
            .route("/assets/console.js", get(script))
            .route("/assets/console.css", get(style))
            .route("/api/config", get(reads::config))
            .route("/api/status", get(reads::status))
            .route("/api/parked", get(reads::parked))
            .route("/api/dead-letters", get(reads::dead_letters))
            .route("/api/events", get(reads::events))
            .route("/api/causation", get(reads::causation))
            .route("/api/actions/{action}", post(actions::act))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&state),
                admitted,
            ))
            .layer(axum::middleware::map_response(guarded))
            .with_state(state)
    }
}

/// A token checked as [`Console::admin_token`] and [`Console::read_token`] take it.
fn checked_token(kind: &str, label: String, token: String) -> Result<AdminToken, ConsoleError> {
    if token.trim().chars().count() < 8 {
        return Err(ConsoleError::Setting(format!(
            "the {kind} token is too short: give 8 characters or more"
        )));
    }
    if label.trim().is_empty() {
        return Err(ConsoleError::Setting(format!(
            "the {kind} token's label is empty"
        )));
    }
    Ok(AdminToken {
        label,
        token: token.trim().to_owned(),
    })
}

/// Every request: for a name the console answers to; a read (a `GET` under `api/`) with a
/// reader's or an admin's token when reads need one. Actions check their own token.
async fn admitted(
    axum::extract::State(state): axum::extract::State<State>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Err(refused) = auth::host_allowed(request.headers(), &state.hosts) {
        return refused.into_response();
    }
    let read =
        request.method() == axum::http::Method::GET && request.uri().path().starts_with("/api/");
    if read
        && !state.readers.is_empty()
        && let Err(refused) = auth::may_read(&state.readers, &state.tokens, request.headers())
    {
        return refused.into_response();
    }
    next.run(request).await
}

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

async fn not_found() -> ConsoleError {
    ConsoleError::NotFound("no such page in the console".to_owned())
}

/// Every answer: nothing loaded from elsewhere, not framed by another site, not cached,
/// no referrer sent with a trace link.
async fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
