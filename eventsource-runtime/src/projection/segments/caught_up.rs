//! A split projection as a batch job: a worker that runs until every segment, whoever holds
//! it, has handled what the store held when it started.

use std::time::Duration;

use super::SegmentedRunner;
use crate::projection::Projection;
use crate::projection::runner::RunnerError;

impl<P: Projection> SegmentedRunner<P> {
    /// Runs this worker until every segment of the projection, whichever worker holds it,
    /// has handled the events stored when this was called, then stops it as
    /// [`run`](Self::run)'s shutdown does (checkpoints saved, claims released) and returns
    /// that position (0 for an empty store): a batch job (a rebuild, a backfill) split over
    /// workers, each running this. The segments are asked every
    /// [`rebalance_interval`](Self::rebalance_interval); stores that cannot be read meanwhile
    /// are waited for, as the segments' runners wait for them.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use eventsource_runtime::event::NewEvent;
    /// use eventsource_runtime::prelude::*;
    /// use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
    /// use eventsource_runtime::projection::runner::ProjectionRunner;
    /// use eventsource_runtime::projection::segments::InMemorySegmentClaims;
    ///
    /// #[derive(Default)]
    /// struct EventCounter { seen: u64 }
    ///
    /// #[eventsource_runtime::async_trait]
    /// impl Projection for EventCounter {
    ///     fn name(&self) -> &str { "EventCounter" }
    ///     async fn handle(&mut self, _event: &EventEnvelope) -> Result<(), ProjectionError> {
    ///         self.seen += 1;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryEventStore::new();
    /// for n in 0..10 {
    ///     let placed = NewEvent::new("OrderPlaced", 1, serde_json::json!({ "n": n }));
    ///     let stream = StreamId::new("Order", format!("o-{n}"));
    ///     store.append(&stream, ExpectedVersion::NoStream, vec![placed]).await?;
    /// }
    /// let worker = ProjectionRunner::new(
    ///     Arc::new(store),
    ///     Arc::new(InMemoryCheckpointStore::new()),
    ///     EventCounter::default(),
    /// )
    /// .segmented(Arc::new(InMemorySegmentClaims::new()), 4);
    /// assert_eq!(worker.run_until_caught_up().await?, 10);
    /// assert_eq!(worker.projection().lock().await.seen, 10);
    /// assert!(worker.held().is_empty(), "released");
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_until_caught_up(&self) -> Result<u64, RunnerError> {
        let head = self.head().await;
        self.run(self.handled_up_to(head)).await?;
        Ok(head)
    }

    /// Completes once every segment of the projection, whichever worker holds it, has
    /// handled the events stored when this was called, with that position: for
    /// [`run`](Self::run)'s shutdown, beside a signal (`tokio::select!` on both), when a
    /// worker must also stop on request. Asks the segments every
    /// [`rebalance_interval`](Self::rebalance_interval), waiting for stores that cannot be
    /// read.
    pub async fn caught_up(&self) -> u64 {
        let head = self.head().await;
        self.handled_up_to(head).await;
        head
    }

    /// The store's newest position (0: empty), asked until the store answers.
    async fn head(&self) -> u64 {
        loop {
            match self.template.store.head_position().await {
                Ok(head) => return head.unwrap_or(0),
                Err(_) => tokio::time::sleep(self.interval()).await,
            }
        }
    }

    /// Returns once the projection is split and no segment has an event at or below `head`
    /// after its checkpoint (an event after `head` is not waited for).
    async fn handled_up_to(&self, head: u64) {
        while !self.all_handled(head).await {
            tokio::time::sleep(self.interval().max(Duration::from_millis(10))).await;
        }
    }

    async fn all_handled(&self, head: u64) -> bool {
        let Ok(segments) = self.segments().await else {
            return false;
        };
        if segments.is_empty() {
            // Not split yet: nothing to wait for only when nothing was stored.
            return head == 0;
        }
        for status in segments {
            let next = self
                .template
                .store
                .read_segment(status.segment, status.checkpoint + 1, 1)
                .await;
            match next {
                Ok(next) if next.first().is_none_or(|event| event.position > head) => {}
                _ => return false,
            }
        }
        true
    }
}
