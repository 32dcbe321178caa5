//! A segment's runner that stops on an error records why under the segment's checkpoint,
//! for `status` and the console, until a worker claims the segment again.

use eventsource_runtime::projection::checkpoint::CheckpointStore as _;

use super::*;

/// Fails every call while `failing`.
struct Failing {
    failing: bool,
    handled: usize,
}

#[eventsource_runtime::async_trait]
impl Projection for Failing {
    fn name(&self) -> &str {
        "Failing"
    }

    async fn handle(&mut self, _event: &EventEnvelope) -> Result<(), ProjectionError> {
        if self.failing {
            return Err(ProjectionError::handler(std::io::Error::other(
                "read model down",
            )));
        }
        self.handled += 1;
        Ok(())
    }
}

fn failing_worker(
    store: &InMemoryEventStore,
    checkpoints: &InMemoryCheckpointStore,
    claims: &InMemorySegmentClaims,
    failing: bool,
) -> Arc<SegmentedRunner<Failing>> {
    let runner = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        Failing {
            failing,
            handled: 0,
        },
    )
    .poll_interval(Duration::from_millis(10))
    .max_attempts(1);
    Arc::new(
        runner
            .segmented(Arc::new(claims.clone()), 2)
            .claim_timeout(Duration::from_secs(60))
            .rebalance_interval(Duration::from_millis(20)),
    )
}

#[tokio::test]
async fn a_segment_that_stops_on_an_error_records_why_until_a_worker_claims_it_again() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let claims = InMemorySegmentClaims::new();
    seed(&store, 4, 1).await;
    // The segments' stops, by checkpoint name.
    let stops = async || {
        let records = checkpoints.checkpoints().await.unwrap();
        (records.into_iter())
            .filter_map(|r| Some((r.projection, r.stopped?)))
            .collect::<Vec<_>>()
    };

    let failing = failing_worker(&store, &checkpoints, &claims, true);
    let error = failing.run(std::future::pending::<()>()).await.unwrap_err();
    assert!(
        matches!(&error, RunnerError::HandlerFailed { .. }),
        "{error:?}"
    );
    // The segment that failed first stopped the worker; the other was stopped by it.
    let [(segment, stop)] = &stops().await[..] else {
        panic!("one stop, under the segment: {:?}", stops().await);
    };
    assert!(
        ["Failing[0/2]", "Failing[1/2]"].contains(&segment.as_str()),
        "{segment}"
    );
    assert_eq!(stop.error, format!("{error}: read model down"));

    let fixed = failing_worker(&store, &checkpoints, &claims, false);
    let (stop_it, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let fixed = Arc::clone(&fixed);
        async move { fixed.run(stopped).await }
    });
    wait_for(
        "the next worker handles",
        Duration::from_secs(5),
        async || fixed.projection().lock().await.handled == 4,
    )
    .await;
    assert_eq!(stops().await, [], "cleared by the worker that claimed it");
    stop_it.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(stops().await, [], "a graceful stop is not recorded");
}
