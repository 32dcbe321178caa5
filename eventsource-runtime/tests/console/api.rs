//! The console's router called directly: what it reads, what it refuses, what each action
//! changes, logs and traces.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use eventsource_runtime::async_trait;
use eventsource_runtime::bus::{BusError, DeadLetterEntry, DeadLetterQueue};
use eventsource_runtime::console::Console;
use eventsource_runtime::testing::{Status, attribute, capture};
use serde_json::Value;
use tower::ServiceExt as _;

use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::operate::Stores;
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::store::{
    AppendResult, EventStore, ExpectedVersion, InMemoryEventStore, MarkHolder, ReadBatch,
    StoreError,
};

use crate::{TOKEN, TRACE_ORDERS, TRACE_SHIPPING, invoice_the_shipment, parked_positions, seeded};

const TRACE_URL: &str = "http://jaeger.test:16686/trace/{trace_id}";
const CLIENT: &str = "192.0.2.7:40000";

/// A dead-letter queue in memory: how many letters it holds.
#[derive(Debug, Clone, Default)]
struct CountedQueue(Arc<AtomicU64>);

#[async_trait]
impl DeadLetterQueue for CountedQueue {
    fn system(&self) -> &'static str {
        "rabbitmq"
    }

    fn location(&self) -> String {
        "billing.dead".to_owned()
    }

    async fn group_exists(&self) -> Result<bool, BusError> {
        Ok(true)
    }

    async fn count(&self) -> Result<u64, BusError> {
        Ok(self.0.load(Ordering::SeqCst))
    }

    async fn list(&self, _: usize) -> Result<Vec<DeadLetterEntry>, BusError> {
        Ok(Vec::new())
    }

    async fn requeue(&self) -> Result<u64, BusError> {
        Ok(self.0.swap(0, Ordering::SeqCst))
    }

    async fn purge(&self) -> Result<u64, BusError> {
        Ok(self.0.swap(0, Ordering::SeqCst))
    }
}

/// One answer: its status and JSON body.
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    text: String,
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let mut request = request;
    let client: SocketAddr = CLIENT.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(client));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

async fn get(router: &Router, path: &str) -> Answer {
    let request = Request::get(path).body(Body::empty()).unwrap();
    send(router, request).await
}

/// A POST of `body` to action `action`, with `headers`.
async fn post(router: &Router, action: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::post(format!("/api/actions/{action}"))
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(router, request.body(Body::from(body.to_owned())).unwrap()).await
}

/// The depth of the tree's node whose label starts with `label`.
fn depth_of(tree: &Answer, label: &str) -> Option<u64> {
    tree.body["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["label"].as_str().is_some_and(|l| l.starts_with(label)))
        .and_then(|n| n["depth"].as_u64())
}

const BEARER: &str = "Bearer test-admin-token-7f3a";
const SKIP: &str = r#"{"projection":"orders","position":1}"#;

#[tokio::test]
async fn the_causation_tree_follows_the_request_into_other_services_stores() {
    let seeded = seeded("also-store").await;
    // Billing, another service with a store of its own, invoiced the shipment of `req-1`.
    let billing = InMemoryEventStore::new();
    invoice_the_shipment(&seeded, &billing).await;
    let alone = Console::new(seeded.stores()).router();
    let across = Console::new(seeded.stores())
        .also_store(Arc::new(billing))
        .router();

    let tree = get(&alone, "/api/causation?correlation=req-1").await;
    assert_eq!(tree.body["events"], 3, "{}", tree.text);
    let tree = get(&across, "/api/causation?correlation=req-1").await;
    assert_eq!(tree.status, StatusCode::OK, "{}", tree.text);
    assert_eq!(tree.body["events"], 4, "{}", tree.text);
    // The invoice hangs under the shipment that caused it, in the other store.
    assert_eq!(
        (
            depth_of(&tree, "ShipmentRequested"),
            depth_of(&tree, "InvoiceIssued")
        ),
        (Some(3), Some(4)),
        "{}",
        tree.text
    );
    assert!(
        tree.body["svg"].as_str().unwrap().contains("InvoiceIssued"),
        "{}",
        tree.text
    );
    // The status stays on the console's own store.
    let status = get(&across, "/api/status").await;
    assert_eq!(status.body["head"], 6, "{}", status.text);
}

#[tokio::test]
async fn an_event_id_draws_its_requests_tree_with_the_event_marked() {
    let seeded = seeded("by-event").await;
    let router = Console::new(seeded.stores()).router();
    let paid = (seeded
        .store
        .events_by_correlation("req-1")
        .await
        .unwrap()
        .into_iter())
    .find(|e| e.event_type == "OrderPaid")
    .unwrap();
    let tree = get(
        &router,
        &format!("/api/causation?correlation={}", paid.event_id),
    )
    .await;
    assert_eq!(tree.status, StatusCode::OK, "{}", tree.text);
    assert_eq!(tree.body["correlation"], "req-1", "{}", tree.text);
    assert_eq!(
        tree.body["marked"],
        paid.event_id.to_string(),
        "{}",
        tree.text
    );
    assert_eq!(tree.body["events"], 3, "{}", tree.text);
    let marked: Vec<&Value> = (tree.body["nodes"].as_array().unwrap().iter())
        .filter(|node| node["marked"] == true)
        .collect();
    assert_eq!(marked.len(), 1, "{}", tree.text);
    assert!(
        marked[0]["label"]
            .as_str()
            .unwrap()
            .starts_with("OrderPaid")
    );
    let svg = tree.body["svg"].as_str().unwrap();
    assert_eq!(
        svg.matches("class=\"node event marked\"").count(),
        1,
        "{svg}"
    );

    // A correlation id marks nothing; an id that names nothing is a 404.
    let by_correlation = get(&router, "/api/causation?correlation=req-1").await;
    assert!(
        by_correlation.body["marked"].is_null(),
        "{}",
        by_correlation.text
    );
    let unknown = get(
        &router,
        &format!("/api/causation?correlation={}", uuid::Uuid::now_v7()),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
}

#[tokio::test]
async fn reads_answer_what_the_store_holds_and_show_no_secret() {
    let seeded = seeded("reads").await;
    let router = Console::new(seeded.stores())
        .trace_url(TRACE_URL)
        .unwrap()
        .admin_token("on-call", TOKEN)
        .unwrap()
        .router();

    let status = get(&router, "/api/status").await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    assert_eq!(status.body["head"], 6);
    let orders = status.body["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "orders")
        .unwrap_or_else(|| panic!("{}", status.text));
    assert_eq!(
        (
            &orders["checkpoint"],
            &orders["lag"]["events"],
            &orders["parked"]
        ),
        (&2.into(), &4.into(), &1.into())
    );

    let stream = get(&router, "/api/events?stream=Order/o-1").await;
    assert_eq!(stream.status, StatusCode::OK, "{}", stream.text);
    let events = stream.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0]["trace_url"],
        format!("http://jaeger.test:16686/trace/{TRACE_ORDERS}")
    );
    let log = get(&router, "/api/events?from=5").await;
    let positions: Vec<&Value> = log.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["position"])
        .collect();
    assert_eq!(
        positions,
        [&Value::from(5), &Value::from(6)],
        "{}",
        log.text
    );

    let tree = get(&router, "/api/causation?correlation=req-1").await;
    assert_eq!(tree.status, StatusCode::OK, "{}", tree.text);
    assert_eq!(tree.body["events"], 3);
    let svg = tree.body["svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    for trace in [TRACE_ORDERS, TRACE_SHIPPING] {
        let link = format!("href=\"http://jaeger.test:16686/trace/{trace}\"");
        assert!(svg.contains(&link), "{link} in {svg}");
    }
    // The shipment hangs under the payment, the payment under the placement.
    assert_eq!(
        (
            depth_of(&tree, "OrderPlaced"),
            depth_of(&tree, "OrderPaid"),
            depth_of(&tree, "ShipmentRequested")
        ),
        (Some(1), Some(2), Some(3)),
        "{}",
        tree.text
    );

    let page = get(&router, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("eventsource console"));
    let policy = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    let config = get(&router, "/api/config").await;
    assert_eq!(config.body["actions"], true, "{}", config.text);
    for answer in [&page, &config, &status] {
        assert!(
            !answer.text.contains(TOKEN),
            "the token is shown: {}",
            answer.text
        );
    }
}

/// A store whose high-water mark a session holds (as PostgreSQL's can be), or whose holder
/// cannot be read: the SQLite store's events otherwise.
struct MarkHeld {
    events: SqliteEventStore,
    holder: Option<MarkHolder>,
}

#[async_trait]
impl EventStore for MarkHeld {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.events.append(stream, expected, events).await
    }

    async fn load(&self, stream: &StreamId, from: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        self.events.load(stream, from).await
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<ReadBatch, StoreError> {
        self.events.read_all(from, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.events.stream_version(stream).await
    }

    fn system_name(&self) -> &'static str {
        "postgresql"
    }

    async fn head_position(&self) -> Result<Option<u64>, StoreError> {
        self.events.head_position().await
    }

    async fn mark_holder(&self) -> Result<Option<MarkHolder>, StoreError> {
        match &self.holder {
            Some(holder) => Ok(Some(holder.clone())),
            None => Err(StoreError::Unavailable("no pg_stat_activity here".into())),
        }
    }
}

#[tokio::test]
async fn the_status_names_the_session_holding_the_mark_back() {
    let seeded = seeded("mark-holder").await;
    let plain = get(&Console::new(seeded.stores()).router(), "/api/status").await;
    assert!(plain.body["mark_held_by"].is_null(), "{}", plain.text);

    let mut holder = MarkHolder::new(7, 4711);
    holder.application = Some("stalled-writer".to_owned());
    holder.client = Some("10.99.1.2".to_owned());
    holder.state = Some("idle in transaction".to_owned());
    holder.transaction_since = Some(chrono::Utc::now() - chrono::Duration::seconds(60));
    let store = MarkHeld {
        events: seeded.store.clone(),
        holder: Some(holder),
    };
    let held = Stores::new(Arc::new(store), seeded.checkpoints());
    let status = get(&Console::new(held).router(), "/api/status").await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    let by = &status.body["mark_held_by"];
    assert_eq!(
        (
            &by["position"],
            &by["process_id"],
            &by["application"],
            &by["client"],
            &by["state"],
            &by["warn"]
        ),
        (
            &7.into(),
            &4711.into(),
            &"stalled-writer".into(),
            &"10.99.1.2".into(),
            &"idle in transaction".into(),
            &true.into()
        ),
        "{}",
        status.text
    );
    let held_seconds = by["held_seconds"].as_f64().expect("how long");
    assert!((59.0..600.0).contains(&held_seconds), "{}", status.text);
    assert!(by["transaction_since"].is_string(), "{}", status.text);

    // A holder that cannot be read is left out; the status still answers.
    let unreadable = MarkHeld {
        events: seeded.store.clone(),
        holder: None,
    };
    let stores = Stores::new(Arc::new(unreadable), seeded.checkpoints());
    let status = get(&Console::new(stores).router(), "/api/status").await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    assert!(status.body["mark_held_by"].is_null(), "{}", status.text);
    assert_eq!(status.body["head"], 6, "{}", status.text);

    // The page has the line to show it in.
    let page = get(&Console::new(seeded.stores()).router(), "/").await;
    assert!(page.text.contains("id=\"mark-holder\""), "{}", page.text);
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_its_reason_and_changes_nothing() {
    let seeded = seeded("bad-input").await;
    let checkpoints = seeded.checkpoints();
    let router = Console::new(seeded.stores())
        .admin_token("on-call", TOKEN)
        .unwrap()
        .router();
    let reads = [
        (
            "/api/events?from=99",
            StatusCode::BAD_REQUEST,
            "past the store's head (6)",
        ),
        (
            "/api/events?from=abc",
            StatusCode::BAD_REQUEST,
            "whole number",
        ),
        (
            "/api/events?stream=Order",
            StatusCode::BAD_REQUEST,
            "malformed stream",
        ),
        (
            "/api/events?stream=Order/o-9",
            StatusCode::NOT_FOUND,
            "no stream `Order/o-9`",
        ),
        (
            "/api/events?stream=Order/o-1&from=3",
            StatusCode::BAD_REQUEST,
            "past stream",
        ),
        ("/api/events", StatusCode::BAD_REQUEST, "give `stream`"),
        (
            "/api/events?from=1&limit=0",
            StatusCode::BAD_REQUEST,
            "`limit`",
        ),
        (
            "/api/parked?projection=nope",
            StatusCode::NOT_FOUND,
            "no projection `nope`",
        ),
        (
            "/api/causation?correlation=req-9",
            StatusCode::NOT_FOUND,
            "no event has",
        ),
        (
            "/api/causation?correlation=",
            StatusCode::BAD_REQUEST,
            "malformed correlation",
        ),
        (
            "/api/dead-letters?queue=nope",
            StatusCode::NOT_FOUND,
            "no dead-letter queue",
        ),
        ("/no/such/page", StatusCode::NOT_FOUND, "no such page"),
    ];
    for (path, status, reason) in reads {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text);
        let error = answer.body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(reason),
            "{path}: `{reason}` in {}",
            answer.text
        );
    }
    let auth = [("authorization", BEARER)];
    let actions = [
        (
            "skip-parked",
            r#"{"projection":"nope","position":1}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            "skip-parked",
            r#"{"projection":"orders","position":2}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            "skip-parked",
            r#"{"projection":"orders"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "skip-parked",
            r#"{"projection":"orders","position":-1}"#,
            StatusCode::BAD_REQUEST,
        ),
        ("skip-parked", "not json", StatusCode::BAD_REQUEST),
        (
            "requeue-dead-letters",
            r#"{"queue":"nope"}"#,
            StatusCode::NOT_FOUND,
        ),
        ("reset-everything", "{}", StatusCode::NOT_FOUND),
    ];
    for (action, body, status) in actions {
        let answer = post(&router, action, body, &auth).await;
        assert_eq!(answer.status, status, "{action} {body}: {}", answer.text);
        assert!(answer.body["error"].is_string(), "{}", answer.text);
    }
    assert_eq!(parked_positions(&*checkpoints, "orders").await, [1]);
}

#[tokio::test]
async fn actions_need_the_token_from_this_site_and_each_is_traced() {
    let capture = capture();
    let seeded = seeded("actions").await;
    let checkpoints = seeded.checkpoints();
    let letters = CountedQueue::default();
    let console = Console::new(seeded.stores()).dead_letters(letters.clone());
    let router = console
        .clone()
        .admin_token("on-call", TOKEN)
        .unwrap()
        .router();

    // Refused, each with its reason, and nothing changed.
    let refusals = [
        (vec![], StatusCode::UNAUTHORIZED, "needs the admin token"),
        (
            vec![("authorization", "Bearer not-the-token")],
            StatusCode::UNAUTHORIZED,
            "not this console's",
        ),
        (
            vec![("authorization", BEARER), ("sec-fetch-site", "cross-site")],
            StatusCode::FORBIDDEN,
            "cross-site request refused",
        ),
        (
            vec![("authorization", BEARER), ("origin", "http://evil.test")],
            StatusCode::FORBIDDEN,
            "cross-site request refused",
        ),
    ];
    for (headers, status, reason) in &refusals {
        let answer = post(&router, "skip-parked", SKIP, headers).await;
        assert_eq!(answer.status, *status, "{headers:?}: {}", answer.text);
        assert!(answer.text.contains(reason), "{reason}: {}", answer.text);
    }
    let challenge = post(&router, "skip-parked", SKIP, &[]).await;
    assert!(challenge.headers.contains_key(header::WWW_AUTHENTICATE));
    let read_only = console
        .clone()
        .admin_token("on-call", TOKEN)
        .unwrap()
        .read_only(true)
        .router();
    let no_token = console.clone().router();
    for (router, reason) in [(&read_only, "read-only"), (&no_token, "no admin token")] {
        let answer = post(router, "skip-parked", SKIP, &[("authorization", BEARER)]).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
        assert!(answer.text.contains(reason), "{}", answer.text);
        let config = get(router, "/api/config").await;
        assert_eq!(config.body["actions"], false, "no buttons: {}", config.text);
    }
    assert_eq!(parked_positions(&*checkpoints, "orders").await, [1]);
    letters.0.store(3, Ordering::SeqCst);
    let refused = post(
        &read_only,
        "requeue-dead-letters",
        r#"{"queue":"billing.dead"}"#,
        &[],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(letters.0.load(Ordering::SeqCst), 3, "nothing moved");

    // Allowed: from this site, with the token.
    let same_site = [
        ("authorization", BEARER),
        ("origin", "http://127.0.0.1:8080"),
        ("sec-fetch-site", "same-origin"),
    ];
    let retried = post(&router, "retry-parked", SKIP, &same_site).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    assert_eq!(checkpoints.retry_requests("orders").await.unwrap(), [1]);
    let listed = get(&router, "/api/parked?projection=orders").await;
    assert_eq!(
        listed.body["parked"][0]["retry_requested"], true,
        "{}",
        listed.text
    );
    let skipped = post(&router, "skip-parked", SKIP, &same_site).await;
    assert_eq!(skipped.status, StatusCode::OK, "{}", skipped.text);
    assert_eq!(skipped.body["affected"], 1);
    assert!(parked_positions(&*checkpoints, "orders").await.is_empty());
    let requeued = post(
        &router,
        "requeue-dead-letters",
        r#"{"queue":"billing.dead"}"#,
        &same_site,
    )
    .await;
    assert_eq!(requeued.status, StatusCode::OK, "{}", requeued.text);
    assert_eq!(
        (
            requeued.body["affected"].as_u64(),
            letters.0.load(Ordering::SeqCst)
        ),
        (Some(3), 0)
    );

    // One span per action, as the contract's table says.
    let spans = capture.spans();
    let skips = spans.all("eventsource.console.skip_parked");
    // The refusals, the challenge, read-only, no token, and the one allowed.
    assert_eq!(skips.len(), refusals.len() + 4, "{}", spans.tree());
    let done = skips
        .iter()
        .find(|span| matches!(span.status, Status::Unset | Status::Ok))
        .expect("the allowed skip");
    spans.assert_attribute(done, "eventsource.console.actor", "on-call");
    spans.assert_attribute(done, "client.address", "192.0.2.7");
    spans.assert_attribute(done, "eventsource.projection.name", "orders");
    spans.assert_attribute(done, "eventsource.event.position", 1);
    spans.assert_attribute(done, "eventsource.console.affected", 1);
    let retry = spans.get("eventsource.console.retry_parked");
    spans.assert_attribute(retry, "eventsource.console.actor", "on-call");
    spans.assert_attribute(retry, "eventsource.event.position", 1);
    let unauthorized = skips
        .iter()
        .find(|span| {
            attribute(span, "error.type")
                .is_some_and(|t| t.as_str() == "ConsoleError::Unauthorized")
        })
        .expect("a refused skip");
    assert!(attribute(unauthorized, "eventsource.console.actor").is_none());
    let requeue = spans
        .all("eventsource.console.requeue_dead_letters")
        .into_iter()
        .find(|span| attribute(span, "eventsource.console.affected").is_some())
        .expect("the allowed requeue");
    spans.assert_attribute(requeue, "messaging.system", "rabbitmq");
    spans.assert_attribute(requeue, "messaging.destination.name", "billing.dead");
    spans.assert_attribute(requeue, "eventsource.console.affected", 3);

    // Every key on these spans is in the contract's table, and the table's every key seen.
    let documented = contract_rows();
    let mut seen = std::collections::BTreeSet::new();
    for span in spans.matching(|span| span.name.starts_with("eventsource.console.")) {
        let row = documented
            .iter()
            .find(|(names, _)| names.iter().any(|name| *name == span.name))
            .unwrap_or_else(|| panic!("span `{}` is not in docs/telemetry.md", span.name));
        for pair in &span.attributes {
            let key = pair.key.as_str();
            let shared =
                key.starts_with("code.") || key == "error.type" || key.starts_with("exception.");
            assert!(
                shared || row.1.iter().any(|documented| documented == key),
                "`{key}` of `{}` is not documented",
                span.name
            );
            seen.insert(key.to_owned());
        }
    }
    for (_, keys) in &documented {
        for key in keys {
            assert!(seen.contains(key), "documented `{key}` never seen");
        }
    }
}

#[tokio::test]
async fn a_change_to_a_projection_needs_its_name_again_and_is_refused_while_held() {
    let capture = capture();
    let seeded = seeded("changes").await;
    let checkpoints = seeded.checkpoints();
    let router = Console::new(seeded.stores())
        .admin_token("on-call", TOKEN)
        .unwrap()
        .router();
    let same_site = [("authorization", BEARER), ("sec-fetch-site", "same-origin")];

    // Without the name typed again, or with another, or without the value: 400, unchanged.
    for body in [
        r#"{"projection":"orders","position":0}"#,
        r#"{"projection":"orders","position":0,"confirm":"order"}"#,
        r#"{"projection":"orders","confirm":"orders"}"#,
    ] {
        let refused = post(&router, "reset-projection", body, &same_site).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            refused.text
        );
        assert!(refused.text.contains("nothing changed"), "{}", refused.text);
    }
    assert_eq!(checkpoints.load("orders").await.unwrap(), 2, "unchanged");

    // Held by a runner: 409, as the command line's exit 4, and unchanged.
    let lease = checkpoints
        .try_acquire("orders")
        .await
        .unwrap()
        .expect("free");
    let held = post(
        &router,
        "retire-projection",
        r#"{"projection":"orders","confirm":"orders"}"#,
        &same_site,
    )
    .await;
    assert_eq!(held.status, StatusCode::CONFLICT, "{}", held.text);
    assert!(held.text.contains("nothing changed"), "{}", held.text);
    lease.release().await;
    assert_eq!(checkpoints.load("orders").await.unwrap(), 2, "unchanged");

    // Confirmed: done, and said.
    let reset = post(
        &router,
        "reset-projection",
        r#"{"projection":"orders","position":1,"confirm":"orders"}"#,
        &same_site,
    )
    .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.text);
    assert_eq!(reset.body["affected"], 1, "{}", reset.text);
    assert_eq!(checkpoints.load("orders").await.unwrap(), 1);
    let rebuilt = post(
        &router,
        "rebuild-projection",
        r#"{"projection":"orders","as":"orders-v2","confirm":"orders"}"#,
        &same_site,
    )
    .await;
    assert_eq!(rebuilt.status, StatusCode::OK, "{}", rebuilt.text);
    assert!(
        rebuilt.text.contains("rebuilt as orders-v2"),
        "{}",
        rebuilt.text
    );
    let retired = post(
        &router,
        "retire-projection",
        r#"{"projection":"orders","confirm":"orders"}"#,
        &same_site,
    )
    .await;
    assert_eq!(retired.status, StatusCode::OK, "{}", retired.text);
    let names: Vec<String> = (checkpoints.checkpoints().await.unwrap().into_iter())
        .map(|c| c.projection)
        .collect();
    assert!(!names.contains(&"orders".to_owned()), "{names:?}");
    assert!(names.contains(&"orders-v2".to_owned()), "{names:?}");

    let spans = capture.spans();
    let resets = spans.all("eventsource.console.reset_projection");
    let done = resets
        .iter()
        .find(|span| matches!(span.status, Status::Unset | Status::Ok))
        .expect("the confirmed reset");
    spans.assert_attribute(done, "eventsource.console.actor", "on-call");
    spans.assert_attribute(done, "eventsource.projection.name", "orders");
    spans.assert_attribute(done, "eventsource.event.position", 1);
    spans.assert_attribute(done, "eventsource.console.affected", 1);
    let conflict = spans
        .all("eventsource.console.retire_projection")
        .into_iter()
        .find(|span| attribute(span, "error.type").is_some())
        .expect("the refused retire");
    spans.assert_attribute(conflict, "error.type", "ConsoleError::Conflict");
    let documented = contract_rows();
    for name in ["reset", "split", "rebuild", "retire"] {
        let span = format!("eventsource.console.{name}_projection");
        assert!(
            documented.iter().any(|(names, _)| names.contains(&span)),
            "`{span}` is not in docs/telemetry.md"
        );
    }
}

/// The rows of docs/telemetry.md's "The operator console's spans" table: the span names of each
/// row (`eventsource.console.{a,b}` spelled out) and the attribute keys it lists.
fn contract_rows() -> Vec<(Vec<String>, Vec<String>)> {
    let contract = include_str!("../../../docs/telemetry.md");
    let section = contract
        .split("\n## ")
        .find(|s| s.starts_with("The operator console's spans"))
        .expect("docs/telemetry.md has a `## The operator console's spans` section");
    let code_spans = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    section
        .lines()
        .filter(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
            let names = code_spans(cells[1]);
            // An attribute key: dotted lower-case words (`eventsource.console.actor`).
            let is_key = |span: &String| {
                span.contains('.')
                    && span
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
            };
            let keys = code_spans(cells[4]).into_iter().filter(is_key).collect();
            (names, keys)
        })
        .collect()
}

/// A GET of `path` sent for `host`, with `Authorization: Bearer token` when given.
async fn get_as(router: &Router, path: &str, host: &str, token: Option<&str>) -> Answer {
    let mut request = Request::get(path).header(header::HOST, host);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    send(router, request.body(Body::empty()).unwrap()).await
}

/// The console answers to loopback names and those it was given, and nothing else: a page
/// on another name that resolves to its address (DNS rebinding) read every event's payload
/// before (200 for `Host: evil.example:8080`). With a read token, every read needs a
/// reader's or an admin's token; the page itself stays open, and a read token acts on
/// nothing.
#[tokio::test]
async fn the_console_answers_only_to_its_names_and_reads_need_a_token_once_given_one() {
    let seeded = seeded("hosts").await;
    let open = Console::new(seeded.stores()).router();
    for path in ["/", "/api/status", "/api/events?stream=Order/o-1"] {
        let refused = get_as(&open, path, "evil.example:8080", None).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            refused.text
        );
        assert!(
            refused.body["error"]
                .as_str()
                .is_some_and(|e| e.contains("does not answer to `evil.example:8080`")),
            "{}",
            refused.text
        );
        assert!(!refused.text.contains("OrderPlaced"), "{}", refused.text);
    }
    for host in [
        "localhost:8080",
        "127.0.0.1:9",
        "[::1]:8080",
        "LOCALHOST",
        "127.0.0.2",
    ] {
        let answered = get_as(&open, "/api/status", host, None).await;
        assert_eq!(answered.status, StatusCode::OK, "{host}: {}", answered.text);
    }
    let named = Console::new(seeded.stores())
        .allowed_hosts(["Console.Internal"])
        .router();
    let answered = get_as(&named, "/api/status", "console.internal:443", None).await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.text);
    let refused = get_as(&named, "/api/status", "console.internal.evil.example", None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);

    let guarded = Console::new(seeded.stores())
        .read_token("dashboards", "reader-token-5c1e")
        .unwrap()
        .admin_token("on-call", TOKEN)
        .unwrap()
        .router();
    let host = "127.0.0.1:8080";
    let page = get_as(&guarded, "/", host, None).await;
    assert_eq!(page.status, StatusCode::OK);
    for path in ["/api/config", "/api/status", "/api/events?stream=Order/o-1"] {
        let refused = get_as(&guarded, path, host, None).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{path}: {}",
            refused.text
        );
        assert!(!refused.text.contains("OrderPlaced"), "{}", refused.text);
        let wrong = get_as(&guarded, path, host, Some("not-the-token")).await;
        assert_eq!(
            wrong.status,
            StatusCode::UNAUTHORIZED,
            "{path}: {}",
            wrong.text
        );
        for token in ["reader-token-5c1e", TOKEN] {
            let read = get_as(&guarded, path, host, Some(token)).await;
            assert_eq!(read.status, StatusCode::OK, "{path}: {}", read.text);
        }
    }
    let acted = post(
        &guarded,
        "skip-parked",
        SKIP,
        &[("authorization", "Bearer reader-token-5c1e")],
    )
    .await;
    assert_eq!(acted.status, StatusCode::UNAUTHORIZED, "{}", acted.text);
    assert!(
        Console::new(seeded.stores())
            .read_token("short", "1234567")
            .is_err()
    );
}
