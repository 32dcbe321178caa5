//! How the examples end: telemetry shut down on purpose (what is buffered exported, and its
//! lines written, before the error), and an error printed for a person: one line,
//! `error: outer: inner: ...`, each cause once.

use std::error::Error;
use std::process::ExitCode;

use eventsource_runtime::telemetry::TelemetryGuard;

/// Shuts `telemetry` down, then prints the error of `outcome`, if any, as one line.
pub fn finish(telemetry: TelemetryGuard, outcome: Result<(), Box<dyn Error>>) -> ExitCode {
    telemetry.shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", chain(&*error));
            ExitCode::FAILURE
        }
    }
}

/// An error and its sources, `outer: inner: ...`; a cause whose text the line already ends
/// with (an error that also prints its source) is not said twice.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
