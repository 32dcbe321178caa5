//! Every macro, expanded without telemetry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opened {
    pub owner: String,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Account", events(Opened))]
pub struct Account {
    open: bool,
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _: &Opened) {
        self.open = true;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("already open")]
pub struct AlreadyOpen;

pub struct Open {
    pub id: String,
    pub owner: String,
}

#[command_handler(aggregate_id = command.id, name = "open_account")]
fn open(account: &Account, command: Open) -> Result<Vec<AccountEvent>, AlreadyOpen> {
    if account.open {
        return Err(AlreadyOpen);
    }
    Ok(vec![
        Opened {
            owner: command.owner,
        }
        .into(),
    ])
}

/// A read model: counts openings.
#[derive(Default)]
pub struct Openings {
    pub count: usize,
    pub trace: bool,
}

#[projection(enable_tracing = self.trace, name = "projection.update")]
impl Openings {
    fn on_opened(&mut self, _: &Opened) {
        self.count += 1;
    }
}

pub struct Notifier {
    pub tracing: bool,
}

impl Notifier {
    #[traced(name = "notifier.send", kind = client, attributes("channel" = "email"),
             fields(recipient = recipient, length = message.len()), enabled = self.tracing, err)]
    pub async fn send(&self, recipient: &str, message: &str) -> Result<usize, std::io::Error> {
        Ok(recipient.len() + message.len())
    }
}

#[traced]
fn plain(x: u32) -> u32 {
    x + 1
}

// `order_id` is read only by `fields(..)`: without telemetry it must not be reported unused.
#[traced(fields(order.id = order_id))]
fn recorded_only(order_id: &str) -> u8 {
    7
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(plain(1), 2);
    assert_eq!(recorded_only("o-1"), 7);
    let sent = Notifier { tracing: true }.send("ada", "hi").await.unwrap();
    assert_eq!(sent, 5);
    // The event bus, without telemetry: handlers run, failures are redelivered, then
    // dead-lettered.
    let bus = InMemoryEventBus::new()
        .enable_tracing(true)
        .with_max_deliveries(2);
    let welcomed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&welcomed);
    bus.subscribe_fn("welcome", move |_event| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<(), HandlerError>(()) }
    });
    bus.subscribe(handler_fn("broken", |_event| async {
        Err::<(), _>(HandlerError::new("down"))
    }));
    let accounts = CommandService::<Account>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    let openings = accounts.register(Openings {
        trace: true,
        ..Openings::default()
    });
    let outcome = accounts
        .execute(Open {
            id: "a-1".into(),
            owner: "ada".into(),
        })
        .await
        .expect("the command runs without telemetry");
    assert_eq!(outcome.version(), 1);
    assert_eq!(openings.lock().await.count, 1);
    assert_eq!(welcomed.load(Ordering::SeqCst), 1);
    let report = outcome.publish.expect("a bus").expect("published");
    assert_eq!(report.dead_letters.len(), 1);
    assert_eq!(bus.dead_letters()[0].attempts, 2);
    assert_eq!(bus.replay(&outcome.events).await.len(), 1);
    println!("ok");
}
