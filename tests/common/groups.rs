//! A consumer group of any broker running in a task of its own ([`Running`]), a handler
//! that counts its calls ([`counting`]), and a bounded wait for what they did ([`until`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use eventsource_runtime::bus::{BusError, HandlerError, RunnableGroup, Subscribe};
use tokio::sync::oneshot;

/// A consumer group running in a task of its own, until [`Running::stop`].
pub struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), BusError>>,
}

impl Running {
    /// Declares `group` (it must be accepted) and runs it.
    pub async fn start<G>(group: &G) -> Self
    where
        G: RunnableGroup + Clone + Send + Sync + 'static,
    {
        group.declare().await.expect("the group declared");
        Self::run(group)
    }

    /// Runs `group`, which declares what it needs itself.
    pub fn run<G>(group: &G) -> Self
    where
        G: RunnableGroup + Clone + Send + Sync + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let group = group.clone();
        let task = tokio::spawn(async move { group.run(stopped).await });
        Self { stop, task }
    }

    /// Stops the group gracefully, and checks that it stopped cleanly.
    pub async fn stop(self) {
        self.stopping()
            .await
            .expect("joined")
            .expect("stopped cleanly");
    }

    /// Asks for a graceful stop; the task returned ends when the group stopped.
    pub fn stopping(self) -> tokio::task::JoinHandle<Result<(), BusError>> {
        let _ = self.stop.send(());
        self.task
    }

    /// Ends the group the hard way: no commit, no acknowledgement, no goodbye.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Waits, polling every 10 ms for up to `patience`, until `done` holds; else panics
/// naming `what`.
pub async fn until(what: &str, patience: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out ({patience:?}) waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A handler named `name` on `group` that counts its calls and fails the first `failures`
/// of them: the count.
pub fn counting(group: &impl Subscribe, name: &'static str, failures: usize) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    group.subscribe_fn(name, move |_event| {
        let call = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if call < failures {
                Err(HandlerError::new(format!("{name} failed (call {call})")))
            } else {
                Ok(())
            }
        }
    });
    calls
}
