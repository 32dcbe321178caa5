//! What a load made: the root, and what its span says of it; and the replay of one stored
//! event through the decoding door.

use crate::aggregate::{Aggregate, AggregateRoot};
use crate::event::upcast::decode;
use crate::event::upcast::{UpcastCounts, UpcastTally};
use crate::event::{EventEnvelope, StreamId};
use crate::store::stream_reader::page_after;
use crate::telemetry::otel::Span;

use super::{LOAD_PAGE_EVENTS, RepositoryError, RepositoryTelemetry, instrument};

impl<A: Aggregate> Loaded<A> {
    /// What the load span says of the load.
    pub(super) fn report(&self) -> LoadReport<'_> {
        LoadReport {
            replayed: self.replayed,
            version: self.root.version(),
            snapshot_used: self.snapshot_used,
            upcasts: &self.upcasts,
        }
    }
}

/// What the load span says of a load.
pub(super) struct LoadReport<'a> {
    /// The events applied after the snapshot (all of them without one).
    pub(super) replayed: usize,
    /// The aggregate's version after the load.
    pub(super) version: u64,
    pub(super) snapshot_used: bool,
    /// Those events that were upcast.
    pub(super) upcasts: &'a UpcastTally,
}

/// A loaded root, and how it was loaded (for the load span).
pub(super) struct Loaded<A: Aggregate> {
    pub(super) root: AggregateRoot<A>,
    /// The events applied after the snapshot (all of them without one).
    pub(super) replayed: usize,
    pub(super) snapshot_used: bool,
    /// The stored events of the command id looked for, if any.
    pub(super) command_events: Vec<EventEnvelope>,
    /// The replayed events that were upcast.
    pub(super) upcasts: UpcastTally,
}

/// Applies one stored event, through the decoding door (upcast, renamed or split when its
/// set says so). Returns the stored schema version when it was upcast.
pub(super) fn replay_one<A: Aggregate>(
    root: &mut AggregateRoot<A>,
    envelope: &EventEnvelope,
    counts: &mut UpcastCounts,
) -> Result<Option<u32>, RepositoryError> {
    root.advance_stored(envelope.version)?;
    let apply = |event| root.apply_part(&event);
    decode::decode_set::<A::Event>(envelope, counts, apply).map_err(|source| {
        RepositoryError::Decode {
            stream: envelope.stream.clone(),
            version: envelope.version,
            source,
        }
    })
}

/// A replay read page by page: each page is applied before the next is read, so a long
/// stream is never held whole; one opt-in replay span for all of them.
///
/// It does no I/O: the caller reads the page [`next_page`](Self::next_page) asks for and
/// hands it to [`apply`](Self::apply), awaiting a store's future or calling a store that
/// answers at once, so every load runs these same steps.
pub(super) struct PagedReplay<'a, A: Aggregate> {
    /// Borrowed, not moved in and out: a root is large, and every command loads one.
    root: &'a mut AggregateRoot<A>,
    /// The version the next page starts at; `None` once the stream's end was read.
    next: Option<u64>,
    /// The root's version before the replay: events up to it (read to find a command's
    /// events after a snapshot) are not applied.
    restored: u64,
    command_id: Option<&'a str>,
    command_events: Vec<EventEnvelope>,
    replayed: usize,
    counts: UpcastCounts,
    upcasts: UpcastTally,
    span: Option<Span>,
}

impl<'a, A: Aggregate> PagedReplay<'a, A> {
    /// The replay onto `root` of its stream's events from version `from` on.
    #[inline]
    pub(super) fn new(
        root: &'a mut AggregateRoot<A>,
        from: u64,
        command_id: Option<&'a str>,
    ) -> Self {
        Self {
            next: Some(from),
            restored: root.version(),
            root,
            command_id,
            command_events: Vec::new(),
            replayed: 0,
            counts: UpcastCounts::default(),
            upcasts: UpcastTally::default(),
            span: None,
        }
    }

    /// The version the next page to read starts at; `None`: the replay has read them all.
    #[inline]
    pub(super) fn next_page(&self) -> Option<u64> {
        self.next
    }

    /// The root's stream.
    pub(super) fn stream(&self) -> &StreamId {
        self.root.stream()
    }

    /// Applies the page's events after the restored version, and keeps those carrying the
    /// command id looked for. A page shorter than [`LOAD_PAGE_EVENTS`] is the stream's end;
    /// a longer one, the whole rest of it (a store that held it anyway).
    pub(super) fn apply(
        &mut self,
        telemetry: &RepositoryTelemetry,
        page: Vec<EventEnvelope>,
    ) -> Result<(), RepositoryError> {
        self.next = page_after(&page, LOAD_PAGE_EVENTS);
        let restored = self.restored;
        let newer = page.iter().filter(|e| e.version > restored).count();
        if newer > 0 && self.span.is_none() {
            self.span = Some(instrument::replay(telemetry, self.root.stream()));
        }
        for envelope in page.iter().filter(|e| e.version > restored) {
            let upcast_from = replay_one(self.root, envelope, &mut self.counts)?;
            self.upcasts.add(upcast_from);
        }
        self.replayed += newer;
        if let Some(command_id) = self.command_id {
            let carries = |e: &EventEnvelope| e.metadata.command_id() == Some(command_id);
            self.command_events.extend(page.into_iter().filter(carries));
        }
        Ok(())
    }

    /// Ends the replay: what it did, for the [`Loaded`] of the root.
    #[inline]
    pub(super) fn finish(self) -> Replayed {
        if let Some(span) = &self.span {
            instrument::replayed(span, self.replayed);
        }
        Replayed {
            replayed: self.replayed,
            command_events: self.command_events,
            upcasts: self.upcasts,
        }
    }
}

/// What a [`PagedReplay`] did (by default: nothing).
#[derive(Default)]
pub(super) struct Replayed {
    replayed: usize,
    command_events: Vec<EventEnvelope>,
    upcasts: UpcastTally,
}

impl<A: Aggregate> Loaded<A> {
    /// `root`, replayed as `replayed` says, from a snapshot if `snapshot_used`.
    #[inline]
    pub(super) fn new(root: AggregateRoot<A>, replayed: Replayed, snapshot_used: bool) -> Self {
        Self {
            root,
            replayed: replayed.replayed,
            snapshot_used,
            command_events: replayed.command_events,
            upcasts: replayed.upcasts,
        }
    }
}
