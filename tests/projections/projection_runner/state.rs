//! Reading the runner's state while holding the projection.

use super::*;

// ---- Reading the runner's state while holding the projection. ------------------------------

#[tokio::test]
async fn checkpoint_and_parked_do_not_wait_for_the_projections_lock() {
    let store = InMemoryEventStore::new();
    append(&store, "o-1", 3).await;
    let checkpoints = InMemoryCheckpointStore::new();
    checkpoints
        .park("Holding", &ParkedEvent::new(2, "damaged"))
        .await
        .unwrap();

    // Built from the projection, and from a shared one; each has run once.
    let built = runner(&store, &checkpoints, Recorder::new("Holding"));
    let shared = ProjectionRunner::shared(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        Arc::new(tokio::sync::Mutex::new(Recorder::new("Holding"))),
    );
    assert_eq!(built.run_until_caught_up().await.unwrap(), 3);
    for runner in [&built, &shared] {
        let _held = runner.projection().lock().await;
        let (checkpoint, parked) = tokio::time::timeout(Duration::from_secs(5), async {
            (runner.checkpoint().await, runner.parked().await)
        })
        .await
        .expect("checkpoint() and parked() do not lock the projection");
        assert_eq!(checkpoint.unwrap(), 3);
        assert_eq!(
            parked
                .unwrap()
                .iter()
                .map(|p| p.position)
                .collect::<Vec<_>>(),
            [2]
        );
    }

    // A shared projection that was locked when its runner was built: the name is read at
    // the runner's first lock of it.
    let projection = Arc::new(tokio::sync::Mutex::new(Recorder::new("Holding")));
    let late = {
        let _held = projection.lock().await;
        ProjectionRunner::shared(
            Arc::new(store.clone()),
            Arc::new(checkpoints.clone()),
            Arc::clone(&projection),
        )
    };
    assert_eq!(late.checkpoint().await.unwrap(), 3);
    let _held = late.projection().lock().await;
    let checkpoint = tokio::time::timeout(Duration::from_secs(5), late.checkpoint())
        .await
        .expect("the name is kept after its first read");
    assert_eq!(checkpoint.unwrap(), 3);
}
