//! One runner at a time per projection, also when a lease is lost.

use super::*;

// ---- One runner at a time. -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_never_handle_one_projection_at_once() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let mut recorder = Recorder::new("Orders");
    recorder.delay = Duration::from_millis(1);
    let all_handled = |recorder: &Recorder, last: u64| {
        let handled = recorder.handled();
        (1..=last).all(|p| handled.contains(&p))
    };

    // The first runner takes the lease...
    let (first_projection, second_projection) = (recorder.instance(), recorder.instance());
    let first = runner(&store, &checkpoints, first_projection.clone()).batch_size(3);
    let (stop_first, first_stopped) = oneshot::channel::<()>();
    let first = tokio::spawn(async move { first.run(first_stopped).await });
    append(&store, "o-0", 5).await;
    eventually("the first events", || all_handled(&recorder, 5)).await;

    // ...the second waits for it while events pour in from several writers.
    let second = runner(&store, &checkpoints, second_projection.clone()).batch_size(3);
    let (stop_second, second_stopped) = oneshot::channel::<()>();
    let second = tokio::spawn(async move { second.run(second_stopped).await });
    let writers: Vec<_> = (1..=4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move { append(&store, &format!("o-{w}"), 15).await })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    eventually("65 events", || all_handled(&recorder, 65)).await;
    assert!(
        second_projection.calls.lock().unwrap().is_empty(),
        "the second waits"
    );

    // A third runner cannot even catch up meanwhile.
    let third = runner(&store, &checkpoints, recorder.instance());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), third.run_until_caught_up())
            .await
            .is_err(),
        "waits for the lease"
    );

    // The first stops; the second takes over from the checkpoint.
    stop_first.send(()).unwrap();
    first.await.unwrap().unwrap();
    append(&store, "o-9", 20).await;
    eventually("the last 20 events", || all_handled(&recorder, 85)).await;
    stop_second.send(()).unwrap();
    second.await.unwrap().unwrap();

    assert_eq!(
        recorder.overlaps.load(Ordering::SeqCst),
        0,
        "never two handlers at once"
    );
    assert!(
        !second_projection.calls.lock().unwrap().is_empty(),
        "took over"
    );
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 85);
    // A runner that stops saves its checkpoint first: here nothing came twice.
    assert_eq!(recorder.handled(), positions(1..=85));
}

#[tokio::test]
async fn shutdown_while_waiting_for_the_lease_returns() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let _held = checkpoints
        .try_acquire("Orders")
        .await
        .unwrap()
        .expect("free");
    let recorder = Recorder::new("Orders");
    let waiting = runner(&store, &checkpoints, recorder.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move { waiting.run(stopped).await });
    append(&store, "o-1", 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        recorder.handled().is_empty(),
        "never while another holds the lease"
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A runner that waited for the lease waits its takeover grace after taking it before its
/// first handler call; one that takes a free lease starts at once.
#[tokio::test]
async fn a_runner_taking_over_waits_its_grace_before_the_first_event() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 2).await;
    let grace = Duration::from_secs(1);

    let free = Recorder::new("Free");
    let started = Instant::now();
    runner(&store, &checkpoints, free.clone())
        .takeover_grace(grace)
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(free.handled(), positions(1..=2));
    assert!(started.elapsed() < grace, "a free lease: no wait");

    let held = checkpoints
        .try_acquire("Orders")
        .await
        .unwrap()
        .expect("free");
    let recorder = Recorder::new("Orders");
    let waiting = runner(&store, &checkpoints, recorder.clone()).takeover_grace(grace);
    let task = tokio::spawn(async move { waiting.run_until_caught_up().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    held.release().await;
    let released = Instant::now();
    eventually("the events, once taken over", || {
        recorder.handled().len() == 2
    })
    .await;
    assert!(
        released.elapsed() >= grace,
        "handled {:?} after the release",
        released.elapsed()
    );
    task.await.unwrap().unwrap();
}

// ---- Lost leases. --------------------------------------------------------------------------

/// One lease of [`Losable`]: held until the test takes it away.
#[derive(Default)]
struct LeaseState {
    lost: AtomicBool,
    /// The real in-process lease, dropped when the lease is lost (as a database lock goes
    /// with its session), so that another runner can take the projection.
    inner: StdMutex<Option<Box<dyn ProjectionLease>>>,
}

struct LosableLease(Arc<LeaseState>);

#[eventsource_runtime::async_trait]
impl ProjectionLease for LosableLease {
    fn is_held(&self) -> bool {
        !self.0.lost.load(Ordering::SeqCst)
    }
    async fn release(self: Box<Self>) {
        let inner = self.0.inner.lock().unwrap().take();
        if let Some(inner) = inner {
            inner.release().await;
        }
    }
}

/// The in-memory checkpoint store whose leases the test can take away, as a database
/// session that ends takes its lock; it records every checkpoint save.
#[derive(Clone, Default)]
struct Losable {
    inner: InMemoryCheckpointStore,
    leases: Arc<StdMutex<Vec<Arc<LeaseState>>>>,
    saves: Arc<StdMutex<Vec<u64>>>,
}

impl Losable {
    /// Takes the newest lease away.
    fn lose_newest(&self) {
        let newest = self.leases.lock().unwrap().last().cloned().unwrap();
        newest.lost.store(true, Ordering::SeqCst);
        drop(newest.inner.lock().unwrap().take());
    }

    fn saves(&self) -> Vec<u64> {
        self.saves.lock().unwrap().clone()
    }
}

#[eventsource_runtime::async_trait]
impl CheckpointStore for Losable {
    async fn load(&self, projection: &str) -> Result<u64, StoreError> {
        self.inner.load(projection).await
    }
    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        self.saves.lock().unwrap().push(position);
        self.inner.save(projection, position).await
    }
    async fn reset(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        self.inner.reset(projection, position).await
    }
    async fn try_acquire(
        &self,
        projection: &str,
    ) -> Result<Option<Box<dyn ProjectionLease>>, StoreError> {
        let Some(inner) = self.inner.try_acquire(projection).await? else {
            return Ok(None);
        };
        let state = Arc::new(LeaseState {
            lost: AtomicBool::new(false),
            inner: StdMutex::new(Some(inner)),
        });
        self.leases.lock().unwrap().push(Arc::clone(&state));
        Ok(Some(Box::new(LosableLease(state))))
    }
    async fn park(&self, projection: &str, event: &ParkedEvent) -> Result<(), StoreError> {
        self.inner.park(projection, event).await
    }
    async fn parked(&self, projection: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        self.inner.parked(projection).await
    }
    async fn unpark(&self, projection: &str, position: u64) -> Result<bool, StoreError> {
        self.inner.unpark(projection, position).await
    }
}

fn losable_runner(
    store: &InMemoryEventStore,
    checkpoints: &Losable,
    projection: Recorder,
) -> ProjectionRunner<Recorder> {
    runner_on(store.clone(), checkpoints.clone(), projection)
        .poll_interval(Duration::from_millis(10))
}

#[tokio::test]
async fn a_lost_lease_stops_the_runner_before_its_next_handler_call_and_save() {
    LazyLock::force(&METRICS);
    let store = InMemoryEventStore::new();
    append(&store, "o-1", 6).await;
    let checkpoints = Losable::default();
    let losing = checkpoints.clone();
    // The lease is lost while event 3 is being handled.
    let recorder = Recorder::new("LostOrders").failing(move |e, _| {
        if e.position == 3 {
            losing.lose_newest();
        }
        false
    });

    let error = losable_runner(&store, &checkpoints, recorder.clone())
        .batch_size(2)
        .run_until_caught_up()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RunnerError::LeaseLost { projection } if projection == "LostOrders"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "projection `LostOrders` stopped: its lease was lost"
    );
    assert_eq!(
        recorder.handled(),
        positions(1..=3),
        "the handler running when the lease went finishes; no further call"
    );
    assert_eq!(
        checkpoints.saves(),
        [2],
        "no checkpoint saved after the loss (event 3 comes again to whoever takes over)"
    );
    assert_eq!(
        METRICS.total(
            attr::METRIC_PROJECTION_LEASE_LOST,
            &[(attr::METRIC_ATTR_PROJECTION_NAME, "LostOrders")]
        ),
        1
    );
    assert_eq!(
        METRICS.unit(attr::METRIC_PROJECTION_LEASE_LOST).as_deref(),
        Some("{lease}")
    );

    // The next runner takes the lease and carries on from the saved checkpoint.
    let next = Recorder::new("LostOrders");
    let reached = losable_runner(&store, &checkpoints, next.clone())
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(reached, 6);
    assert_eq!(next.handled(), positions(3..=6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_runner_that_loses_its_lease_waits_for_it_again() {
    LazyLock::force(&METRICS);
    let store = InMemoryEventStore::new();
    let checkpoints = Losable::default();
    let mut recorder = Recorder::new("Followers");
    recorder.delay = Duration::from_millis(1);
    let lose_once = Arc::new(AtomicBool::new(false));
    let losing = checkpoints.clone();
    let recorder = recorder.failing(move |e, _| {
        if e.position == 10 && !lose_once.swap(true, Ordering::SeqCst) {
            losing.lose_newest();
        }
        false
    });
    let (first, second) = (recorder.instance(), recorder.instance());
    let all_handled = |last: u64| {
        let handled = recorder.handled();
        (1..=last).all(|p| handled.contains(&p))
    };

    // The first runner holds the lease; after losing it, it waits a whole retry interval
    // before trying again, so the second (polling every 10 ms) takes over.
    let a = losable_runner(&store, &checkpoints, first.clone())
        .batch_size(5)
        .lease_retry_interval(Duration::from_secs(30));
    let (stop_a, a_stopped) = oneshot::channel::<()>();
    let a = tokio::spawn(async move { a.run(a_stopped).await });
    eventually("the first runner to hold the lease", || {
        !checkpoints.leases.lock().unwrap().is_empty()
    })
    .await;
    let b = losable_runner(&store, &checkpoints, second.clone()).batch_size(5);
    let (stop_b, b_stopped) = oneshot::channel::<()>();
    let b = tokio::spawn(async move { b.run(b_stopped).await });
    append(&store, "o-1", 30).await;
    eventually("30 events", || all_handled(30)).await;

    let first_calls: Vec<u64> = first.calls.lock().unwrap().iter().map(|c| c.0).collect();
    assert_eq!(
        first_calls,
        positions(1..=10),
        "the first makes no handler call after losing its lease (during event 10)"
    );
    let second_calls: Vec<u64> = second.calls.lock().unwrap().iter().map(|c| c.0).collect();
    let from = second_calls[0];
    assert_eq!(
        second_calls,
        positions(from..=30),
        "the second takes over from the last checkpoint the first saved"
    );
    assert!(
        from <= 10,
        "the first could not save its checkpoint after event 10: {from}"
    );

    // Lost while idle: noticed at the next wake-up; the runner takes the lease again and
    // follows on.
    checkpoints.lose_newest();
    eventually(
        "the idle loss to be noticed and the lease taken again",
        || checkpoints.leases.lock().unwrap().len() == 3,
    )
    .await;
    append(&store, "o-2", 5).await;
    eventually("35 events", || all_handled(35)).await;
    assert_eq!(
        METRICS.total(
            attr::METRIC_PROJECTION_LEASE_LOST,
            &[(attr::METRIC_ATTR_PROJECTION_NAME, "Followers")]
        ),
        2
    );
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    assert_eq!(checkpoints.inner.load("Followers").await.unwrap(), 35);
    // (Whether the first instance's last handler call, running when its lease went, could
    // overlap the second's first ones depends on how long the takeover takes: here an
    // in-memory lease is taken at once. The PostgreSQL store's tests check it with a real
    // session terminated under load.)
}
