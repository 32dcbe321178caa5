//! Publishing: typed rejections and unavailability, messages in flight together, passwords
//! never shown.

use super::*;

// ---- publishing errors ----------------------------------------------------------------------

#[tokio::test]
async fn a_subject_no_stream_takes_is_a_typed_rejection() {
    let Some(server) = Server::open("no_stream") else {
        return;
    };
    let capture = capture();
    // Nothing declared: no stream takes the subject, JetStream has no responder.
    let bus = server.bus();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    let outcome = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let Some(BusError::Rejected { message_id, reason }) = outcome.publish_error() else {
        panic!("expected a rejection, got {:?}", outcome.publish);
    };
    assert_eq!(*message_id, outcome.events[0].event_id);
    assert!(reason.contains("no stream"), "{reason}");
    assert!(matches!(
        capture.spans().get(PUBLISH).status,
        Status::Error { .. }
    ));
    server.clean().await;
}

#[tokio::test]
async fn messages_of_one_publish_are_in_flight_together_and_each_span_ends_with_its_outcome() {
    let Some(server) = Server::open("in_flight") else {
        return;
    };
    let capture = capture();
    let bus = server.bus();
    // A stream that only takes placed orders: the shipment in the middle is refused.
    let js = server.jetstream().await;
    js.create_stream(jetstream::stream::Config {
        name: server.stream.clone(),
        subjects: vec![server.subject("OrderPlaced")],
        ..Default::default()
    })
    .await
    .unwrap();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let mut events = orders
        .execute(sample_order("o-1", "ada"))
        .await
        .unwrap()
        .events;
    let shipment = ShipOrder {
        order_id: "o-1".into(),
        carrier: "ups".into(),
    };
    events.extend(orders.execute(shipment).await.unwrap().events);
    events.extend(
        orders
            .execute(sample_order("o-2", "bob"))
            .await
            .unwrap()
            .events,
    );
    assert_eq!(events.len(), 3);

    let failure = bus.publish_stored(&events).await.unwrap_err();
    let BusError::Rejected { message_id, .. } = failure.error else {
        panic!("the shipment has no stream: {:?}", failure.error);
    };
    assert_eq!(
        message_id, events[1].event_id,
        "the failure names the shipment"
    );
    assert_eq!(
        failure.published.message_ids,
        [events[0].event_id],
        "only the messages acknowledged before the failure"
    );
    // The message after it was already sent: both placed orders are stored.
    let mut stream = js.get_stream(&server.stream).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);

    let spans = capture.spans();
    let publishes = named(&spans, PUBLISH);
    assert_eq!(publishes.len(), 3);
    for (event, expected_error) in events.iter().zip([false, true, false]) {
        let id = string(&event.event_id.to_string());
        let span = publishes
            .iter()
            .find(|span| attribute(span, attr::MESSAGING_MESSAGE_ID) == Some(&id))
            .expect("a publish span per message");
        let is_error = matches!(span.status, Status::Error { .. });
        assert_eq!(is_error, expected_error, "{}", event.event_type);
    }
    server.clean().await;
}

#[tokio::test]
async fn a_large_publish_keeps_a_bounded_window_in_flight_and_stores_everything() {
    let Some(server) = Server::open("large") else {
        return;
    };
    let bus = server.bus().enable_tracing(false);
    bus.declare().await.unwrap();
    let events: Vec<EventEnvelope> = (0..1500).map(|_| order_placed("o-1")).collect();
    let report = bus.publish(&events).await.unwrap();
    assert_eq!(report.message_ids.len(), 1500);
    assert_eq!(report.message_ids[1499], events[1499].event_id);
    let js = server.jetstream().await;
    let mut stream = js.get_stream(&server.stream).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1500);
    server.clean().await;
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_unavailable() {
    if server_url("down").is_none() {
        return;
    }
    let port = free_port();
    let bus = NatsBus::new(&format!("nats://user:secret@127.0.0.1:{port}")).unwrap();
    assert!(!format!("{bus:?}").contains("secret"), "{bus:?}");
    let events = CommandService::<Order>::new(InMemoryEventStore::new())
        .execute(sample_order("o-1", "ada"))
        .await
        .unwrap()
        .events;
    let published = tokio::time::timeout(Duration::from_secs(10), bus.publish(&events))
        .await
        .expect("a bounded wait");
    let Err(refused) = published else {
        panic!("expected unavailable, got {published:?}");
    };
    assert!(matches!(refused, BusError::Unavailable(_)), "{refused:?}");
    assert_eq!(
        refused.unavailable_reason(),
        Some(UnavailableReason::ConnectionRefused),
        "{}",
        chain(&refused)
    );
    let said = chain(&refused);
    assert!(
        said.contains(&format!("connection refused at 127.0.0.1:{port}")),
        "{said}"
    );
    assert!(!said.contains("secret"), "{said}");
    // A group's declare goes the same way.
    let declared = bus.consumer_group("mailer").declare().await.unwrap_err();
    assert_eq!(
        declared.unavailable_reason(),
        Some(UnavailableReason::ConnectionRefused)
    );
    let invalid = NatsBus::new("nats://no host:4222").unwrap_err();
    assert!(matches!(invalid, BusError::Unavailable(_)));
    assert_eq!(
        invalid.unavailable_reason(),
        Some(UnavailableReason::InvalidUrl)
    );
}

/// A TCP port nothing listens on (bound, then let go).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_planted_password_is_never_shown() {
    if server_url("planted_password").is_none() {
        return;
    }
    let secret = "s3cret-planted-4711";
    let bus = NatsBus::new(&format!("nats://user:{secret}@127.0.0.1:1")).unwrap();
    let events = CommandService::<Order>::new(InMemoryEventStore::new())
        .execute(sample_order("o-1", "ada"))
        .await
        .unwrap()
        .events;
    let published = tokio::time::timeout(Duration::from_secs(10), bus.publish(&events))
        .await
        .expect("a bounded wait");
    let refused = published.unwrap_err();
    assert_eq!(
        refused.unavailable_reason(),
        Some(UnavailableReason::ConnectionRefused),
        "{}",
        chain(&refused)
    );
    let declared = bus.declare().await.unwrap_err();
    let group = bus.consumer_group("mailer");
    let grouped = group.declare().await.unwrap_err();
    let dead = group.dead_letters().count().await.unwrap_err();
    for error in [&refused, &declared, &grouped, &dead] {
        for shown in [chain(error), format!("{error:?}")] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
    for shown in [format!("{bus:?}"), format!("{group:?}")] {
        assert!(!shown.contains(secret), "{shown}");
    }
    for bad in [
        format!("nats://user:{secret}@127.0.0.1:notaport"),
        format!("http://user:{secret}@127.0.0.1:4222"),
    ] {
        let invalid = NatsBus::new(&bad).unwrap_err();
        assert_eq!(
            invalid.unavailable_reason(),
            Some(UnavailableReason::InvalidUrl)
        );
        for shown in [chain(&invalid), format!("{invalid:?}")] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}

/// A `nats-server` of this test's own, with a user and password, killed when dropped.
struct AuthServer {
    child: std::process::Child,
    port: u16,
    store: std::path::PathBuf,
}

impl AuthServer {
    /// Started from `nats-server` on the `PATH` (or `/usr/sbin`), `None` when there is none.
    fn start(user: &str, password: &str) -> Option<Self> {
        let binary = [
            "nats-server",
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
        ]
        .into_iter()
        .find(|binary| {
            std::process::Command::new(binary)
                .arg("--version")
                .output()
                .is_ok_and(|out| out.status.success())
        })?;
        let port = free_port();
        let store = std::env::temp_dir().join(format!("es-nats-auth-{port}"));
        let child = std::process::Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .args(["--user", user, "--pass", password])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let server = Self { child, port, store };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

#[tokio::test]
async fn refused_credentials_are_told_apart_and_the_password_is_never_shown() {
    if server_url("credentials").is_none() {
        return;
    }
    let secret = "s3cret-planted-4711";
    // The shared server has no users: a server of the test's own has one.
    let Some(server) = AuthServer::start("es", "p@ss/word") else {
        let line = "credentials: skipped: no nats-server binary to start a server with a user\n";
        let _ = std::io::stderr().write_all(line.as_bytes());
        return;
    };
    let bus = NatsBus::new(&format!("nats://es:{secret}@127.0.0.1:{}", server.port)).unwrap();
    let error = tokio::time::timeout(Duration::from_secs(10), bus.declare())
        .await
        .expect("a bounded wait")
        .unwrap_err();
    assert_eq!(
        error.unavailable_reason(),
        Some(UnavailableReason::AuthenticationFailed),
        "{}",
        chain(&error)
    );
    let said = chain(&error);
    assert!(
        said.contains(&format!(
            "authentication refused at 127.0.0.1:{}",
            server.port
        )),
        "{said}"
    );
    for shown in [said, format!("{error:?}"), format!("{bus:?}")] {
        assert!(!shown.contains(secret), "{shown}");
    }
    // No credentials at all: refused the same way.
    let anonymous = NatsBus::new(&format!("nats://127.0.0.1:{}", server.port)).unwrap();
    assert_eq!(
        anonymous.declare().await.unwrap_err().unavailable_reason(),
        Some(UnavailableReason::AuthenticationFailed)
    );
    // The right ones (URL-encoded in the URL) are sent and taken: the streams are declared
    // and a message published.
    let right = NatsBus::new(&format!(
        "nats://es:p%40ss%2Fword@127.0.0.1:{}",
        server.port
    ))
    .unwrap()
    .with_stream("ES_TEST_AUTH")
    .with_subject_prefix("es-test-auth");
    right
        .declare()
        .await
        .expect("declared with the right password");
    let events = CommandService::<Order>::new(InMemoryEventStore::new())
        .execute(sample_order("o-1", "ada"))
        .await
        .unwrap()
        .events;
    let report = right.publish(&events).await.expect("published");
    assert_eq!(report.message_ids.len(), events.len());
}
