//! A command's telemetry: the span `command.{CommandType}` (INTERNAL, child of the current
//! span, enclosing load, decide, save and delivery) and the `cqrs.command.*` metrics.

use super::{CommandError, HandlerTelemetry};
use crate::event::{DomainEvent, Metadata, StreamId};
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::{self, metrics};
use crate::telemetry::otel::{Span, SpanStart, Stopwatch};
use crate::telemetry::values::{Attr, Chain, DURATION_BOUNDARIES, Kind, SpanName};

static DURATION: metrics::DurationHistogram = metrics::DurationHistogram::new(
    attr::METRIC_COMMAND_DURATION,
    "Duration of command handling: load, decide, save, deliver",
    &DURATION_BOUNDARIES,
);

static COMMANDS: metrics::Counter =
    metrics::Counter::new(attr::METRIC_COMMAND_TOTAL, "{command}", "Commands handled");

static EVENTS_PRODUCED: metrics::Counter = metrics::Counter::new(
    attr::METRIC_EVENTS_PRODUCED,
    "{event}",
    "Events produced by commands",
);

/// One command's span and timer.
pub(super) struct CommandSpan {
    pub(super) span: Span,
    command_type: &'static str,
    timer: Stopwatch,
}

/// What a command's span is started from.
pub(super) struct CommandStart<'a> {
    pub(super) settings: HandlerTelemetry,
    pub(super) command_type: &'static str,
    pub(super) stream: &'a StreamId,
    pub(super) command_id: Option<&'a str>,
    pub(super) stamped: &'a Metadata,
}

/// Starts the command's span (unless its handler's switch or the process switch is off)
/// and timer; with `eventsource.command.id` when the command has one, and its correlation
/// id.
#[inline]
pub(super) fn start(command: &CommandStart<'_>) -> CommandSpan {
    // With the process switch off: no span, no call.
    let span = if otel::enabled() {
        started(command)
    } else {
        Span::none()
    };
    CommandSpan {
        span,
        command_type: command.command_type,
        timer: Stopwatch::start(),
    }
}

/// [`start`]'s span, with the process switch on.
#[inline(never)]
fn started(command: &CommandStart<'_>) -> Span {
    let CommandStart {
        settings,
        command_type,
        stream,
        command_id,
        stamped,
    } = *command;
    let name = match settings.span_name {
        Some(name) => SpanName::Static(name),
        None => SpanName::PrefixedStatic(attr::SPAN_COMMAND_PREFIX, command_type),
    };
    let mut span = SpanStart::new(settings.enabled, name, Kind::Internal);
    span.static_str(attr::COMMAND_TYPE, command_type)
        .stream(stream)
        .static_str(attr::CQRS_SIDE, attr::SIDE_WRITE)
        .str(
            attr::CORRELATION_ID,
            stamped.correlation_id().unwrap_or_default(),
        );
    if let Some(command_id) = command_id {
        span.str(attr::COMMAND_ID, command_id);
    }
    span.start()
}

impl CommandSpan {
    /// After the decision: the event count, the event types (a string array) and one
    /// `domain_event_produced` span event per event.
    #[inline]
    pub(super) fn decided<E: DomainEvent>(&self, events: &[E]) {
        if self.span.is_recording() {
            self.record_decided(events);
        }
    }

    /// [`decided`](Self::decided), on a recording span.
    #[inline(never)]
    fn record_decided<E: DomainEvent>(&self, events: &[E]) {
        self.span.set(attr::EVENT_COUNT, Attr::int(events.len()));
        self.span.set_str_array(
            attr::EVENT_TYPES,
            events.iter().map(DomainEvent::event_type),
        );
        for event in events {
            self.span.add_event(
                attr::SPAN_EVENT_DOMAIN_EVENT_PRODUCED,
                &[(attr::EVENT_TYPE, Attr::Static(event.event_type()))],
            );
        }
    }

    /// A recognised command id: `eventsource.command.duplicate` and the count of the first
    /// execution's events (no `domain_event_produced` event: nothing was decided).
    pub(super) fn duplicate(&self, events: usize) {
        self.span.set(attr::COMMAND_DUPLICATE, Attr::Bool(true));
        self.span.set(attr::EVENT_COUNT, Attr::int(events));
    }

    /// The outcome: `cqrs.command.duration`, `cqrs.command.total` and
    /// `cqrs.events.produced`; an error ends the span with ERROR and one `exception` event.
    #[inline]
    pub(super) fn finish<T, E: std::error::Error>(
        &self,
        result: &Result<T, CommandError<E>>,
        produced: usize,
    ) {
        // Metrics need the process switch, the span's error a recording span.
        if otel::enabled() || self.span.is_recording() {
            self.finished(result, produced);
        }
    }

    /// [`finish`](Self::finish), when there is something to record.
    #[inline(never)]
    fn finished<T, E: std::error::Error>(
        &self,
        result: &Result<T, CommandError<E>>,
        produced: usize,
    ) {
        let status = if result.is_ok() {
            attr::STATUS_SUCCESS
        } else {
            attr::STATUS_ERROR
        };
        // The command type first: `cqrs.events.produced` takes it alone.
        let outcome = [
            (
                attr::METRIC_ATTR_COMMAND_TYPE,
                Attr::Static(self.command_type),
            ),
            (attr::METRIC_ATTR_COMMAND_STATUS, Attr::Static(status)),
        ];
        metrics::record(outcome, |metrics| {
            metrics.duration(&DURATION, self.timer.elapsed());
            metrics.add(&COMMANDS, 1);
            if produced > 0 {
                metrics.add_with_first(&EVENTS_PRODUCED, produced as u64, 1);
            }
        });
        match result {
            Ok(_) => {}
            // The domain's error is the rejection's source; `E` need not be `'static`.
            Err(rejected @ CommandError::Rejected(error)) => self.span.record_error(
                std::any::type_name::<E>(),
                &format_args!("{rejected}: {}", Chain(error)),
            ),
            Err(CommandError::Repository(error)) => {
                self.span.record_error("RepositoryError", &Chain(error));
            }
        }
    }
}
