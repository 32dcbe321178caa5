//! The hand-written baseline: the same rules without the framework, untraced and traced by
//! hand on the SDK.

use super::*;

/// Streams of JSON-encoded events, keyed by aggregate id.
#[derive(Default)]
pub(super) struct Baseline {
    streams: Mutex<HashMap<String, Vec<Stored>>>,
}

/// A stored event: its JSON, and the W3C context of the span that appended it (traced only).
pub(super) struct Stored {
    json: String,
    trace_context: Option<HashMap<String, String>>,
}

impl Stored {
    pub(super) fn new(
        event: &impl Serialize,
        trace_context: Option<HashMap<String, String>>,
    ) -> Self {
        Self {
            json: serde_json::to_string(event).expect("serializable"),
            trace_context,
        }
    }
}

impl Baseline {
    /// Loads the stream, folds it into `A`'s state, decides, and appends if the stream is
    /// still at the version it was read at.
    pub(super) fn execute<A, E>(
        &self,
        id: &str,
        decide: impl FnOnce(&A) -> Result<Vec<A::Event>, E>,
    ) -> Result<usize, E>
    where
        A: Aggregate,
        A::Event: Serialize + for<'de> Deserialize<'de>,
    {
        let (mut state, version) = self.load::<A>(id);
        let events = decide(&state)?;
        let encoded: Vec<Stored> = events
            .iter()
            .map(|event| Stored::new(event, None))
            .collect();
        for event in &events {
            state.apply_event(event);
        }
        Ok(self.append(id, version, encoded))
    }

    /// The stream's events folded into `A`'s state, and its version.
    pub(super) fn load<A>(&self, id: &str) -> (A, usize)
    where
        A: Aggregate,
        A::Event: for<'de> Deserialize<'de>,
    {
        let streams = self.lock();
        let mut state = A::default();
        let stored = streams.get(id).map_or(&[][..], Vec::as_slice);
        for stored in stored {
            let event: A::Event = serde_json::from_str(&stored.json).expect("stored by us");
            state.apply_event(&event);
        }
        (state, stored.len())
    }

    /// Appends `encoded` to a stream read at `version`; the new version.
    fn append(&self, id: &str, version: usize, encoded: Vec<Stored>) -> usize {
        let mut streams = self.lock();
        let stream = streams.entry(id.to_owned()).or_default();
        assert_eq!(stream.len(), version, "a single writer");
        stream.extend(encoded);
        stream.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Stored>>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`Baseline::execute`] with the five spans of a traced W1 command written by hand on the
/// SDK (see the module's `hand_written_traced`).
pub(super) struct TracedBaseline {
    pub(super) baseline: Baseline,
    pub(super) tracer: SdkTracer,
    pub(super) propagator: TraceContextPropagator,
    pub(super) metrics: CommandMetrics,
}

/// The contract's three command metrics, recorded by hand on the same meter provider as
/// eventsource's: what a careful hand writing the same telemetry records too.
pub(super) struct CommandMetrics {
    pub(super) duration: opentelemetry::metrics::Histogram<f64>,
    pub(super) total: opentelemetry::metrics::Counter<u64>,
    pub(super) produced: opentelemetry::metrics::Counter<u64>,
}

impl CommandMetrics {
    pub(super) fn new() -> Self {
        let meter = opentelemetry::global::meter("bench");
        Self {
            duration: meter
                .f64_histogram(attr::METRIC_COMMAND_DURATION)
                .with_unit("s")
                .build(),
            total: meter.u64_counter(attr::METRIC_COMMAND_TOTAL).build(),
            produced: meter.u64_counter(attr::METRIC_EVENTS_PRODUCED).build(),
        }
    }
}

/// A correlation id's text, as a stamped command carries one (eventsource stamps it with
/// tracing off too, so only the attribute's copy is tracing's part).
pub(super) const CORRELATION_ID: &str = "0193a5c4-7e1f-7d2a-9b3c-4d5e6f708192";

impl TracedBaseline {
    /// How many stored events carry a W3C `traceparent`.
    pub(super) fn events_with_traceparent(&self) -> usize {
        let streams = self.baseline.lock();
        let events = streams.values().flatten();
        events
            .filter(|stored| {
                let context = stored.trace_context.as_ref();
                context.is_some_and(|context| context.contains_key("traceparent"))
            })
            .count()
    }

    pub(super) fn execute<A, E>(
        &self,
        (span_name, command_type): (&'static str, &'static str),
        id: &str,
        decide: impl FnOnce(&A) -> Result<Vec<A::Event>, E>,
    ) -> Result<usize, E>
    where
        A: Aggregate,
        A::Event: Serialize + for<'de> Deserialize<'de>,
    {
        let aggregate_type: &'static str = A::TYPE;
        let id_value = StringValue::from(std::sync::Arc::<str>::from(id));
        let stream = || {
            [
                KeyValue::new(attr::AGGREGATE_ID, Value::String(id_value.clone())),
                KeyValue::new(attr::AGGREGATE_TYPE, aggregate_type),
            ]
        };
        let span = |name: &'static str, kind, mut attributes: Vec<KeyValue>, parent: &Context| {
            attributes.extend(stream());
            let span = self
                .tracer
                .span_builder(name)
                .with_kind(kind)
                .with_attributes(attributes)
                .start_with_context(&self.tracer, parent);
            parent.with_span(span)
        };
        let started = Instant::now();
        let command = span(
            span_name,
            SpanKind::Internal,
            vec![
                KeyValue::new(attr::COMMAND_TYPE, command_type),
                KeyValue::new(attr::CQRS_SIDE, attr::SIDE_WRITE),
                KeyValue::new(attr::CORRELATION_ID, CORRELATION_ID.to_owned()),
            ],
            &Context::new(),
        );

        // Load: the repository's span, the store's inside it.
        let load = span(
            attr::SPAN_REPOSITORY_LOAD,
            SpanKind::Internal,
            Vec::new(),
            &command,
        );
        let (mut state, version) = {
            let store_load = span(
                attr::SPAN_STORE_LOAD,
                SpanKind::Client,
                vec![
                    KeyValue::new(attr::FROM_VERSION, 1_i64),
                    KeyValue::new(attr::DB_SYSTEM_NAME, "in_memory"),
                    KeyValue::new(attr::DB_OPERATION_NAME, "load"),
                ],
                &load,
            );
            let (state, version) = self.baseline.load::<A>(id);
            let span = store_load.span();
            span.set_attribute(KeyValue::new(attr::EVENTS_LOADED, version as i64));
            span.end();
            (state, version)
        };
        let span_of_load = load.span();
        span_of_load.set_attribute(KeyValue::new(attr::EVENTS_REPLAYED, version as i64));
        span_of_load.set_attribute(KeyValue::new(attr::VERSION, version as i64));
        span_of_load.set_attribute(KeyValue::new(attr::SNAPSHOT_USED, false));
        span_of_load.end();

        let events = decide(&state)?;
        let types: Vec<&'static str> = events.iter().map(A::Event::event_type).collect();
        let command_span = command.span();
        command_span.set_attribute(KeyValue::new(attr::EVENT_COUNT, events.len() as i64));
        command_span.set_attribute(KeyValue::new(
            attr::EVENT_TYPES,
            Value::Array(Array::String(types.iter().map(|&t| t.into()).collect())),
        ));
        for &event_type in &types {
            command_span.add_event(
                attr::SPAN_EVENT_DOMAIN_EVENT_PRODUCED,
                vec![KeyValue::new(attr::EVENT_TYPE, event_type)],
            );
        }

        // Save: the repository's span, the store's inside it.
        let counts = || {
            vec![
                KeyValue::new(attr::EXPECTED_VERSION, version as i64),
                KeyValue::new(attr::EVENT_COUNT, events.len() as i64),
            ]
        };
        let save = span(
            attr::SPAN_REPOSITORY_SAVE,
            SpanKind::Internal,
            counts(),
            &command,
        );
        let mut append_attributes = counts();
        append_attributes.extend([
            KeyValue::new(attr::DB_SYSTEM_NAME, "in_memory"),
            KeyValue::new(attr::DB_OPERATION_NAME, "append"),
        ]);
        let append = span(
            attr::SPAN_STORE_APPEND,
            SpanKind::Client,
            append_attributes,
            &save,
        );
        let encoded: Vec<Stored> = events
            .iter()
            .map(|event| {
                let mut trace_context = HashMap::new();
                self.propagator.inject_context(&append, &mut trace_context);
                Stored::new(event, Some(trace_context))
            })
            .collect();
        for event in &events {
            state.apply_event(event);
        }
        let new_version = self.baseline.append(id, version, encoded);
        let append_span = append.span();
        for (sequence, &event_type) in (version + 1..).zip(&types) {
            append_span.add_event(
                attr::SPAN_EVENT_EVENT_PERSISTED,
                vec![
                    KeyValue::new(attr::EVENT_TYPE, event_type),
                    KeyValue::new(attr::EVENT_SEQUENCE, sequence as i64),
                ],
            );
        }
        append_span.set_attribute(KeyValue::new(attr::VERSION, new_version as i64));
        append_span.end();
        let save_span = save.span();
        save_span.set_attribute(KeyValue::new(attr::VERSION, new_version as i64));
        save_span.end();
        let outcome = [
            KeyValue::new(attr::METRIC_ATTR_COMMAND_TYPE, command_type),
            KeyValue::new(attr::METRIC_ATTR_COMMAND_STATUS, attr::STATUS_SUCCESS),
        ];
        self.metrics
            .duration
            .record(started.elapsed().as_secs_f64(), &outcome);
        self.metrics.total.add(1, &outcome);
        self.metrics.produced.add(
            types.len() as u64,
            &[KeyValue::new(attr::METRIC_ATTR_COMMAND_TYPE, command_type)],
        );
        command_span.end();
        Ok(new_version)
    }
}
