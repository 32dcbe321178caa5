//! The shutdown future of a [`ProjectionRunner::run`](super::ProjectionRunner::run),
//! checked between events and raced against the runner's waits.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};

/// The shutdown future of a [`ProjectionRunner::run`], polled at the runner's waits and
/// between events.
pub(super) struct Shutdown<'a> {
    signal: Option<Pin<&'a mut (dyn Future<Output = ()> + Send + 'a)>>,
    fired: bool,
}

impl<'a> Shutdown<'a> {
    pub(super) fn new(signal: Pin<&'a mut (dyn Future<Output = ()> + Send + 'a)>) -> Self {
        Self {
            signal: Some(signal),
            fired: false,
        }
    }

    pub(super) fn never() -> Self {
        Self {
            signal: None,
            fired: false,
        }
    }

    /// Whether shutdown was requested, without waiting.
    pub(super) fn requested(&mut self) -> bool {
        if !self.fired
            && let Some(signal) = &mut self.signal
        {
            let mut cx = Context::from_waker(Waker::noop());
            self.fired = signal.as_mut().poll(&mut cx).is_ready();
        }
        self.fired
    }

    /// `work`'s output, or `None` when shutdown comes first (`work` is then dropped).
    pub(super) async fn or<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        if self.fired {
            return None;
        }
        let Some(signal) = &mut self.signal else {
            return Some(work.await);
        };
        tokio::select! {
            biased;
            () = signal.as_mut() => {
                self.fired = true;
                None
            }
            output = work => Some(output),
        }
    }
}
