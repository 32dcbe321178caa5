//! Catch-up from a persisted checkpoint, live follow, rebuild.

use super::*;

// ---- Catch-up and restarts. ----------------------------------------------------------------

#[tokio::test]
async fn a_restarted_runner_resumes_from_the_persisted_checkpoint() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 3).await;
    append(&store, "o-2", 2).await;

    let first = Recorder::new("Orders");
    let reached = runner(&store, &checkpoints, first.clone())
        .batch_size(2)
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(reached, 5);
    assert_eq!(first.handled(), positions(1..=5));
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 5);

    // "Restart": new runner, new projection instance, same checkpoint store.
    append(&store, "o-1", 3).await;
    let second = Recorder::new("Orders");
    let restarted = runner(&store, &checkpoints, second.clone()).batch_size(2);
    assert_eq!(restarted.checkpoint().await.unwrap(), 5);
    assert_eq!(restarted.run_until_caught_up().await.unwrap(), 8);
    assert_eq!(
        second.handled(),
        positions(6..=8),
        "only the events after the checkpoint"
    );

    // Nothing new: nothing handled, same position.
    assert_eq!(restarted.run_until_caught_up().await.unwrap(), 8);
    assert_eq!(second.handled(), positions(6..=8));
}

#[tokio::test]
async fn a_runner_stopped_while_following_resumes_where_it_stopped() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 4).await;

    let first = Recorder::new("Orders");
    let running = runner(&store, &checkpoints, first.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move { running.run(stopped).await });
    eventually("the first run to catch up", || first.handled().len() == 4).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 4);

    append(&store, "o-1", 2).await;
    let second = Recorder::new("Orders");
    runner(&store, &checkpoints, second.clone())
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(second.handled(), positions(5..=6));
}

#[tokio::test]
async fn events_the_projection_does_not_handle_still_move_the_checkpoint() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let stream = StreamId::new("Order", "o-1");
    store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![
                event("OrderPlaced", 1),
                event("Ignored", 2),
                event("Ignored", 3),
            ],
        )
        .await
        .unwrap();
    let recorder = Recorder::new("Orders");
    assert_eq!(
        runner(&store, &checkpoints, recorder.clone())
            .run_until_caught_up()
            .await
            .unwrap(),
        3
    );
    assert_eq!(recorder.handled(), [1]);
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 3);
}

// ---- Live follow. --------------------------------------------------------------------------

#[tokio::test]
async fn appended_events_are_handled_promptly_thanks_to_the_append_signal() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let recorder = Recorder::new("Orders");
    // A poll interval far longer than the test: only the signal can wake the runner.
    let running =
        runner(&store, &checkpoints, recorder.clone()).poll_interval(Duration::from_secs(60));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move { running.run(stopped).await });

    for round in 1..=3_u64 {
        // Let the runner settle into its wait first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let appended = Instant::now();
        append(&store, "o-1", 1).await;
        eventually("the appended event", || {
            recorder.handled().len() as u64 == round
        })
        .await;
        assert!(
            appended.elapsed() < Duration::from_secs(2),
            "woken by the signal, not the 60 s poll"
        );
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops promptly on shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(recorder.handled(), positions(1..=3));
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 3);
}

/// The in-memory store without its append signal: followers can only poll.
#[derive(Debug, Clone)]
struct NoSignal(InMemoryEventStore);

impl Intercept for NoSignal {
    type Inner = InMemoryEventStore;
    fn inner(&self) -> &InMemoryEventStore {
        &self.0
    }
}

#[tokio::test]
async fn without_a_signal_the_runner_polls() {
    let store = InMemoryEventStore::new();
    let quiet = Over(NoSignal(store.clone()));
    assert!(quiet.appended_signal().is_none());
    let _: Option<AppendSignal> = store.appended_signal();
    let checkpoints = InMemoryCheckpointStore::new();
    let recorder = Recorder::new("Orders");
    let running = ProjectionRunner::new(
        Arc::new(quiet),
        Arc::new(checkpoints.clone()),
        recorder.clone(),
    )
    .poll_interval(Duration::from_millis(10));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move { running.run(stopped).await });
    tokio::time::sleep(Duration::from_millis(15)).await;
    append(&store, "o-1", 2).await;
    eventually("the polled events", || recorder.handled().len() == 2).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

// ---- Rebuild. ------------------------------------------------------------------------------

#[tokio::test]
async fn rebuild_resets_the_model_and_the_checkpoint_and_replays_everything() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 3).await;
    append(&store, "o-2", 3).await;
    let recorder = Recorder::new("Orders");
    let runner = runner(&store, &checkpoints, recorder.clone()).batch_size(4);
    assert_eq!(runner.run_until_caught_up().await.unwrap(), 6);
    assert_eq!(recorder.resets.load(Ordering::SeqCst), 0);

    assert_eq!(runner.rebuild().await.unwrap(), 6);
    assert_eq!(recorder.resets.load(Ordering::SeqCst), 1);
    assert_eq!(
        recorder.handled(),
        positions(1..=6),
        "cleared, then every event again"
    );
    assert_eq!(recorder.calls.lock().unwrap().len(), 12);
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 6);
}

#[tokio::test]
async fn a_failing_reset_stops_the_rebuild_with_the_checkpoint_at_zero() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 2).await;
    let mut recorder = Recorder::new("Orders");
    recorder.reset_fails = true;
    let runner = runner(&store, &checkpoints, recorder.clone());
    runner.run_until_caught_up().await.unwrap();
    let error = runner.rebuild().await.unwrap_err();
    assert!(
        matches!(&error, RunnerError::ResetFailed { projection, .. } if projection == "Orders"),
        "{error:?}"
    );
    assert_eq!(recorder.calls.lock().unwrap().len(), 2, "no replay");
    assert_eq!(
        checkpoints.load("Orders").await.unwrap(),
        0,
        "the next run replays everything"
    );
}
