//! `Metadata`'s unit tests: the inline lineage against the entries it stands for, serde.

use super::*;

#[test]
fn stored_metadata_is_read_on_first_use_and_changes_drop_the_stored_text() {
    let stored = r#"{"b": "2", "a": 7, "c": {"x": [1]}}"#;
    let mut metadata = Metadata::from_json(stored.to_owned()).unwrap();
    let unread = |metadata: &Metadata| match &metadata.0 {
        Repr::Shared(entries) => entries.read.get().is_none(),
        _ => false,
    };
    assert!(unread(&metadata), "not read yet");
    assert!(!metadata.is_empty());
    assert_eq!(
        serde_json::to_string(&metadata).unwrap(),
        stored,
        "kept as stored"
    );
    assert_eq!(metadata.get("a"), Some("7"));
    assert_eq!(metadata.get("c"), Some(r#"{"x":[1]}"#));
    assert_eq!(
        metadata,
        Metadata::from_iter([("a", "7"), ("b", "2"), ("c", r#"{"x":[1]}"#)])
    );
    metadata.insert("d", "4");
    assert_eq!(metadata.remove("b").as_deref(), Some("2"));
    assert_eq!(metadata.keys().collect::<Vec<_>>(), ["a", "c", "d"]);
    assert_eq!(
        serde_json::to_string(&metadata).unwrap(),
        r#"{"a":"7","c":"{\"x\":[1]}","d":"4"}"#
    );

    assert!(Metadata::from_json(" {} ".to_owned()).unwrap().is_empty());
    assert!(Metadata::from_json("{ \n }".to_owned()).unwrap().is_empty());
    assert!(
        !Metadata::from_json(r#"{"a":"{}"}"#.to_owned())
            .unwrap()
            .is_empty()
    );
    assert!(Metadata::from_json("[1]".to_owned()).is_err());
    assert!(Metadata::from_json("{".to_owned()).is_err());
}

#[test]
fn a_traceparent_is_appended_to_stored_text_once() {
    let traceparent = *b"00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
    let mut stamped = Metadata::from_checked(Arc::from(r#"{"causation_id":"k"}"#));
    assert!(stamped.append_traceparent(&traceparent));
    assert_eq!(
        stamped.stored_json().as_deref(),
        Some(
            r#"{"causation_id":"k","traceparent":"00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"}"#
        )
    );
    assert_eq!(stamped.causation_id(), Some("k"));
    assert!(!stamped.append_traceparent(&traceparent), "one is enough");
    let mut empty = Metadata::from_checked(Arc::from(" { } "));
    assert!(empty.append_traceparent(&traceparent));
    assert_eq!(empty.keys().collect::<Vec<_>>(), ["traceparent"]);
    for names in [
        r#"{"tracestate":"vendor=a1"}"#,
        r#"{"trace\u0070arent":"00-1-2-01"}"#,
    ] {
        let mut named = Metadata::from_checked(Arc::from(names));
        assert!(!named.append_traceparent(&traceparent), "{names}");
    }
    let mut entries = Metadata::new().with("a", "1");
    assert!(
        !entries.append_traceparent(&traceparent),
        "entries take an insert"
    );
}

#[test]
fn a_traceparent_alone_reads_writes_and_changes_as_its_json_object() {
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
    let mut bytes = [0; TRACEPARENT_LEN];
    bytes.copy_from_slice(traceparent.as_bytes());
    let metadata = Metadata::from_traceparent(bytes);
    let json = format!(r#"{{"traceparent":"{traceparent}"}}"#);
    assert!(!metadata.is_empty());
    assert_eq!(metadata.stored_json().as_deref(), Some(json.as_str()));
    assert_eq!(serde_json::to_string(&metadata).unwrap(), json);
    assert_eq!(metadata.traceparent(), Some(traceparent));
    assert_eq!(metadata, Metadata::from_json(json.clone()).unwrap());

    // A change copies the shared entries; the original keeps its stored form.
    let mut changed = metadata.clone().with(Metadata::CORRELATION_ID, "c-1");
    assert_eq!(
        changed.keys().collect::<Vec<_>>(),
        ["correlation_id", "traceparent"]
    );
    assert!(changed.stored_json().is_none());
    assert_eq!(metadata.stored_json().as_deref(), Some(json.as_str()));
    changed.remove(Metadata::CORRELATION_ID);
    changed.remove(Metadata::TRACEPARENT);
    assert!(changed.is_empty());
    assert!(
        matches!(changed.0, Repr::Empty),
        "empty again holds nothing"
    );
}

#[test]
fn a_commands_own_lineage_writes_the_json_its_entries_would() {
    let id = "0190c3a5-7e1f-7c3b-9d2a-5b6c7d8e9f00";
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    text.copy_from_slice(id.as_bytes());
    let stamped = Metadata::from_lineage(text);
    let entries = Metadata::new()
        .with(Metadata::CORRELATION_ID, id)
        .with(Metadata::CAUSATION_ID, id);
    assert_eq!(stamped, entries);
    let json = serde_json::to_string(&entries).unwrap();
    assert_eq!(stamped.stored_json().as_deref(), Some(json.as_str()));
    assert_eq!(serde_json::to_string(&stamped).unwrap(), json);
    let mut changed = stamped.clone().with("tenant", "t-1");
    assert_eq!(
        changed.keys().collect::<Vec<_>>(),
        ["causation_id", "correlation_id", "tenant"]
    );
    assert_eq!(changed.remove("tenant").as_deref(), Some("t-1"));
    assert_eq!(changed, stamped);
}

#[test]
fn a_traced_commands_lineage_reads_writes_and_changes_as_its_entries() {
    let id = "0190c3a5-7e1f-7c3b-9d2a-5b6c7d8e9f00";
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    text.copy_from_slice(id.as_bytes());
    let mut bytes = [0; TRACEPARENT_LEN];
    bytes.copy_from_slice(traceparent.as_bytes());
    let mut traced = Metadata::from_lineage(text);
    assert!(traced.append_traceparent(&bytes));
    assert!(
        matches!(&traced.0, Repr::Shared(entries) if matches!(entries.stored, Stored::Traceparent { lineage: Some(_), .. })),
        "kept inline, no text written"
    );

    let entries = Metadata::new()
        .with(Metadata::CORRELATION_ID, id)
        .with(Metadata::CAUSATION_ID, id)
        .with(Metadata::TRACEPARENT, traceparent);
    let json = serde_json::to_string(&entries).unwrap();
    assert_eq!(traced.stored_json().as_deref(), Some(json.as_str()));
    assert_eq!(serde_json::to_string(&traced).unwrap(), json);
    assert_eq!(traced, entries);
    assert_eq!(traced, Metadata::from_json(json.clone()).unwrap());
    assert!(!traced.is_empty());
    assert_eq!(traced.correlation_id(), Some(id));
    assert_eq!(traced.causation_id(), Some(id));
    assert_eq!(traced.traceparent(), Some(traceparent));
    assert_eq!(traced.get("tenant"), None);
    assert!(
        !traced.append_traceparent(&bytes),
        "one traceparent is enough: the next goes through entries"
    );

    // A change copies the entries; the original keeps its stored form.
    let mut changed = traced.clone().with("tenant", "t-1");
    assert_eq!(
        changed.keys().collect::<Vec<_>>(),
        ["causation_id", "correlation_id", "tenant", "traceparent"]
    );
    assert!(changed.stored_json().is_none());
    assert_eq!(traced.stored_json().as_deref(), Some(json.as_str()));
    assert_eq!(changed.remove("tenant").as_deref(), Some("t-1"));
    assert_eq!(changed, traced);
}
