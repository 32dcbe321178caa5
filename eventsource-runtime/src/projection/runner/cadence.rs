//! When a runner saves its checkpoint while it catches up: in the background, one save at a
//! time, while the next batch is handled; waited for only when the events handled since the
//! last completed save would pass the documented window.

use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Instant;

use super::Halt;
use super::settings::Settings;
use crate::store::StoreError;

/// A checkpoint save in flight.
pub(super) type Saving<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// The position a runner saved last, the save in flight, and the events handled since each.
pub(super) struct Cadence<'a> {
    saved: u64,
    /// When the last save started.
    at: Instant,
    /// Events handled after `saved`.
    since_saved: usize,
    /// Events handled after the position being saved (after `saved` when none is).
    since_started: usize,
    in_flight: Option<(u64, Saving<'a>)>,
}

impl<'a> Cadence<'a> {
    /// Nothing handled since `position` was loaded.
    pub(super) fn since(position: u64) -> Self {
        Self {
            saved: position,
            at: Instant::now(),
            since_saved: 0,
            since_started: 0,
            in_flight: None,
        }
    }

    /// The position saved last.
    pub(super) fn saved_at(&self) -> u64 {
        self.saved
    }

    /// `position` was saved (no save in flight: [`settle`](Self::settle) first).
    pub(super) fn saved(&mut self, position: u64) {
        self.saved = position;
        self.at = Instant::now();
        self.since_saved = 0;
        self.since_started = 0;
    }

    /// A batch of `events` was handled.
    pub(super) fn handled(&mut self, events: usize) {
        self.since_saved = self.since_saved.saturating_add(events);
        self.since_started = self.since_started.saturating_add(events);
    }

    /// Whether handling `events` more must wait for the save in flight: the events a kill
    /// would hand over again stay fewer than the larger of `max_unsaved_events` and
    /// `checkpoint_every`, plus two batches.
    pub(super) fn must_settle(&self, events: usize, settings: &Settings) -> bool {
        let window = settings
            .max_unsaved
            .max(settings.checkpoint_every)
            .saturating_add(settings.batch_size.saturating_mul(2));
        self.in_flight.is_some() && self.since_saved.saturating_add(events) >= window
    }

    /// Starts saving `position` (with `save`) unless a save is in flight, or it is not due:
    /// `checkpoint_every` events handled since the last save, or `checkpoint_interval`
    /// passed.
    pub(super) fn start_if_due(
        &mut self,
        position: u64,
        settings: &Settings,
        save: impl FnOnce() -> Saving<'a>,
    ) {
        let due = self.since_started >= settings.checkpoint_every
            || self.at.elapsed() >= settings.checkpoint_interval;
        if self.in_flight.is_none() && position > self.saved && due {
            self.in_flight = Some((position, save()));
            self.at = Instant::now();
            self.since_started = 0;
        }
    }

    /// Waits for the save in flight, if any. `Halt::LeaseLost` when the lease is lost; a
    /// save that failed otherwise is tried again by the next one.
    pub(super) async fn settle(&mut self) -> Result<(), Halt> {
        let Some((position, save)) = self.in_flight.take() else {
            return Ok(());
        };
        let saved = save.await;
        self.finished(position, saved)
    }

    /// `work`'s output, the save in flight polled along with it (first: its request goes out
    /// before `work` runs); `Halt::LeaseLost` beside it when that save found the lease lost.
    pub(super) async fn while_saving<W: Future>(
        &mut self,
        work: W,
    ) -> (W::Output, Result<(), Halt>) {
        let mut work = pin!(work);
        let mut finished = None;
        let in_flight = &mut self.in_flight;
        let output = std::future::poll_fn(|cx| {
            if finished.is_none()
                && let Some((position, save)) = in_flight.as_mut()
                && let Poll::Ready(saved) = save.as_mut().poll(cx)
            {
                finished = Some((*position, saved));
            }
            work.as_mut().poll(cx)
        })
        .await;
        let outcome = match finished {
            Some((position, saved)) => {
                self.in_flight = None;
                self.finished(position, saved)
            }
            None => Ok(()),
        };
        (output, outcome)
    }

    fn finished(&mut self, position: u64, saved: Result<(), StoreError>) -> Result<(), Halt> {
        match saved {
            Ok(()) => {
                self.saved = position;
                self.since_saved = self.since_started;
                Ok(())
            }
            Err(StoreError::LeaseLost { .. }) => Err(Halt::LeaseLost),
            // Counted as not started: the next save is due at once.
            Err(_) => {
                self.since_started = self.since_saved;
                Ok(())
            }
        }
    }
}

/// The outputs of `read_ahead` and `handle`, run at once on this task and polled in that
/// order: a read's request goes out before the handler runs (a handler that waits for
/// nothing runs a whole batch in one poll). A handling that fails (a shutdown, a lost
/// lease, a failed handler) does not wait for the read: it is dropped, so a read stuck on
/// a silent network cannot hold a stopping runner.
pub(super) async fn alongside<R, T, E>(
    read_ahead: impl Future<Output = Option<R>>,
    handle: impl Future<Output = Result<T, E>>,
) -> (Option<R>, Result<T, E>) {
    let (mut first, mut second) = (pin!(read_ahead), pin!(handle));
    let (mut read, mut handled) = (None, None);
    std::future::poll_fn(|cx| {
        if read.is_none()
            && let Poll::Ready(output) = first.as_mut().poll(cx)
        {
            read = Some(output);
        }
        if handled.is_none()
            && let Poll::Ready(output) = second.as_mut().poll(cx)
        {
            handled = Some(output);
        }
        match (read.take(), handled.take()) {
            (_, Some(Err(failed))) => Poll::Ready((None, Err(failed))),
            (Some(output), Some(Ok(done))) => Poll::Ready((output, Ok(done))),
            (first, second) => {
                (read, handled) = (first, second);
                Poll::Pending
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings(checkpoint_every: usize, max_unsaved: usize, batch_size: usize) -> Settings {
        Settings {
            checkpoint_every,
            max_unsaved,
            batch_size,
            checkpoint_interval: Duration::from_secs(3600),
            ..Settings::default()
        }
    }

    #[tokio::test]
    async fn a_save_in_flight_is_waited_for_only_past_the_window() {
        // The window: 10 events, plus two batches of 4.
        let settings = settings(1, 10, 4);
        let mut cadence = Cadence::since(0);
        cadence.handled(4);
        let (saved, landed) = tokio::sync::oneshot::channel::<()>();
        cadence.start_if_due(4, &settings, || {
            Box::pin(async move {
                let _ = landed.await;
                Ok(())
            })
        });
        let mut second = false;
        cadence.start_if_due(4, &settings, || {
            second = true;
            Box::pin(async { Ok(()) })
        });
        assert!(!second, "one save at a time");
        cadence.handled(4);
        cadence.handled(4);
        assert!(
            !cadence.must_settle(4, &settings),
            "16 events: within the window"
        );
        assert!(cadence.must_settle(8, &settings), "20 events: past it");
        saved.send(()).unwrap();
        assert!(cadence.settle().await.is_ok());
        assert_eq!(cadence.saved_at(), 4);
        assert!(!cadence.must_settle(100, &settings), "nothing in flight");
    }

    #[tokio::test]
    async fn a_failed_save_is_due_again_and_a_lost_lease_stops() {
        let settings = settings(8, 8, 4);
        let mut cadence = Cadence::since(0);
        cadence.handled(4);
        let mut started = false;
        cadence.start_if_due(4, &settings, || {
            started = true;
            Box::pin(async { Ok(()) })
        });
        assert!(!started, "4 events: not due before 8");
        cadence.handled(4);
        cadence.start_if_due(8, &settings, || {
            Box::pin(async { Err(StoreError::Unavailable("down".into())) })
        });
        assert!(cadence.settle().await.is_ok());
        assert_eq!(cadence.saved_at(), 0, "not saved");
        cadence.start_if_due(8, &settings, || {
            Box::pin(async {
                Err(StoreError::LeaseLost {
                    projection: "p".to_owned(),
                })
            })
        });
        assert!(matches!(cadence.settle().await, Err(Halt::LeaseLost)));
    }
}
