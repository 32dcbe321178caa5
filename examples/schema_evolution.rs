//! Schema evolution: one event that changed shape over the years, read by
//! today's code from a store that every older version of the code wrote to.
//!
//! The story of a customer's address:
//! 1. the first code stored `CustomerSignedUp {name, address}` and `CustomerMoved {address}`,
//!    the address one string, `"1 Main St, Springfield"`;
//! 2. then sign-up and address became two events (`CustomerRegistered`, and the address
//!    event renamed `AddressChanged`), still at version 1;
//! 3. version 2 split the address into `{street, city}`;
//! 4. version 3, today's, added `country` (older addresses were all in the US).
//!
//! Today's code declares `AddressChanged(version = 3)` and registers upcasters: a split
//! (`CustomerSignedUp` -> `CustomerRegistered` + `AddressChanged` v1), a rename
//! (`CustomerMoved` -> `AddressChanged`) and two steps (v1 -> v2 -> v3). The example writes the
//! old events raw, as the older code did, then loads the customer with a `Repository`, records
//! a new address at version 3, and catches a `#[projection]` up with a `ProjectionRunner`.
//!
//! `cargo run --example schema_evolution` prints each trace on stderr with every attribute:
//! the load's `eventsource.repository.load` span says how many events were upcast
//! (`eventsource.upcast.count`) and from which versions (`eventsource.upcast.from_versions`).
//! `EVENTSOURCE_CONSOLE=compact` shows the one-line view instead; with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, the traces go to a collector.

#[path = "support/exit.rs"]
mod support;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use eventsource_runtime::event::NewEvent;
use eventsource_runtime::event::upcast::{SplitPart, Upcasters};
use eventsource_runtime::health::HealthRegistry;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::store::UNBOUNDED;
use eventsource_runtime::telemetry::{ConsoleDetail, Telemetry};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

// ---- Today's events. ---------------------------------------------------------------------

/// A customer signed up (since the sign-up event was split in two).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRegistered {
    pub name: String,
}

/// A customer's address, version 3: street, city and country.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressChanged {
    pub street: String,
    pub city: String,
    pub country: String,
}

// ---- How older stored events become today's. ---------------------------------------------

/// The customer's upcasters, oldest change first.
fn customer_upcasters() -> Upcasters {
    Upcasters::new()
        // The first code's sign-up carried the address: it is two events now.
        .split("CustomerSignedUp", 1, |mut payload: Value| {
            let address = payload["address"].take();
            let name = payload["name"].take();
            Ok::<_, &str>(vec![
                SplitPart::new("CustomerRegistered", 1, json!({ "name": name })),
                SplitPart::new("AddressChanged", 1, json!({ "address": address })),
            ])
        })
        // `CustomerMoved` was renamed; its payload is `AddressChanged`'s version 1.
        .rename("CustomerMoved", "AddressChanged")
        // v1 -> v2: "1 Main St, Springfield" -> {"street": "1 Main St", "city": "Springfield"}.
        .step("AddressChanged", 1, |payload: &mut Value| {
            let address = payload["address"].as_str().ok_or("no address")?;
            let (street, city) = address.rsplit_once(", ").ok_or("no city in the address")?;
            *payload = json!({ "street": street, "city": city });
            Ok::<_, &str>(())
        })
        // v2 -> v3: the country, which every address had in common until then.
        .step("AddressChanged", 2, |payload: &mut Value| {
            payload["country"] = json!("US");
            Ok::<_, &str>(())
        })
}

// ---- The aggregate. ----------------------------------------------------------------------

#[derive(Debug, Default, Aggregate)]
#[aggregate(
    type = "Customer",
    events(CustomerRegistered, AddressChanged(version = 3)),
    upcasters = customer_upcasters
)]
pub struct Customer {
    name: String,
    address: Option<AddressChanged>,
    moves: u32,
}

impl Apply<CustomerRegistered> for Customer {
    fn apply(&mut self, event: &CustomerRegistered) {
        self.name.clone_from(&event.name);
    }
}

impl Apply<AddressChanged> for Customer {
    fn apply(&mut self, event: &AddressChanged) {
        if self.address.is_some() {
            self.moves += 1;
        }
        self.address = Some(event.clone());
    }
}

/// Today's command: the customer moved.
pub struct MoveCustomer {
    pub customer_id: String,
    pub address: AddressChanged,
}

impl Command for MoveCustomer {
    const TYPE: &'static str = "MoveCustomer";
    fn aggregate_id(&self) -> String {
        self.customer_id.clone()
    }
}

impl Handle<MoveCustomer> for Customer {
    type Error = std::convert::Infallible;
    fn handle(&self, command: MoveCustomer) -> Result<Vec<CustomerEvent>, Self::Error> {
        Ok(vec![command.address.into()])
    }
}

// ---- A read model, fed by a runner: it sees today's events only. -------------------------

/// Every address each customer had, in order.
#[derive(Default)]
pub struct AddressHistory {
    lines: Vec<String>,
}

#[projection]
impl AddressHistory {
    fn on_registered(&mut self, event: &CustomerRegistered, envelope: &EventEnvelope) {
        self.lines.push(format!(
            "#{} {} registered: {}",
            envelope.position,
            envelope.aggregate_id(),
            event.name
        ));
    }

    fn on_address_changed(&mut self, event: &AddressChanged, envelope: &EventEnvelope) {
        self.lines.push(format!(
            "#{} {} address (v{}): {}, {}, {}",
            envelope.position,
            envelope.aggregate_id(),
            envelope.schema_version,
            event.street,
            event.city,
            event.country
        ));
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // Every attribute on the console, so that the load's upcast attributes show, unless
    // EVENTSOURCE_CONSOLE says otherwise.
    let telemetry = match std::env::var_os("EVENTSOURCE_CONSOLE") {
        Some(_) => eventsource_runtime::telemetry::init(),
        None => Telemetry::builder()
            .console_detail(ConsoleDetail::Full)
            .init(),
    };
    let outcome = run().await;
    support::finish(telemetry, outcome)
}

async fn run() -> Result<(), Box<dyn Error>> {
    // At start: a misregistered chain (a gap, a rename to an unknown type, ...) is an error
    // naming the fix, before any event is read.
    CustomerEvent::upcasters().check()?;
    println!("upcasters checked");
    let broken = Upcasters::new()
        .step("AddressChanged", 1, |_: &mut Value| Ok::<_, &str>(()))
        .for_event_types(&[("AddressChanged", 3)]);
    if let Err(error) = broken.check() {
        println!("a chain with a gap is refused: {error}");
    }

    // What older code stored, written raw, as it wrote it.
    let store = InMemoryEventStore::new();
    let stream = StreamId::new("Customer", "c-1");
    let old = vec![
        NewEvent::new(
            "CustomerSignedUp",
            1,
            json!({ "name": "Ada", "address": "1 Main St, Springfield" }),
        ),
        NewEvent::new(
            "CustomerMoved",
            1,
            json!({ "address": "12 Elm St, Shelbyville" }),
        ),
        NewEvent::new(
            "AddressChanged",
            1,
            json!({ "address": "7 Oak Ave, Capital City" }),
        ),
        NewEvent::new(
            "AddressChanged",
            2,
            json!({ "street": "742 Evergreen Terrace", "city": "Springfield" }),
        ),
    ];
    store.append(&stream, ExpectedVersion::Any, old).await?;
    println!("\nstored by older code:");
    for event in store.read_all(1, UNBOUNDED).await? {
        println!(
            "  #{} {} v{} {}",
            event.position,
            event.event_type,
            event.schema_version,
            event.payload.as_str()
        );
    }

    // Today's code loads the customer: every stored event comes in as today's.
    let customers = Repository::<Customer>::new(store.clone());
    let customer = customers.load("c-1").await?;
    let state = customer.state();
    let address = state.address.as_ref().ok_or("no address")?;
    println!(
        "\nloaded c-1 at version {}: {} lives at {}, {}, {} ({} moves)",
        customer.version(),
        state.name,
        address.street,
        address.city,
        address.country,
        state.moves
    );

    // And records a new address, at version 3.
    let service = CommandService::with_repository(customers, ProjectionRegistry::new());
    service
        .execute(MoveCustomer {
            customer_id: "c-1".into(),
            address: AddressChanged {
                street: "221B Baker St".into(),
                city: "London".into(),
                country: "GB".into(),
            },
        })
        .await?;
    let customer = service.repository().load("c-1").await?;
    let address = customer.state().address.as_ref().ok_or("no address")?;
    println!(
        "moved: c-1 at version {} lives at {}, {}, {} ({} moves)",
        customer.version(),
        address.street,
        address.city,
        address.country,
        customer.state().moves
    );

    // A read model caught up from the store's start: its handlers see today's events only.
    let runner = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryCheckpointStore::new()),
        AddressHistory::default(),
    );
    let health = HealthRegistry::new();
    health.watch(&runner);
    let position = runner.run_until_caught_up().await?;
    println!("\nAddressHistory caught up to position {position}:");
    for line in &runner.projection().lock().await.lines {
        println!("  {line}");
    }
    // What a readiness endpoint would serve: each component's state, lease, lag, parked
    // events and last error.
    println!("\n{}", health.report().await);
    Ok(())
}
