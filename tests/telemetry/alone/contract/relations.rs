//! The relations the contract describes in prose, checked on a span.

use super::*;

pub(super) fn string_attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

fn int_attribute(span: &SpanData, key: &str) -> Option<i64> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .and_then(|kv| match kv.value {
            opentelemetry::Value::I64(v) => Some(v),
            _ => None,
        })
}

/// Checks `span` against the relation the contract describes in prose. The phrases are
/// the contract's own; a relation this function does not know fails the test, so a new
/// row or a reworded one is taught here on purpose.
pub(super) fn check_relation(
    relation: &str,
    span: &SpanData,
    all: &[SpanData],
) -> Result<(), String> {
    let parent = all
        .iter()
        .find(|p| p.span_context.span_id() == span.parent_span_id);
    let parent_name = parent.map(|p| p.name.as_ref());
    let is_root = span.parent_span_id == opentelemetry::trace::SpanId::INVALID;
    let link_targets: Vec<&str> = span
        .links
        .links
        .iter()
        .map(|link| {
            all.iter()
                .find(|s| s.span_context.span_id() == link.span_context.span_id())
                .map_or("<not captured>", |s| s.name.as_ref())
        })
        .collect();
    let child_of = |expected: &dyn Fn(&str) -> bool, what: &str| match parent_name {
        Some(name) if expected(name) => Ok(()),
        _ => Err(format!(
            "a child of {what}, but its parent is {parent_name:?}"
        )),
    };
    let linked_roots = |per_link: &str| {
        if !is_root {
            return Err(format!("a new root, but its parent is {parent_name:?}"));
        }
        if link_targets.is_empty() || link_targets.iter().any(|t| *t != per_link) {
            return Err(format!(
                "linked to {per_link} spans, but links to {link_targets:?}"
            ));
        }
        Ok(())
    };
    let append = "eventsource.event_store.append";
    if relation.starts_with("child of the current span") {
        // The current span is whatever the caller had: a captured span or none.
        return match (is_root, parent) {
            (false, None) => Err("its parent was not captured".into()),
            _ => Ok(()),
        };
    }
    match relation {
        r if r.starts_with("child of the command") => {
            child_of(&|p| p.starts_with("command."), "a command span")
        }
        "child of the load span" => child_of(
            &|p| p == "eventsource.repository.load",
            "eventsource.repository.load",
        ),
        "child of the save span" => child_of(
            &|p| p == "eventsource.repository.save",
            "eventsource.repository.save",
        ),
        "child of consume" => child_of(
            &|p| p == "eventsource.event_bus.consume",
            "eventsource.event_bus.consume",
        ),
        r if r.starts_with("live delivery: child of the producer's context; batch, redelivery, replay: new root with a link per source message") =>
        {
            match string_attribute(span, "eventsource.delivery.mode").as_deref() {
                Some("live") => child_of(
                    &|p| p == "eventsource.event_bus.publish",
                    "the publish span",
                ),
                Some("batch" | "redelivery" | "replay") => {
                    let messages = int_attribute(span, "messaging.batch.message_count")
                        .map_or(1, |n| usize::try_from(n).unwrap());
                    if !is_root || span.links.links.len() != messages {
                        return Err(format!(
                            "a new root with {messages} link(s), but parent {parent_name:?}, links {link_targets:?}"
                        ));
                    }
                    Ok(())
                }
                other => Err(format!("an unknown delivery mode {other:?}")),
            }
        }
        "new root **linked** to the span that appended the event" => {
            linked_roots(append)?;
            if link_targets.len() == 1 {
                Ok(())
            } else {
                Err(format!("one link, but {link_targets:?}"))
            }
        }
        "new root with a **link** to the span that appended each event" => {
            linked_roots(append)?;
            let events = int_attribute(span, "eventsource.event.count").unwrap_or(0);
            if usize::try_from(events).unwrap() == link_targets.len() {
                Ok(())
            } else {
                Err(format!("{events} links, but {link_targets:?}"))
            }
        }
        "new root" => {
            if is_root {
                Ok(())
            } else {
                Err(format!("a new root, but its parent is {parent_name:?}"))
            }
        }
        other => Err(format!(
            "the contract describes a relation tests/telemetry/alone/contract/relations.rs does not know: `{other}`"
        )),
    }
}
