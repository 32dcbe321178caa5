//! The registry of watched components and the report it makes of them.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use serde::Serialize;

use super::{ComponentHealth, ReportsHealth, Watchable};

/// The components whose health one report gathers. Cheap to clone (clones share the list);
/// `Send + Sync`, so a readiness endpoint's task can keep one.
#[derive(Clone, Default)]
pub struct HealthRegistry {
    components: Arc<RwLock<Vec<Arc<dyn ReportsHealth>>>>,
}

impl fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self
            .components
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("HealthRegistry")
            .field("components", &count)
            .finish()
    }
}

impl HealthRegistry {
    /// A registry watching nothing yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Watches a runner, relay or consumer group (anything [`Watchable`]); it reports in
    /// the order watched.
    pub fn watch(&self, component: &(impl Watchable + ?Sized)) {
        self.register(component.health_reporter());
    }

    /// Adds a reporter of your own (any [`ReportsHealth`]).
    pub fn register(&self, reporter: Arc<dyn ReportsHealth>) {
        self.components
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(reporter);
    }

    /// Every watched component's health, asked now (their lags measured one after the
    /// other: a store query or a broker call each).
    pub async fn report(&self) -> HealthReport {
        let reporters: Vec<Arc<dyn ReportsHealth>> = self
            .components
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut components = Vec::with_capacity(reporters.len());
        for reporter in reporters {
            components.push(reporter.health().await);
        }
        HealthReport {
            at: SystemTime::now(),
            components,
        }
    }
}

/// The health of every watched component at one moment: a table when printed, JSON when
/// serialized (`{"ready": .., "at": .., "components": [..]}`).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    at: SystemTime,
    components: Vec<ComponentHealth>,
}

impl HealthReport {
    /// Each component's health, in the order watched.
    #[must_use]
    pub fn components(&self) -> &[ComponentHealth] {
        &self.components
    }

    /// The component named `name`, if watched.
    #[must_use]
    pub fn component(&self, name: &str) -> Option<&ComponentHealth> {
        self.components.iter().find(|c| c.name == name)
    }

    /// When the report was made.
    #[must_use]
    pub fn at(&self) -> SystemTime {
        self.at
    }

    /// Whether the process is ready to serve: every component is following, caught up,
    /// stopped as asked, or a standby (waiting for its lease, or lost it to another
    /// replica). One starting, catching up, retrying or failed makes it not ready (see
    /// [`ComponentState::is_ready`](super::ComponentState::is_ready)); lag itself does not
    /// count: a rule on lag is the application's (read [`components`](Self::components)).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.components.iter().all(|c| c.state.is_ready())
    }
}

impl Serialize for HealthReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let at: chrono::DateTime<chrono::Utc> = self.at.into();
        let mut report = serializer.serialize_struct("HealthReport", 3)?;
        report.serialize_field("ready", &self.is_ready())?;
        report.serialize_field(
            "at",
            &at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )?;
        report.serialize_field("components", &self.components)?;
        report.end()
    }
}

impl fmt::Display for HealthReport {
    /// One line per component under a header, then each split component's segments, then
    /// the last errors:
    ///
    /// ```text
    /// kind            name           state              lease     lag (events)  oldest (s)  parked
    /// projection      OrderList      following          held                 0       0.000       0
    /// projection      Shipments      following          held                 3       0.020       0
    /// projection `Shipments` segments:
    ///   0/2     owner web-1 epoch 1 checkpoint 120 lag 0 events, oldest 0.000 s parked 0
    ///   1/2     owner web-2 epoch 3 checkpoint 117 lag 3 events, oldest 0.020 s parked 0
    /// projection `OrderList` waits on the high-water mark at position 124: held by session 4242 (billing) from 10.0.0.7 for 7.5 s
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "health: {}",
            if self.is_ready() {
                "ready"
            } else {
                "not ready"
            }
        )?;
        let width = self
            .components
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(4);
        writeln!(
            f,
            "{:<15} {:<width$} {:<18} {:<9} {:>12} {:>11} {:>7}",
            "kind", "name", "state", "lease", "lag (events)", "oldest (s)", "parked"
        )?;
        for c in &self.components {
            let (events, age) = match c.lag {
                Some(lag) => (
                    lag.events.to_string(),
                    format!("{:.3}", lag.oldest_age.as_secs_f64()),
                ),
                None => ("?".to_owned(), "?".to_owned()),
            };
            writeln!(
                f,
                "{:<15} {:<width$} {:<18} {:<9} {:>12} {:>11} {:>7}",
                c.kind.as_str(),
                c.name,
                c.state.as_str(),
                c.lease.as_str(),
                events,
                age,
                c.parked
            )?;
        }
        for c in self.components.iter().filter(|c| !c.segments.is_empty()) {
            writeln!(f, "{} `{}` segments:", c.kind, c.name)?;
            for s in &c.segments {
                let lag = s.lag.map_or_else(|| "?".to_owned(), |lag| lag.to_string());
                writeln!(
                    f,
                    "  {:<7} owner {}{} epoch {} checkpoint {} lag {} parked {}",
                    s.segment,
                    s.owner.as_deref().unwrap_or("-"),
                    if s.expired { " (expired)" } else { "" },
                    s.epoch,
                    s.checkpoint,
                    lag,
                    s.parked
                )?;
            }
        }
        for c in &self.components {
            if let Some(holder) = &c.mark_holder {
                writeln!(
                    f,
                    "{} `{}` waits on the high-water mark at position {}: held by session {}{}{} for {:.1} s",
                    c.kind,
                    c.name,
                    holder.position,
                    holder.process_id,
                    holder
                        .application
                        .as_deref()
                        .map_or_else(String::new, |name| format!(" ({name})")),
                    holder
                        .client
                        .as_deref()
                        .map_or_else(String::new, |client| format!(" from {client}")),
                    holder.held_for().unwrap_or_default().as_secs_f64(),
                )?;
            }
        }
        for c in &self.components {
            if let Some(error) = &c.last_error {
                let at: chrono::DateTime<chrono::Utc> = error.at.into();
                writeln!(
                    f,
                    "{} `{}` last error at {}: {}",
                    c.kind,
                    c.name,
                    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    error.message
                )?;
            }
        }
        Ok(())
    }
}
