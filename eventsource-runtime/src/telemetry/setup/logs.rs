//! The log lines and the spans' filter: which events become lines and which spans are
//! recorded (both from `RUST_LOG`), and the lines' format, with the current trace and span ids.
//!
//! `RUST_LOG` is read as `tracing-subscriber`'s [`Targets`]: `level`, `target` and
//! `target=level` directives. `EnvFilter`'s span and field filters (`target[span{f=v}]=level`)
//! are not supported: its regex engine would be a fifth of a clean build, for a syntax an
//! application that needs it gets by composing `OtelLayer` with its own `EnvFilter`.

use std::fmt;

use opentelemetry::trace::TraceContextExt as _;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime as _;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{self, Filter};
use tracing_subscriber::registry::LookupSpan;

/// Crates whose spans are never exported, matched by crate (`tower` and `tower::buffer`, not
/// `tower_http`): the exporters' own HTTP and gRPC stack (exporting them would feed the
/// exporter with its own work) and the AMQP client (one long span per connection, its
/// connection loop's, not the application's). Every OpenTelemetry crate's own spans too
/// ([`untraced`]).
pub(crate) const UNTRACED_CRATES: [&str; 7] = [
    "ureq",
    "tonic",
    "h2",
    "hyper",
    "tower",
    "lapin",
    "amq_protocol",
];

/// The target of the spans made for OpenTelemetry on purpose (`axum-tracing-opentelemetry`'s
/// and `tracing-opentelemetry-instrumentation-sdk`'s, at `TRACE`): recorded whatever the
/// level, unless `RUST_LOG` names it.
pub(crate) const OTEL_SPANS_TARGET: &str = "otel::tracing";

/// Whether spans of `target` are never exported: one of [`UNTRACED_CRATES`] or an
/// OpenTelemetry crate (`opentelemetry`, `opentelemetry_sdk`, ...).
fn untraced(target: &str) -> bool {
    target.starts_with("opentelemetry")
        || UNTRACED_CRATES.iter().any(|krate| {
            target
                .strip_prefix(krate)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// `RUST_LOG`'s directives, parsed; the error says what is wrong with the first bad one.
pub(super) fn parse_directives(directives: &str) -> Result<Targets, String> {
    let mut parsed = Vec::new();
    for directive in directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        if directive.contains('[') {
            return Err(format!(
                "`{directive}`: span and field filters are not supported by telemetry::init() \
                 (use `target=level`, or compose OtelLayer with your own EnvFilter)"
            ));
        }
        match directive.parse::<Targets>() {
            Ok(_) => parsed.push(directive),
            Err(error) => return Err(format!("`{directive}`: {error}")),
        }
    }
    if parsed.is_empty() {
        return Ok(Targets::new());
    }
    parsed
        .join(",")
        .parse::<Targets>()
        .map_err(|error| error.to_string())
}

/// Directives the settings have checked, parsed; anything else records at `info`.
fn targets(directives: &str) -> Targets {
    parse_directives(directives).unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO))
}

/// Targets whose log lines show only when `RUST_LOG` names them: OpenTelemetry's internal
/// logs, and the AMQP client's, whose every failure reaches the caller as the RabbitMQ
/// adapter's own error or WARN line (a refused login was three ERROR lines before it).
const QUIET_TARGETS: [&str; 3] = ["opentelemetry", "lapin", "amq_protocol"];

/// The log lines' filter: `RUST_LOG`, without [`QUIET_TARGETS`] unless it names them.
pub(super) fn log_filter(directives: &str) -> Targets {
    QUIET_TARGETS
        .iter()
        .filter(|target| !directives.contains(*target))
        .fold(targets(directives), |filter, target| {
            filter.with_target(*target, LevelFilter::OFF)
        })
}

/// The spans' filter: [`span_directives`], never the exporters' own stack ([`untraced`]).
pub(super) fn span_filter(log_directives: &str) -> SpanFilter {
    SpanFilter {
        targets: targets(&span_directives(log_directives)),
    }
}

/// Which spans are exported: [`span_directives`]' targets, less the [`untraced`] crates.
pub(super) struct SpanFilter {
    targets: Targets,
}

impl SpanFilter {
    /// Whether a span of `target` at `level` is exported.
    #[cfg(test)]
    fn would_enable(&self, target: &str, level: &tracing::Level) -> bool {
        !untraced(target) && self.targets.would_enable(target, level)
    }
}

impl<S: Subscriber> Filter<S> for SpanFilter {
    fn enabled(&self, meta: &Metadata<'_>, cx: &layer::Context<'_, S>) -> bool {
        !untraced(meta.target()) && Filter::<S>::enabled(&self.targets, meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if untraced(meta.target()) {
            Interest::never()
        } else {
            Filter::<S>::callsite_enabled(&self.targets, meta)
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Filter::<S>::max_level_hint(&self.targets)
    }
}

/// The spans' directives: `RUST_LOG`'s, with the default level at least `info`, so that
/// `RUST_LOG=warn` quiets the log lines without dropping the (info-level) spans, and the
/// spans made for OpenTelemetry ([`OTEL_SPANS_TARGET`]) at every level unless a directive
/// names an `otel` target. Directives naming a target are kept as they are.
fn span_directives(log_directives: &str) -> String {
    use std::str::FromStr as _;

    let mut default = LevelFilter::INFO;
    let mut targeted = Vec::new();
    for directive in log_directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        match LevelFilter::from_str(directive) {
            Ok(level) => default = default.max(level),
            Err(_) => targeted.push(directive),
        }
    }
    let otel_named = targeted
        .iter()
        .any(|directive| directive.starts_with("otel"));
    let otel_spans = (!otel_named).then(|| format!("{OTEL_SPANS_TARGET}=trace"));
    std::iter::once(default.to_string().to_ascii_lowercase())
        .chain(targeted.into_iter().map(str::to_owned))
        .chain(otel_spans)
        .collect::<Vec<_>>()
        .join(",")
}

/// Log lines as `<time> <LEVEL> <target>: <message> <fields> trace_id=… span_id=…`, the ids
/// of the span the event happened in (its OpenTelemetry context, made current when a span is
/// entered).
pub(super) struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let ansi = w.has_ansi_escapes();
        let (dim, reset) = if ansi {
            ("\x1b[2m", "\x1b[0m")
        } else {
            ("", "")
        };
        w.write_str(dim)?;
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut w)?;
        w.write_str(reset)?;
        let level = *meta.level();
        if ansi {
            let color = match level {
                tracing::Level::ERROR => "\x1b[31m",
                tracing::Level::WARN => "\x1b[33m",
                tracing::Level::INFO => "\x1b[32m",
                tracing::Level::DEBUG => "\x1b[34m",
                tracing::Level::TRACE => "\x1b[35m",
            };
            write!(w, " {color}{level:>5}{reset} ")?;
        } else {
            write!(w, " {level:>5} ")?;
        }
        write!(w, "{dim}{}:{reset} ", meta.target())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            write!(
                w,
                " {dim}trace_id={} span_id={}{reset}",
                sc.trace_id(),
                sc.span_id()
            )?;
        }
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_recorded_at_info_at_least() {
        let otel = ",otel::tracing=trace";
        assert_eq!(span_directives("info"), format!("info{otel}"));
        assert_eq!(span_directives("warn"), format!("info{otel}"));
        assert_eq!(span_directives("off"), format!("info{otel}"));
        assert_eq!(span_directives("debug"), format!("debug{otel}"));
        assert_eq!(
            span_directives("warn,sqlx=off"),
            format!("info,sqlx=off{otel}")
        );
        assert_eq!(
            span_directives("eventsource=debug"),
            format!("info,eventsource=debug{otel}")
        );
        assert_eq!(
            span_directives("trace, hyper=info"),
            format!("trace,hyper=info{otel}")
        );
        assert_eq!(span_directives("otel=off"), "info,otel=off");
    }

    #[test]
    fn spans_made_for_opentelemetry_are_recorded_at_every_level() {
        let filter = span_filter("");
        assert!(filter.would_enable("otel::tracing", &tracing::Level::TRACE));
        assert!(!filter.would_enable("my_app", &tracing::Level::TRACE));
        assert!(!span_filter("otel=off").would_enable("otel::tracing", &tracing::Level::ERROR));
    }

    #[test]
    fn directives_are_targets_and_levels() {
        let filter = parse_directives("warn, sqlx=off,eventsource=debug,").unwrap();
        assert_eq!(filter.default_level(), Some(LevelFilter::WARN));
        assert_eq!(filter.iter().count(), 2);
        assert!(parse_directives("").unwrap().default_level().is_none());
        let error = parse_directives("info,eventsource[load{id=7}]=debug").unwrap_err();
        assert!(error.contains("span and field filters"), "{error}");
        let error = parse_directives("eventsource=loud").unwrap_err();
        assert!(error.starts_with("`eventsource=loud`: "), "{error}");
    }

    #[test]
    fn the_exporters_own_stack_is_never_traced() {
        let filter = span_filter("trace");
        for target in UNTRACED_CRATES {
            for target in [target.to_owned(), format!("{target}::inner")] {
                let level = &tracing::Level::ERROR;
                assert!(!filter.would_enable(&target, level), "{target}");
            }
        }
        assert!(!filter.would_enable("opentelemetry_sdk", &tracing::Level::ERROR));
        assert!(filter.would_enable("eventsource", &tracing::Level::TRACE));
        // Crates named alike are the application's: matched by crate, not by prefix.
        let info = &tracing::Level::INFO;
        for target in [
            "tower_http::trace::on_request",
            "hyper_util::client",
            "tonic_web",
        ] {
            assert!(span_filter("").would_enable(target, info), "{target}");
        }
        assert!(!log_filter("debug").would_enable("opentelemetry_sdk", &tracing::Level::WARN));
        assert!(
            log_filter("opentelemetry_sdk=warn")
                .would_enable("opentelemetry_sdk", &tracing::Level::WARN)
        );
    }

    #[test]
    fn the_amqp_clients_lines_show_only_when_named() {
        for directives in ["info", "trace"] {
            let filter = log_filter(directives);
            assert!(!filter.would_enable("lapin::channel", &tracing::Level::ERROR));
            assert!(!filter.would_enable("amq_protocol", &tracing::Level::ERROR));
            assert!(filter.would_enable("eventsource", &tracing::Level::WARN));
        }
        assert!(
            log_filter("info,lapin=error").would_enable("lapin::channel", &tracing::Level::ERROR)
        );
    }
}
