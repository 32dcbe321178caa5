//! Span capture that does not depend on what other tests in the binary do.
//!
//! Two process-wide facts of `tracing` and OpenTelemetry make a per-thread capture flaky:
//!
//! - `tracing` caches, per callsite and for the whole process, whether any subscriber wants
//!   it. While only one scoped subscriber has ever been registered, the first thread to
//!   reach a callsite decides that cache from *its own* default: a test thread with no
//!   subscriber fixes it at "never", and the capture on another thread then misses that
//!   span for good.
//! - Spans made on a thread with no subscriber (a `tokio::spawn`ed task on a worker
//!   thread) are not recorded at all.
//!
//! So the first capture installs one global subscriber (registry + eventsource's layer)
//! for the whole binary, once: every callsite's interest is then answered by it, on every
//! thread, and never cached as "never". Its tracer exports through a [`Router`] that hands
//! each finished span to the capture that owns its trace (see [`SpanCapture`]); spans of
//! no capture are dropped.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry::trace::{Span as _, SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt as _;

use super::spans::{CapturedSpans, OpenSpan};

/// What one capture has seen.
#[derive(Debug, Default)]
struct Sink {
    finished: Vec<SpanData>,
    /// Spans of this capture's traces started and not yet ended, by id.
    open: HashMap<SpanId, OpenSpan>,
    /// Spans this capture may own but could not be told apart from another capture's.
    ambiguous: Vec<String>,
}

/// One capture as the router knows it.
#[derive(Debug)]
struct Owner {
    sink: Mutex<Sink>,
    /// Signalled whenever a span of this capture ends.
    ended: Condvar,
    thread: ThreadId,
}

impl Owner {
    fn lock(&self) -> MutexGuard<'_, Sink> {
        self.sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Which capture owns which trace, thread and tokio runtime.
#[derive(Debug, Default)]
struct Routes {
    traces: HashMap<TraceId, Weak<Owner>>,
    threads: HashMap<ThreadId, Vec<Weak<Owner>>>,
    runtimes: HashMap<tokio::runtime::Id, Vec<Weak<Owner>>>,
}

impl Routes {
    /// Forgets the routes of dropped captures.
    fn prune(&mut self) {
        self.traces.retain(|_, owner| owner.strong_count() > 0);
        for owners in self.threads.values_mut().chain(self.runtimes.values_mut()) {
            owners.retain(|owner| owner.strong_count() > 0);
        }
        self.threads.retain(|_, owners| !owners.is_empty());
        self.runtimes.retain(|_, owners| !owners.is_empty());
    }
}

/// The span processor of the one global tracer: hands spans to their capture.
#[derive(Debug, Default)]
pub(super) struct Router {
    routes: Mutex<Routes>,
}

/// The live captures `owners` (several: ambiguous).
fn live(owners: Option<&Vec<Weak<Owner>>>) -> Vec<Arc<Owner>> {
    owners
        .into_iter()
        .flatten()
        .filter_map(Weak::upgrade)
        .collect()
}

impl Router {
    fn routes(&self) -> MutexGuard<'_, Routes> {
        self.routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The capture a span starting now belongs to: its trace's (a child, whatever the
    /// thread), else this thread's innermost capture, else the capture made in the tokio
    /// runtime this thread runs (a task spawned on a worker thread), else the capture of a
    /// trace it links to. Several captures claiming one runtime: ambiguous, reported to each.
    fn owner_of(&self, span: &opentelemetry_sdk::trace::Span) -> Option<Arc<Owner>> {
        let trace_id = span.span_context().trace_id();
        let mut routes = self.routes();
        if let Some(owner) = routes.traces.get(&trace_id).and_then(Weak::upgrade) {
            return Some(owner);
        }
        let thread = std::thread::current().id();
        let runtime = tokio::runtime::Handle::try_current().ok().map(|r| r.id());
        let mut owner = live(routes.threads.get(&thread)).pop();
        if let (Some(owner), Some(runtime)) = (&owner, runtime) {
            // A capture made before its test built a runtime claims it on first use.
            let claimants = routes.runtimes.entry(runtime).or_default();
            if !claimants
                .iter()
                .any(|c| Weak::ptr_eq(c, &Arc::downgrade(owner)))
            {
                claimants.push(Arc::downgrade(owner));
            }
        }
        if owner.is_none()
            && let Some(runtime) = runtime
        {
            let claimants = live(routes.runtimes.get(&runtime));
            match claimants.as_slice() {
                [one] => owner = Some(Arc::clone(one)),
                [] => {}
                // Nested captures of one test: the innermost.
                [first, .., last] if claimants.iter().all(|c| c.thread == first.thread) => {
                    owner = Some(Arc::clone(last));
                }
                many => {
                    let name = span
                        .exported_data()
                        .map_or_else(String::new, |data| data.name.into_owned());
                    for claimant in many {
                        claimant.lock().ambiguous.push(name.clone());
                    }
                }
            }
        }
        if owner.is_none()
            && let Some(data) = span.exported_data()
        {
            owner = data.links.links.iter().find_map(|link| {
                routes
                    .traces
                    .get(&link.span_context.trace_id())
                    .and_then(Weak::upgrade)
            });
        }
        if let Some(owner) = &owner {
            routes.traces.insert(trace_id, Arc::downgrade(owner));
        }
        owner
    }
}

impl SpanProcessor for Router {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {
        let Some(owner) = self.owner_of(span) else {
            return;
        };
        let name = span
            .exported_data()
            .map_or_else(String::new, |data| data.name.into_owned());
        let thread = std::thread::current().id();
        owner.lock().open.insert(
            span.span_context().span_id(),
            OpenSpan {
                name,
                other_thread: thread != owner.thread,
            },
        );
    }

    fn on_end(&self, span: SpanData) {
        let owner = self
            .routes()
            .traces
            .get(&span.span_context.trace_id())
            .and_then(Weak::upgrade);
        if let Some(owner) = owner {
            let mut sink = owner.lock();
            sink.open.remove(&span.span_context.span_id());
            sink.finished.push(span);
            drop(sink);
            owner.ended.notify_all();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The one subscriber of every capture, and how it was installed.
struct Installed {
    router: Arc<Router>,
    dispatch: tracing::Dispatch,
    /// Whether it is the global default; if another global default was there first, each
    /// capture sets it as its thread's default instead (see [`capture`]).
    global: bool,
    /// Keeps the tracer's processor alive.
    _provider: SdkTracerProvider,
}

/// A [`Router`] wrapper the provider owns (the processor must be `'static`).
#[derive(Debug)]
struct SharedRouter(Arc<Router>);

impl SpanProcessor for SharedRouter {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.0.on_start(span, cx);
    }
    fn on_end(&self, span: SpanData) {
        self.0.on_end(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn installed() -> &'static Installed {
    static INSTALLED: OnceLock<Installed> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let router = Arc::new(Router::default());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(SharedRouter(Arc::clone(&router)))
            .build();
        let layer = crate::telemetry::layer(provider.tracer("eventsource-test"));
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let global = tracing::dispatcher::set_global_default(dispatch.clone()).is_ok();
        Installed {
            router,
            dispatch,
            global,
            _provider: provider,
        }
    })
}

/// Spans of the test that made the capture, from any thread, while the capture lives.
///
/// A span belongs to the capture when it is in a trace the capture owns, on whatever
/// thread it starts or ends. The capture owns the traces begun:
/// - on the thread that made it (the test's thread);
/// - inside the tokio runtime that thread ran when it made the capture (or first started a
///   span under it): `tokio::spawn`ed tasks on a multi-thread runtime's workers, and
///   `spawn_blocking` threads;
/// - by a span linked to a trace it owns (a projection's or redelivery's new root).
///
/// A runtime or `#[traced]` span starts when it is made; a `tracing` span is handed to
/// OpenTelemetry when first entered (or when it closes, if never entered), and the thread
/// doing that is the one that counts for a new trace.
///
/// Other tests' spans never reach it, and it does not depend on which tests of the binary
/// ran before or beside it. A span of the test's traces still running when the spans are
/// read is listed in failure messages ([`CapturedSpans::open`]); [`wait_spans`](Self::wait_spans)
/// waits for them. A root span on a runtime that two live captures claim (a runtime shared by
/// two tests) cannot be told apart: [`spans`](Self::spans) then panics naming it.
///
/// ```
/// use eventsource_runtime::testing::capture;
///
/// let capture = capture();
/// tracing::info_span!("outer").in_scope(|| tracing::info_span!("inner").in_scope(|| {}));
/// let spans = capture.spans();
/// spans.assert_child_of("inner", "outer");
/// assert!(spans.is_root(spans.get("outer")));
/// ```
#[must_use = "spans are captured only while the capture lives"]
pub struct SpanCapture {
    owner: Arc<Owner>,
    _guard: Option<DefaultGuard>,
}

impl std::fmt::Debug for SpanCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanCapture").finish_non_exhaustive()
    }
}

/// Starts capturing the spans of this test (this thread, and what it runs elsewhere: see
/// [`SpanCapture`]).
///
/// The first capture installs the capturing subscriber as the binary's global `tracing`
/// default, once. When the binary already has another global default (a test called
/// `telemetry::init()` first), the capture sets it as this thread's default instead and
/// rebuilds `tracing`'s interest cache, which is correct for single-thread tests only.
pub fn capture() -> SpanCapture {
    let installed = installed();
    let thread = std::thread::current().id();
    let owner = Arc::new(Owner {
        sink: Mutex::new(Sink::default()),
        ended: Condvar::new(),
        thread,
    });
    let guard = (!installed.global).then(|| {
        let guard = tracing::dispatcher::set_default(&installed.dispatch);
        tracing::callsite::rebuild_interest_cache();
        guard
    });
    {
        let mut routes = installed.router.routes();
        routes.prune();
        routes
            .threads
            .entry(thread)
            .or_default()
            .push(Arc::downgrade(&owner));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            routes
                .runtimes
                .entry(runtime.id())
                .or_default()
                .push(Arc::downgrade(&owner));
        }
    }
    SpanCapture {
        owner,
        _guard: guard,
    }
}

impl SpanCapture {
    /// The spans of the test's traces finished so far, in the order they ended.
    ///
    /// # Panics
    /// When a span could not be attributed to one capture (a tokio runtime shared by two
    /// live captures), naming it: such a test would otherwise miss spans silently.
    #[track_caller]
    #[must_use]
    pub fn spans(&self) -> CapturedSpans {
        let sink = self.owner.lock();
        assert!(
            sink.ambiguous.is_empty(),
            "spans {:?} started on a tokio runtime that several live captures claim, so \
             they could belong to this test or another: give each test its own runtime \
             (`#[tokio::test]` does), or start them inside a span of this test",
            sink.ambiguous
        );
        let mut open: Vec<OpenSpan> = sink.open.values().cloned().collect();
        open.sort_by(|a, b| a.name.cmp(&b.name));
        CapturedSpans::with_open(sink.finished.clone(), open)
    }

    /// Waits until no span of the test's traces is still running (spawned tasks finishing
    /// on other threads), then returns the spans.
    ///
    /// ```
    /// use std::time::Duration;
    /// use eventsource_runtime::testing::capture;
    ///
    /// let capture = capture();
    /// let span = tracing::info_span!("job");
    /// span.in_scope(|| {}); // started here: this test's
    /// let worker = std::thread::spawn(move || drop(span)); // ended there
    /// let spans = capture.wait_spans(Duration::from_secs(5));
    /// assert_eq!(spans.names(), ["job"]);
    /// # worker.join().unwrap();
    /// ```
    ///
    /// # Panics
    /// When spans are still running after `timeout`, naming them.
    #[track_caller]
    #[must_use]
    pub fn wait_spans(&self, timeout: Duration) -> CapturedSpans {
        let deadline = Instant::now() + timeout;
        let mut sink = self.owner.lock();
        while !sink.open.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                let names: Vec<&str> = sink.open.values().map(|s| s.name.as_str()).collect();
                panic!("spans of this test still running after {timeout:?}: {names:?}");
            }
            sink = self
                .owner
                .ended
                .wait_timeout(sink, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        drop(sink);
        self.spans()
    }

    /// Forgets the spans captured so far.
    pub fn clear(&self) {
        self.owner.lock().finished.clear();
    }
}

impl Drop for SpanCapture {
    fn drop(&mut self) {
        // The routes hold it weakly; prune them so the maps do not grow over a long run.
        installed().router.routes().prune();
    }
}
