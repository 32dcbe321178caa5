//! Publishing: a broker that does not answer is a typed error.

use super::*;

#[tokio::test]
async fn a_broker_that_does_not_answer_is_a_typed_error() {
    let bus = KafkaBus::new("kafka://127.0.0.1:1")
        .unwrap()
        .with_delivery_timeout(Duration::from_secs(2));
    let event = order_placed("o-1");
    let started = std::time::Instant::now();
    let error = bus.publish(std::slice::from_ref(&event)).await.unwrap_err();
    assert!(
        matches!(
            error,
            BusError::Unavailable(_) | BusError::Unconfirmed { .. }
        ),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "bounded");
    // Nothing listens there: refused (at once, `tests/brokers/messaging_conventions.rs`), not timed
    // out.
    let said = bus.declare(["Order"]).await.unwrap_err();
    assert_eq!(
        said.unavailable_reason(),
        Some(eventsource_runtime::bus::UnavailableReason::ConnectionRefused),
        "{said:?}"
    );
    assert!(
        std::error::Error::source(&said)
            .is_some_and(|source| source.to_string().contains("127.0.0.1:1"))
    );
    let invalid = KafkaBus::new("kafka://user:s3cret@host:9092").unwrap_err();
    assert_eq!(
        invalid.unavailable_reason(),
        Some(eventsource_runtime::bus::UnavailableReason::InvalidUrl)
    );
    assert!(!format!("{invalid:?}").contains("s3cret"));
}
