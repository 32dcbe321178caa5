//! Per-trace buffering: holds each trace's spans until the span above them has ended, then
//! hands them to the renderer and writes the text, in an order that keeps a linked trace
//! right after the trace it links to.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::time::Instant;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::SpanData;

use super::render::{SeenSpans, render};
use super::{ConsoleDetail, MAX_BUFFERED_SPANS, MAX_DEFER, MAX_REMEMBERED_NAMES, SharedWriter};

/// The spans of one trace waiting for their root.
struct Pending {
    seq: u64,
    spans: Vec<SpanData>,
}

/// A rendered trace waiting for the trace it links to.
struct Deferred {
    trace: TraceId,
    after: TraceId,
    since: Instant,
    text: String,
}

/// What the exporter holds between exports: the spans waiting to be printed, the traces
/// waiting for the trace they link to, and the names of printed spans.
pub(super) struct TraceBuffer {
    out: SharedWriter,
    traces: HashMap<TraceId, Pending>,
    /// Trace ids by arrival, for flushing and eviction in order.
    order: BTreeMap<u64, TraceId>,
    next_seq: u64,
    buffered: usize,
    /// Names of printed spans, for links that point at them.
    names: HashMap<SpanId, (TraceId, String)>,
    names_fifo: VecDeque<SpanId>,
    deferred: Vec<Deferred>,
    /// Set by `shutdown`: later exports are refused.
    pub(super) shut_down: bool,
    pub(super) detail: ConsoleDetail,
}

impl TraceBuffer {
    pub(super) fn new(out: SharedWriter) -> Self {
        Self {
            out,
            traces: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            buffered: 0,
            names: HashMap::new(),
            names_fifo: VecDeque::new(),
            deferred: Vec::new(),
            shut_down: false,
            detail: ConsoleDetail::default(),
        }
    }

    /// Takes in spans that just ended and writes the traces they complete.
    pub(super) fn export(&mut self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut text = String::new();
        for span in batch {
            self.add(span, &mut text);
        }
        self.release_expired(&mut text);
        self.evict_overflow(&mut text);
        self.write(&text)
    }

    fn add(&mut self, span: SpanData, out: &mut String) {
        let trace = span.span_context.trace_id();
        let id = span.span_context.span_id();
        let parent = span.parent_span_id;
        // A span starts a print when nothing in this process will end above it: a root, a
        // span continuing a remote parent (unless that parent ended here and waits in the
        // buffer: an in-process bus's consume span under its publish span), or a late child
        // of an already printed span.
        let print_now = parent == SpanId::INVALID
            || (span.parent_span_is_remote && !self.is_buffered(trace, parent))
            || self.printed(trace, parent);
        let pending = self.traces.entry(trace).or_insert_with(|| {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.insert(seq, trace);
            Pending {
                seq,
                spans: Vec::new(),
            }
        });
        pending.spans.push(span);
        self.buffered += 1;
        if print_now {
            self.print_subtree(trace, id, out);
        }
    }

    /// Whether span `id` of `trace` ended and waits in the buffer.
    fn is_buffered(&self, trace: TraceId, id: SpanId) -> bool {
        self.traces
            .get(&trace)
            .is_some_and(|p| p.spans.iter().any(|s| s.span_context.span_id() == id))
    }

    /// Takes the spans of `trace` below `root` (inclusive) out of the buffer.
    fn take_subtree(&mut self, trace: TraceId, root: SpanId) -> Vec<SpanData> {
        let Some(pending) = self.traces.get_mut(&trace) else {
            return Vec::new();
        };
        let mut children: HashMap<SpanId, Vec<SpanId>> = HashMap::new();
        for span in &pending.spans {
            let id = span.span_context.span_id();
            if span.parent_span_id != id {
                children.entry(span.parent_span_id).or_default().push(id);
            }
        }
        let mut keep = HashSet::from([root]);
        let mut todo = vec![root];
        while let Some(id) = todo.pop() {
            for &child in children.get(&id).into_iter().flatten() {
                if keep.insert(child) {
                    todo.push(child);
                }
            }
        }
        let (taken, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut pending.spans)
            .into_iter()
            .partition(|s| keep.contains(&s.span_context.span_id()));
        self.buffered -= taken.len();
        if rest.is_empty() {
            let seq = pending.seq;
            self.traces.remove(&trace);
            self.order.remove(&seq);
        } else {
            pending.spans = rest;
        }
        taken
    }

    fn print_subtree(&mut self, trace: TraceId, root: SpanId, out: &mut String) {
        let spans = self.take_subtree(trace, root);
        if spans.is_empty() {
            return;
        }
        let text = render(trace, &spans, self, self.detail);
        self.remember(trace, &spans);
        // A trace linked to a trace still in progress comes out right after it.
        let after = spans
            .iter()
            .flat_map(|s| &s.links.links)
            .map(|l| l.span_context.trace_id())
            .find(|t| *t != trace && self.traces.contains_key(t));
        if let Some(after) = after {
            self.deferred.push(Deferred {
                trace,
                after,
                since: Instant::now(),
                text,
            });
            return;
        }
        out.push_str(&text);
        self.release_after(trace, out);
    }

    /// Prints the traces deferred until `trace` was printed, once nothing of it is left.
    fn release_after(&mut self, trace: TraceId, out: &mut String) {
        let mut done = vec![trace];
        while let Some(trace) = done.pop() {
            if self.traces.contains_key(&trace) {
                continue;
            }
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
                .into_iter()
                .partition(|d| d.after == trace);
            self.deferred = waiting;
            for deferred in ready {
                out.push_str(&deferred.text);
                done.push(deferred.trace);
            }
        }
    }

    fn release_expired(&mut self, out: &mut String) {
        if self.deferred.iter().any(|d| d.since.elapsed() >= MAX_DEFER) {
            let (expired, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
                .into_iter()
                .partition(|d| d.since.elapsed() >= MAX_DEFER);
            self.deferred = waiting;
            for deferred in expired {
                out.push_str(&deferred.text);
            }
        }
    }

    /// Bounds the memory of traces whose root never ends.
    fn evict_overflow(&mut self, out: &mut String) {
        while self.buffered > MAX_BUFFERED_SPANS {
            let Some((_, trace)) = self.order.pop_first() else {
                break;
            };
            self.print_all_of(trace, out);
        }
    }

    /// Prints whatever is buffered of `trace`, as one tree per span whose parent is absent.
    fn print_all_of(&mut self, trace: TraceId, out: &mut String) {
        let Some(pending) = self.traces.remove(&trace) else {
            return;
        };
        self.order.remove(&pending.seq);
        self.buffered -= pending.spans.len();
        let text = render(trace, &pending.spans, self, self.detail);
        self.remember(trace, &pending.spans);
        out.push_str(&text);
        self.release_after(trace, out);
    }

    /// Writes everything still buffered: leftovers as incomplete trees, then deferred traces.
    pub(super) fn flush_all(&mut self) -> OTelSdkResult {
        let mut text = String::new();
        while let Some((_, trace)) = self.order.pop_first() {
            self.print_all_of(trace, &mut text);
        }
        for deferred in std::mem::take(&mut self.deferred) {
            text.push_str(&deferred.text);
        }
        self.write(&text)
    }

    fn write(&mut self, text: &str) -> OTelSdkResult {
        if text.is_empty() {
            return Ok(());
        }
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| OTelSdkError::InternalFailure(format!("console exporter: {e}")))
    }

    fn remember(&mut self, trace: TraceId, spans: &[SpanData]) {
        for span in spans {
            let id = span.span_context.span_id();
            if self
                .names
                .insert(id, (trace, span.name.to_string()))
                .is_none()
            {
                self.names_fifo.push_back(id);
            }
        }
        while self.names_fifo.len() > MAX_REMEMBERED_NAMES {
            if let Some(old) = self.names_fifo.pop_front() {
                self.names.remove(&old);
            }
        }
    }
}

impl SeenSpans for TraceBuffer {
    fn printed(&self, trace: TraceId, id: SpanId) -> bool {
        self.names.get(&id).is_some_and(|(t, _)| *t == trace)
    }

    fn name(&self, trace: TraceId, id: SpanId) -> Option<&str> {
        let buffered = self
            .traces
            .get(&trace)
            .and_then(|p| p.spans.iter().find(|s| s.span_context.span_id() == id))
            .map(|s| s.name.as_ref());
        buffered.or_else(|| {
            self.names
                .get(&id)
                .filter(|(t, _)| *t == trace)
                .map(|(_, n)| n.as_str())
        })
    }
}
