//! The session holding a store's high-water mark back, as a runner's or relay's health
//! sees it: named in the report, a WARN line, and the `eventsource.store.mark_held` gauge.

use super::{ComponentKind, instrument};
use crate::store::{EventStore, MarkHolder};
use crate::telemetry::otel::log::log_warn;

/// The session holding `store`'s high-water mark back, when it has for longer than
/// [`MARK_HELD_WARN_AFTER`](crate::store::MARK_HELD_WARN_AFTER), asked now (one query on
/// PostgreSQL, none on the other stores) for the health of the component `kind` `name`
/// reading it. Records how long the mark has been held (0 when nothing holds it); logs a
/// WARN line naming a late holder. A store that cannot be asked reports none and records
/// nothing: the lag and the last error say that it cannot be reached.
pub(crate) async fn late_mark_holder(
    store: &dyn EventStore,
    kind: ComponentKind,
    name: &str,
) -> Option<MarkHolder> {
    let holder = store.mark_holder().await.ok()?;
    let held = holder
        .as_ref()
        .and_then(MarkHolder::held_for)
        .unwrap_or_default();
    instrument::record_mark_held(kind, name, held);
    let late = holder.filter(MarkHolder::is_late)?;
    let (component, position, pid) = (kind.as_str(), late.position, late.process_id);
    let application = late.application.as_deref().unwrap_or("-");
    let client = late.client.as_deref().unwrap_or("-");
    let held_seconds = held.as_secs_f64();
    log_warn!(
        component,
        name,
        position,
        pid,
        application,
        client,
        held_seconds,
        "the store's high-water mark is held back by session {pid} ({application}, from \
         {client}) for {held_seconds:.1} s: {component} `{name}` reads nothing stored after \
         position {position} until that transaction ends"
    );
    Some(late)
}
