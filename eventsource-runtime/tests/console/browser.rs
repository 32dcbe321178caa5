//! The page in a real browser: Debian's chromium, driven by npm's `playwright-core` from
//! `browser.cjs`, against the console served on an ephemeral port over a seeded SQLite
//! store and a RabbitMQ consumer group with one dead letter.
//!
//! Needs `node`, `/usr/bin/chromium`, `playwright-core` installed under
//! `EVENTSOURCE_PLAYWRIGHT_DIR` (default `/var/tmp/eventsource-tools/playwright`; `.ci/run
//! --browser-only` installs all three) and RabbitMQ at `EVENTSOURCE_AMQP_URL`. Without
//! them it prints `skipped: ...` and passes, unless `EVENTSOURCE_REQUIRE_BROWSER=1`.
//! The guide's screenshots come from the operator example instead (`screenshots.cjs`,
//! CONTRIBUTING.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::response::Html;
use axum::routing::get;
use eventsource_runtime::bus::{DeadLetterQueue, EventBus as _, HandlerError, Subscribe};
use eventsource_runtime::console::Console;
use eventsource_runtime::projection::checkpoint::RunnerStop;
use eventsource_runtime::rabbitmq::RabbitMqBus;
use eventsource_runtime::store::EventStore as _;
use serde_json::Value;
use uuid::Uuid;

use crate::{TOKEN, TRACE_SHIPPING, parked_positions, seeded};

/// What the test needs from the machine, or why it cannot run.
struct Tools {
    node: PathBuf,
    playwright: PathBuf,
    amqp: String,
}

fn tools() -> Result<Tools, String> {
    let playwright = std::env::var_os("EVENTSOURCE_PLAYWRIGHT_DIR").map_or_else(
        || PathBuf::from("/var/tmp/eventsource-tools/playwright"),
        PathBuf::from,
    );
    if !Path::new("/usr/bin/chromium").is_file() {
        return Err("no /usr/bin/chromium (`apt-get install chromium`)".to_owned());
    }
    if !playwright.join("node_modules/playwright-core").is_dir() {
        return Err(format!(
            "no playwright-core under {} (`.ci/run --browser-only`)",
            playwright.display()
        ));
    }
    let node = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("node"))
                .find(|node| node.is_file())
        })
        .ok_or_else(|| "no node on PATH".to_owned())?;
    let amqp = std::env::var("EVENTSOURCE_AMQP_URL")
        .map_err(|_| "EVENTSOURCE_AMQP_URL is not set (RabbitMQ)".to_owned())?;
    Ok(Tools {
        node,
        playwright,
        amqp,
    })
}

/// Runs `browser.cjs` in `phase` against the console at `url`; returns what it reports.
fn drive(tools: &Tools, url: &str, phase: &str, queue: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/browser.cjs");
    let output = std::process::Command::new(&tools.node)
        .arg(script)
        .env("CONSOLE_URL", url)
        .env("CONSOLE_PHASE", phase)
        .env("CONSOLE_TOKEN", TOKEN)
        .env("CONSOLE_QUEUE", queue)
        .env("CONSOLE_TRACE_ID", TRACE_SHIPPING)
        .env("EVENTSOURCE_PLAYWRIGHT_DIR", &tools.playwright)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser.cjs {phase} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("browser.cjs {phase}: not JSON ({e}): {stdout}\n{stderr}"))
}

/// Waits up to 20 s for `done`.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_lag_requeues_a_dead_letter_changes_projections_and_follows_a_trace() {
    let tools = match tools() {
        Ok(tools) => tools,
        Err(why) if std::env::var("EVENTSOURCE_REQUIRE_BROWSER").as_deref() == Ok("1") => {
            panic!("EVENTSOURCE_REQUIRE_BROWSER=1 but {why}")
        }
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let seeded = seeded("browser").await;
    let checkpoints = seeded.checkpoints();
    // A runner stopped on an error whose text looks like markup: shown as text.
    let runner_stop = RunnerStop::new("handler `orders` failed 5 times on event 3: <b>down</b>");
    checkpoints
        .record_stop("orders", &runner_stop)
        .await
        .unwrap();
    // A split projection's segment whose runner stopped: under the segment's row.
    let segment_stop = RunnerStop::new("projection `totals[1/2]` stopped: <i>down</i>");
    checkpoints
        .record_stop("totals[1/2]", &segment_stop)
        .await
        .unwrap();

    // A group whose handler fails on its first delivery (no retry: straight to the dead
    // letters), then handles what it is given, remembering each event's id.
    let exchange = format!("console-test-{}", Uuid::now_v7().simple());
    let bus = RabbitMqBus::new(&tools.amqp)
        .unwrap()
        .with_exchange(exchange);
    let group = bus
        .consumer_group("console-billing")
        .retry_delays(Vec::new());
    let handled: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let failed_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let handled = handled.clone();
        group.subscribe_fn("billing", move |event| {
            let handled = handled.clone();
            let failed_once = failed_once.clone();
            async move {
                if !failed_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    return Err(HandlerError::new("billing is down"));
                }
                handled.lock().unwrap().push(event.event_id);
                Ok::<(), HandlerError>(())
            }
        });
    }
    group.declare().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let group = group.clone();
        async move { group.run(async { drop(stopped.await) }).await }
    });
    let placed = seeded.store.read_all(4, 1).await.unwrap().into_parts().0;
    let dead_id = placed[0].event_id;
    bus.publish(&placed).await.unwrap();
    let dead = group.dead_letters();
    eventually("the dead letter", async || {
        dead.count().await.unwrap_or(0) == 1
    })
    .await;
    let queue = DeadLetterQueue::location(&dead);

    // The console, and a stand-in trace viewer at /trace/{trace_id}.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let console = Console::new(seeded.stores())
        .dead_letters(group.dead_letters())
        .trace_url(format!("http://{address}/trace/{{trace_id}}"))
        .unwrap()
        .admin_token("browser-test", TOKEN)
        .unwrap();
    let viewer = Router::new().route(
        "/trace/{trace_id}",
        get(|UrlPath(id): UrlPath<String>| async move {
            Html(format!(
                "<!doctype html><title>trace</title><h1 id=\"trace\">{id}</h1>"
            ))
        }),
    );
    let app = console.router().merge(viewer);
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let url = format!("http://{address}/");
    let browser = tokio::task::spawn_blocking({
        let url = url.clone();
        let queue = queue.clone();
        move || {
            let refused = drive(&tools, &url, "refused", &queue);
            (tools, refused)
        }
    });
    let (tools, refused) = browser.await.unwrap();

    // Without the token: both actions refused, said so on the page, and nothing changed.
    for key in ["requeue", "skip"] {
        let message = refused[key].as_str().unwrap_or_default();
        assert!(message.contains("401"), "{key}: {refused:#}");
        assert!(message.contains("admin token"), "{key}: {refused:#}");
    }
    assert_eq!(dead.count().await.unwrap(), 1, "still dead-lettered");
    assert!(handled.lock().unwrap().is_empty());
    assert_eq!(parked_positions(&*checkpoints, "orders").await, [1]);

    // With the token: the lag read, the dead letter requeued and handled, a trace followed.
    let acted = tokio::task::spawn_blocking({
        let queue = queue.clone();
        move || drive(&tools, &url, "act", &queue)
    })
    .await
    .unwrap();
    assert_eq!(
        acted["lag"], "4",
        "the lag the store was seeded with: {acted:#}"
    );
    let stopped = acted["stopped"].as_str().unwrap_or_default();
    assert!(
        stopped.starts_with("STOPPED orders at ")
            && stopped.ends_with(&format!(": {}", runner_stop.error)),
        "why the runner stopped, under its row, as text: {acted:#}"
    );
    let segment_stopped = acted["segmentStopped"].as_str().unwrap_or_default();
    assert!(
        segment_stopped.starts_with("STOPPED totals[1/2] at ")
            && segment_stopped.ends_with(&format!(": {}", segment_stop.error)),
        "a segment's stop, under the segment's row: {acted:#}"
    );
    assert!(
        acted["requeue"]
            .as_str()
            .unwrap_or_default()
            .contains("1 dead letters requeued"),
        "{acted:#}"
    );
    // The projection changes, each name typed again: `orders` back to 0, the relay's
    // checkpoint forgotten.
    assert!(
        acted["reset"]
            .as_str()
            .unwrap_or_default()
            .contains("orders: reset to position 0"),
        "{acted:#}"
    );
    assert!(
        acted["retire"]
            .as_str()
            .unwrap_or_default()
            .contains("eventsource.relay: retired"),
        "{acted:#}"
    );
    assert_eq!(checkpoints.load("orders").await.unwrap(), 0);
    let kept = checkpoints.checkpoints().await.unwrap();
    assert!(
        !kept.iter().any(|c| c.projection == "eventsource.relay"),
        "{kept:?}"
    );
    // From a dead letter to its request's tree, from a parked event to the log there.
    assert!(
        acted["deadTree"]
            .as_str()
            .is_some_and(|label| label.starts_with("OrderPlaced Order/o-2")),
        "{acted:#}"
    );
    assert_eq!(acted["parkedEvent"], "1", "{acted:#}");
    // Paging back through the log, and a correlation's events (req-2: two).
    assert_eq!(acted["earlier"], "1", "{acted:#}");
    assert_eq!(acted["correlated"], 2, "{acted:#}");
    // An event's payload and metadata shown, and its request's tree with it marked.
    let payload = acted["payload"].as_str().unwrap_or_default();
    assert!(
        payload.contains("\"payload\"") && payload.contains("traceparent"),
        "{acted:#}"
    );
    assert!(
        acted["marked"]
            .as_str()
            .is_some_and(|label| label.starts_with("OrderPlaced Order/o-1")),
        "{acted:#}"
    );
    eventually("the requeued letter handled", async || {
        handled.lock().unwrap().contains(&dead_id)
    })
    .await;
    assert_eq!(dead.count().await.unwrap(), 0);
    assert_eq!(
        acted["landed"],
        format!("http://{address}/trace/{TRACE_SHIPPING}"),
        "{acted:#}"
    );
    assert_eq!(acted["viewer"], TRACE_SHIPPING, "{acted:#}");
    // The console's own tab kept its place: the trace opened beside it.
    assert!(
        acted["stayed"]
            .as_str()
            .is_some_and(|url| url.ends_with("#causation")),
        "{acted:#}"
    );

    let _ = stop.send(());
    running.await.unwrap().unwrap();
    server.abort();
    let _ = dead.purge().await;
}
