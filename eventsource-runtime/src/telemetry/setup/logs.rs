//! The log lines and the spans' filter: which events become lines and which spans are
//! recorded (both from `RUST_LOG`), and the lines' format, with the current trace and span ids.
//!
//! `RUST_LOG` is read as `tracing-subscriber`'s [`Targets`]: `level`, `target` and
//! `target=level` directives. `EnvFilter`'s span and field filters (`target[span{f=v}]=level`)
//! are not supported: its regex engine would be a fifth of a clean build, for a syntax an
//! application that needs it gets by composing `OtelLayer` with its own `EnvFilter`.

use std::fmt;

use opentelemetry::trace::TraceContextExt as _;
use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime as _;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Targets whose spans are never exported: the exporters' own HTTP/gRPC stack (exporting
/// them would feed the exporter with its own work), OpenTelemetry's internal logs, and the
/// AMQP client's connection loop (one long span per connection, not the application's).
const UNTRACED_TARGETS: [&str; 8] = [
    "opentelemetry",
    "h2",
    "hyper",
    "tonic",
    "tower",
    "ureq",
    "lapin",
    "amq_protocol",
];

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

/// The spans' filter: [`span_directives`], never the exporters' own stack.
pub(super) fn span_filter(log_directives: &str) -> Targets {
    UNTRACED_TARGETS.iter().fold(
        targets(&span_directives(log_directives)),
        |filter, target| filter.with_target(*target, LevelFilter::OFF),
    )
}

/// The spans' directives: `RUST_LOG`'s, with the default level at least `info`, so that
/// `RUST_LOG=warn` quiets the log lines without dropping the (info-level) spans. Directives
/// naming a target are kept as they are.
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
    std::iter::once(default.to_string().to_ascii_lowercase())
        .chain(targeted.into_iter().map(str::to_owned))
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
        assert_eq!(span_directives("info"), "info");
        assert_eq!(span_directives("warn"), "info");
        assert_eq!(span_directives("off"), "info");
        assert_eq!(span_directives("debug"), "debug");
        assert_eq!(span_directives("warn,sqlx=off"), "info,sqlx=off");
        assert_eq!(
            span_directives("eventsource=debug"),
            "info,eventsource=debug"
        );
        assert_eq!(span_directives("trace, hyper=info"), "trace,hyper=info");
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
        assert_eq!(filter.default_level(), Some(LevelFilter::TRACE));
        for target in UNTRACED_TARGETS {
            assert!(
                !filter.would_enable(target, &tracing::Level::ERROR),
                "{target}"
            );
        }
        assert!(filter.would_enable("eventsource", &tracing::Level::TRACE));
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
