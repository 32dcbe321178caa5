//! The traces of two reference documents (the project's seeds), written the way a user of
//! this workspace writes them: with `#[command_handler]`, `#[projection]` and
//! `#[traced]` instead of hand-made spans. The documents are not in this repository (they
//! are kept beside it, in the project's `../shared/seeds/`, and neither CI nor these tests
//! read them): seed 001 is an article on tracing a CQRS system's write and read paths
//! separately with OpenTelemetry, seed 002 a Python event-sourcing library's tutorial on
//! OpenTelemetry. What each traces is below, and the tests hold the code to it:
//!
//! - seed 001: the write path (`command.{CommandType}`, `cqrs.side = write`, the event
//!   count and types, one `domain_event_produced` per event, errors), the projection
//!   (`cqrs.side = projection`, linked) and the read path (`query.{QueryType}`,
//!   `cqrs.side = read`, the result count);
//! - seed 002: `TaskService` (a span per service call with its own attributes, the
//!   repository's and store's spans as its children, a per-instance switch) and
//!   `NotificationService` (static attributes).
//!
//! Every test captures the spans of its own thread (`#[tokio::test]` is current-thread).

mod seed_001;
mod seed_002;
mod set_attribute;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{CapturedSpans, attribute, capture, events, kind};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, KeyValue, Value};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

fn strings(values: &[&str]) -> Value {
    Value::Array(Array::String(
        values.iter().map(|v| (*v).to_owned().into()).collect(),
    ))
}

/// The attribute keys of the one span named `name`, sorted.
fn keys(spans: &CapturedSpans, name: &str) -> Vec<String> {
    let mut keys: Vec<String> = spans
        .get(name)
        .attributes
        .iter()
        .map(|kv| kv.key.to_string())
        .collect();
    keys.sort_unstable();
    keys
}

/// The value of `key` among a span event's attributes.
fn event_value<'a>(event: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    event
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// The names of the direct children of the one span named `name`, in the order they
/// started.
fn child_names<'a>(spans: &'a CapturedSpans, name: &str) -> Vec<&'a str> {
    let mut children = spans.children(spans.get(name));
    children.sort_by_key(|s| s.start_time);
    children.iter().map(|s| s.name.as_ref()).collect()
}
