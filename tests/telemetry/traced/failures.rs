//! Errors and panics: the span ends with an error and one exception event, a panic still
//! propagates, and an error's sources are said once each.

use super::*;

#[tokio::test]
async fn an_err_ends_the_span_with_error_and_one_exception_event() {
    let capture = capture();
    assert!(validate(-1).is_err());
    assert!(validate(1).is_ok());
    let service = OrderService { tracing: true };
    assert!(
        service
            .place_order(OrderId(9), "c-2", vec![])
            .await
            .is_err()
    );
    assert!(EmailNotifier.notify_later("").await.is_err());
    assert_eq!(aliased(true), Err(OrderError::Empty("alias".into())));
    let spans = capture.spans();

    let failed = spans
        .all("validate")
        .into_iter()
        .find(|s| s.status != Status::Unset)
        .expect("a failed validate span");
    assert_eq!(failed.status, Status::error("order #-1 has no items"));
    let exceptions = events(failed, "exception");
    assert_eq!(exceptions.len(), 1);
    let has = |attrs: &[KeyValue], key: &str, value: &str| {
        attrs
            .iter()
            .any(|kv| kv.key.as_str() == key && kv.value.as_str() == value)
    };
    assert!(has(
        exceptions[0],
        "exception.message",
        "order #-1 has no items"
    ));
    assert!(has(
        exceptions[0],
        "exception.type",
        std::any::type_name::<OrderError>()
    ));
    assert_eq!(
        spans
            .all("validate")
            .iter()
            .filter(|s| s.status == Status::Unset)
            .count(),
        1
    );

    let place = spans.get("OrderService.place_order");
    assert_eq!(place.status, Status::error("order ord-9 has no items"));
    assert_eq!(events(place, "exception").len(), 1);

    let later = spans.get("EmailNotifier.notify_later");
    assert_eq!(kind(later), SpanKind::Producer);
    assert_eq!(later.status, Status::error("order recipient has no items"));
    assert_eq!(events(later, "exception").len(), 1);

    let alias = spans.get("aliased");
    assert_eq!(alias.status, Status::error("order alias has no items"));
    assert_eq!(events(alias, "exception").len(), 1);
}

#[test]
fn a_panic_is_recorded_and_still_propagates() {
    let capture = capture();
    let caught = std::panic::catch_unwind(|| explode("now"));
    assert!(caught.is_err());
    let spans = capture.spans();
    let span = spans.get("explode");
    assert_eq!(span.status, Status::error("boom: now"));
    let exceptions = events(span, "exception");
    assert_eq!(exceptions.len(), 1);
    assert!(
        exceptions[0]
            .iter()
            .any(|kv| kv.key.as_str() == "exception.type" && kv.value.as_str() == "panic")
    );
}

#[tokio::test]
async fn an_async_panic_is_recorded_and_still_propagates() {
    let capture = capture();
    let joined = tokio::spawn(explode_later()).await;
    assert!(joined.unwrap_err().is_panic());
    let spans = capture.spans();
    let span = spans.get("explode_later");
    assert_eq!(span.status, Status::error("async boom"));
    assert_eq!(events(span, "exception").len(), 1);
}

// ---- an error's sources on its span, each said once ---------------------------------------

#[derive(Debug, thiserror::Error)]
#[error("disk full")]
pub struct DiskFull;

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Names its source in its text and exposes it.
    #[error("cannot save: {0}")]
    Named(#[source] DiskFull),
    /// Exposes its source only.
    #[error("cannot save")]
    Exposed(#[source] DiskFull),
}

/// `Display` but not `std::error::Error`.
#[derive(Debug)]
pub struct PlainError(&'static str);

impl Display for PlainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plain: {}", self.0)
    }
}

#[traced(err)]
fn save(named: bool) -> Result<(), SaveError> {
    Err(if named {
        SaveError::Named(DiskFull)
    } else {
        SaveError::Exposed(DiskFull)
    })
}

#[traced(err)]
fn plain() -> Result<(), PlainError> {
    Err(PlainError("no source"))
}

#[traced(err)]
fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err(Box::new(SaveError::Exposed(DiskFull)))
}

/// The span's status description and its one `exception` event's message.
fn error_texts(span: &opentelemetry_sdk::trace::SpanData) -> (String, String) {
    let Status::Error { description } = &span.status else {
        panic!("{} did not end in error: {:?}", span.name, span.status);
    };
    let exceptions = events(span, "exception");
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

#[test]
fn an_err_records_its_sources_once_each() {
    let capture = capture();
    assert!(save(true).is_err());
    assert!(save(false).is_err());
    assert!(plain().is_err());
    assert!(boxed().is_err());
    let spans = capture.spans();

    let saves: Vec<_> = spans.all("save").into_iter().map(error_texts).collect();
    let named = "cannot save: disk full";
    let exposed = "cannot save: disk full";
    assert_eq!(
        saves,
        [
            (named.into(), named.into()),
            (exposed.into(), exposed.into())
        ]
    );

    let plain = "plain: no source";
    assert_eq!(
        error_texts(spans.get("plain")),
        (plain.into(), plain.into())
    );

    assert_eq!(
        error_texts(spans.get("boxed")),
        (exposed.into(), exposed.into())
    );
}
