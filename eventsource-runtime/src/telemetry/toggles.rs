//! The process-wide switches. Per-component switches are `enable_tracing` on each
//! component; per-call switches are `#[traced(enabled = ...)]`.

use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that turns tracing off for the process: `off`, `false`, `0`
/// or `disabled` (any case). Read once, on first use.
pub const ENV_SWITCH: &str = "EVENTSOURCE_TRACING";

const UNSET: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

static TRACING: AtomicU8 = AtomicU8::new(UNSET);
static PROJECTIONS: AtomicU8 = AtomicU8::new(UNSET);

/// Whether the process-wide switch lets telemetry through (one relaxed atomic load).
#[inline]
#[must_use]
pub fn is_enabled() -> bool {
    match TRACING.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => init_from_env(),
    }
}

#[cold]
fn init_from_env() -> bool {
    let off = std::env::var(ENV_SWITCH).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "off" | "false" | "0" | "disabled" | "no"
        )
    });
    // A concurrent `set_enabled` wins over the environment.
    let _ = TRACING.compare_exchange(
        UNSET,
        if off { OFF } else { ON },
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    TRACING.load(Ordering::Relaxed) == ON
}

/// Turns telemetry on or off for the whole process (overrides [`ENV_SWITCH`]).
pub fn set_enabled(enabled: bool) {
    TRACING.store(if enabled { ON } else { OFF }, Ordering::Relaxed);
}

/// Forgets [`set_enabled`]: the next check reads [`ENV_SWITCH`] again.
pub fn reset() {
    TRACING.store(UNSET, Ordering::Relaxed);
    PROJECTIONS.store(UNSET, Ordering::Relaxed);
}

/// Overrides every projection's own `enable_tracing` (projections are off by default):
/// `Some(true)` traces them all, `Some(false)` none, `None` lets each decide.
pub fn set_projection_tracing(enabled: Option<bool>) {
    let state = match enabled {
        None => UNSET,
        Some(true) => ON,
        Some(false) => OFF,
    };
    PROJECTIONS.store(state, Ordering::Relaxed);
}

/// Whether a projection whose own switch says `own` is traced.
#[inline]
#[must_use]
pub fn projection_enabled(own: bool) -> bool {
    is_enabled()
        && match PROJECTIONS.load(Ordering::Relaxed) {
            ON => true,
            OFF => false,
            _ => own,
        }
}
