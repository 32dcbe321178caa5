//! The traces of two reference documents (the project's seeds), written the way a user of
//! this workspace writes them: with `#[command_handler]`, `#[projection]` and
//! `#[traced]` instead of hand-made spans. The documents are not in this repository (they
//! are kept beside it, in the project's `../shared/seeds/`, and neither CI nor these tests
//! read them): seed 001 is an article on tracing a CQRS system's write and read paths
//! separately with OpenTelemetry, seed 002 a Python event-sourcing library's tutorial on
//! OpenTelemetry. What each traces is below, and the tests hold the code to it:
//!
//! - seed 001: the write path (`command.{CommandType}`, `cqrs.side = write`, the event
//!   count and types, one `domain_event_produced` per event, errors), the projection
//!   (`cqrs.side = projection`, linked) and the read path (`query.{QueryType}`,
//!   `cqrs.side = read`, the result count);
//! - seed 002: `TaskService` (a span per service call with its own attributes, the
//!   repository's and store's spans as its children, a per-instance switch) and
//!   `NotificationService` (static attributes).
//!
//! Every test captures the spans of its own thread (`#[tokio::test]` is current-thread).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{CapturedSpans, attribute, capture, events, kind};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, KeyValue, Value};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

fn strings(values: &[&str]) -> Value {
    Value::Array(Array::String(
        values.iter().map(|v| (*v).to_owned().into()).collect(),
    ))
}

/// The attribute keys of the one span named `name`, sorted.
fn keys(spans: &CapturedSpans, name: &str) -> Vec<String> {
    let mut keys: Vec<String> = spans
        .get(name)
        .attributes
        .iter()
        .map(|kv| kv.key.to_string())
        .collect();
    keys.sort_unstable();
    keys
}

/// The value of `key` among a span event's attributes.
fn event_value<'a>(event: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    event
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// The names of the direct children of the one span named `name`, in the order they
/// started.
fn child_names<'a>(spans: &'a CapturedSpans, name: &str) -> Vec<&'a str> {
    let mut children = spans.children(spans.get(name));
    children.sort_by_key(|s| s.start_time);
    children.iter().map(|s| s.name.as_ref()).collect()
}

// =========================================================================================
// Seed 001: separate write, projection and read paths.
// =========================================================================================

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountOpened {
    pub owner: String,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deposited {
    pub cents: u64,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Withdrawn {
    pub cents: u64,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Account", events(AccountOpened, Deposited, Withdrawn))]
pub struct Account {
    open: bool,
    balance: u64,
}
impl Apply<AccountOpened> for Account {
    fn apply(&mut self, _: &AccountOpened) {
        self.open = true;
    }
}
impl Apply<Deposited> for Account {
    fn apply(&mut self, e: &Deposited) {
        self.balance += e.cents;
    }
}
impl Apply<Withdrawn> for Account {
    fn apply(&mut self, e: &Withdrawn) {
        self.balance -= e.cents;
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("account already open")]
    AlreadyOpen,
    #[error("insufficient funds: balance {balance}, asked {asked}")]
    InsufficientFunds { balance: u64, asked: u64 },
}

pub struct OpenAccount {
    pub account_id: String,
    pub owner: String,
    pub initial_deposit: u64,
}
pub struct Withdraw {
    pub account_id: String,
    pub cents: u64,
}

// The default span name, `command.OpenAccount`; two events from one command.
#[command_handler(aggregate_id = cmd.account_id)]
impl Handle<OpenAccount> for Account {
    type Error = AccountError;
    fn handle(&self, cmd: OpenAccount) -> Result<Vec<AccountEvent>, AccountError> {
        if self.open {
            return Err(AccountError::AlreadyOpen);
        }
        Ok(vec![
            AccountOpened { owner: cmd.owner }.into(),
            Deposited {
                cents: cmd.initial_deposit,
            }
            .into(),
        ])
    }
}

const WITHDRAW_SPAN: &str = "account.withdraw";

// A span name of the team's own.
#[command_handler(aggregate_id = cmd.account_id, name = "account.withdraw")]
fn withdraw(account: &Account, cmd: Withdraw) -> Result<Vec<AccountEvent>, AccountError> {
    if cmd.cents > account.balance {
        return Err(AccountError::InsufficientFunds {
            balance: account.balance,
            asked: cmd.cents,
        });
    }
    Ok(vec![Withdrawn { cents: cmd.cents }.into()])
}

/// The read model of seed 001's projection, traced.
#[derive(Debug, Default)]
pub struct AccountBalances {
    balances: BTreeMap<String, u64>,
}

#[projection(enable_tracing = true)]
impl AccountBalances {
    fn on_deposited(&mut self, e: &Deposited, envelope: &EventEnvelope) {
        *self
            .balances
            .entry(envelope.aggregate_id().to_owned())
            .or_default() += e.cents;
    }
    fn on_withdrawn(&mut self, e: &Withdrawn, envelope: &EventEnvelope) {
        *self
            .balances
            .entry(envelope.aggregate_id().to_owned())
            .or_default() -= e.cents;
    }
}

/// Seed 001's query side, as a `#[traced]` query handler.
impl AccountBalances {
    #[traced(
        name = "query.ListAccounts",
        attributes({ attr::QUERY_TYPE } = "ListAccounts", { attr::CQRS_SIDE } = attr::SIDE_READ),
        fields(min.cents = min_cents),
    )]
    fn list_accounts(&self, min_cents: u64) -> Vec<(String, u64)> {
        let found: Vec<(String, u64)> = self
            .balances
            .iter()
            .filter(|(_, cents)| **cents >= min_cents)
            .map(|(id, cents)| (id.clone(), *cents))
            .collect();
        telemetry::set_attribute(attr::QUERY_RESULT_COUNT, found.len() as i64);
        found
    }
}

#[tokio::test]
async fn seed_001_write_projection_and_read_paths() {
    let capture = capture();
    let accounts = CommandService::<Account>::new(InMemoryEventStore::new());
    let balances = accounts.register(AccountBalances::default());

    // ---- write: command.OpenAccount, two events -------------------------------------------
    accounts
        .execute(OpenAccount {
            account_id: "acc-1".into(),
            owner: "ada".into(),
            initial_deposit: 500,
        })
        .await
        .unwrap();
    let spans = capture.spans();
    let command = spans.get("command.OpenAccount");
    assert!(spans.is_root(command), "{}", spans.tree());
    assert_eq!(kind(command), SpanKind::Internal);
    assert_eq!(command.status, Status::Unset);
    assert_eq!(
        attribute(command, attr::CQRS_SIDE),
        Some(&string(attr::SIDE_WRITE))
    );
    assert_eq!(attr::SIDE_WRITE, "write");
    assert_eq!(
        attribute(command, attr::COMMAND_TYPE),
        Some(&string("OpenAccount"))
    );
    assert_eq!(
        attribute(command, attr::AGGREGATE_TYPE),
        Some(&string("Account"))
    );
    assert_eq!(
        attribute(command, attr::AGGREGATE_ID),
        Some(&string("acc-1"))
    );
    assert_eq!(attribute(command, attr::EVENT_COUNT), Some(&Value::I64(2)));
    assert_eq!(
        attribute(command, attr::EVENT_TYPES),
        Some(&strings(&["AccountOpened", "Deposited"]))
    );
    let produced = events(command, attr::SPAN_EVENT_DOMAIN_EVENT_PRODUCED);
    let produced_types: Vec<Option<&Value>> = produced
        .iter()
        .map(|e| event_value(e, attr::EVENT_TYPE))
        .collect();
    assert_eq!(
        produced_types,
        [Some(&string("AccountOpened")), Some(&string("Deposited"))]
    );
    assert_eq!(command.events.events.len(), 2, "nothing but the two");
    assert_eq!(
        child_names(&spans, "command.OpenAccount"),
        ["eventsource.repository.load", "eventsource.repository.save"]
    );

    // ---- projection: one linked CONSUMER root per handled event (`Deposited` only) --------
    let projected = spans.all("projection.AccountBalances");
    assert_eq!(projected.len(), 1, "{}", spans.tree());
    spans.assert_linked_root(
        "projection.AccountBalances",
        "eventsource.event_store.append",
    );
    let projection = projected[0];
    assert_eq!(kind(projection), SpanKind::Consumer);
    assert_eq!(
        attribute(projection, attr::CQRS_SIDE),
        Some(&string(attr::SIDE_PROJECTION))
    );
    assert_eq!(
        attribute(projection, attr::PROJECTION_NAME),
        Some(&string("AccountBalances"))
    );
    assert_eq!(
        attribute(projection, attr::EVENT_TYPE),
        Some(&string("Deposited"))
    );
    assert_eq!(
        attribute(projection, attr::EVENT_SEQUENCE),
        Some(&Value::I64(2))
    );
    assert!(matches!(
        attribute(projection, attr::PROJECTION_LAG_MS),
        Some(Value::I64(lag)) if *lag >= 0
    ));

    // ---- write, renamed: a rejected withdrawal is an ERROR with one exception ------------
    capture.clear();
    let refused = accounts
        .execute(Withdraw {
            account_id: "acc-1".into(),
            cents: 900,
        })
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(
            AccountError::InsufficientFunds { .. }
        ))
    ));
    let spans = capture.spans();
    assert!(spans.all("command.Withdraw").is_empty(), "renamed");
    let rejected = spans.get(WITHDRAW_SPAN);
    assert!(spans.is_root(rejected));
    assert_eq!(
        attribute(rejected, attr::COMMAND_TYPE),
        Some(&string("Withdraw"))
    );
    assert_eq!(
        attribute(rejected, attr::CQRS_SIDE),
        Some(&string(attr::SIDE_WRITE))
    );
    assert_eq!(
        rejected.status,
        Status::error("command rejected: insufficient funds: balance 500, asked 900")
    );
    let exceptions = events(rejected, attr::SPAN_EVENT_EXCEPTION);
    assert_eq!(exceptions.len(), 1);
    assert_eq!(
        event_value(exceptions[0], attr::EXCEPTION_MESSAGE),
        Some(&string(
            "command rejected: insufficient funds: balance 500, asked 900"
        ))
    );
    assert!(
        matches!(event_value(exceptions[0], attr::EXCEPTION_TYPE), Some(v) if v.as_str().ends_with("AccountError"))
    );
    assert!(events(rejected, attr::SPAN_EVENT_DOMAIN_EVENT_PRODUCED).is_empty());
    assert_eq!(
        child_names(&spans, WITHDRAW_SPAN),
        ["eventsource.repository.load"],
        "nothing saved"
    );
    assert!(spans.all("projection.AccountBalances").is_empty());

    // ---- the same handler succeeding -------------------------------------------------------
    capture.clear();
    accounts
        .execute(Withdraw {
            account_id: "acc-1".into(),
            cents: 200,
        })
        .await
        .unwrap();
    let spans = capture.spans();
    let withdrawn = spans.get(WITHDRAW_SPAN);
    assert_eq!(withdrawn.status, Status::Unset);
    assert_eq!(
        attribute(withdrawn, attr::EVENT_COUNT),
        Some(&Value::I64(1))
    );
    assert_eq!(
        attribute(withdrawn, attr::EVENT_TYPES),
        Some(&strings(&["Withdrawn"]))
    );
    assert!(events(withdrawn, attr::SPAN_EVENT_EXCEPTION).is_empty());
    let projection = spans.get("projection.AccountBalances");
    assert_eq!(
        attribute(projection, attr::EVENT_TYPE),
        Some(&string("Withdrawn"))
    );

    // ---- read: query.ListAccounts under the caller's span ----------------------------------
    capture.clear();
    let found = async { balances.lock().await.list_accounts(100) }
        .instrument(tracing::info_span!("GET /accounts"))
        .await;
    assert_eq!(found, [("acc-1".to_owned(), 300)]);
    let spans = capture.spans();
    spans.assert_child_of("query.ListAccounts", "GET /accounts");
    let query = spans.get("query.ListAccounts");
    assert_eq!(kind(query), SpanKind::Internal);
    assert_eq!(
        attribute(query, attr::CQRS_SIDE),
        Some(&string(attr::SIDE_READ))
    );
    assert_eq!(attr::SIDE_READ, "read");
    assert_eq!(
        attribute(query, attr::QUERY_TYPE),
        Some(&string("ListAccounts"))
    );
    assert_eq!(
        attribute(query, attr::QUERY_RESULT_COUNT),
        Some(&Value::I64(1))
    );
    assert_eq!(attribute(query, "min.cents"), Some(&Value::I64(100)));
    assert_eq!(spans.len(), 2, "{}", spans.tree());
}

// =========================================================================================
// Seed 002: TaskService and NotificationService.
// =========================================================================================

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCreated {
    pub title: String,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCompleted;

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Task", events(TaskCreated, TaskCompleted))]
pub struct Task {
    pub title: String,
    pub completed: bool,
}
impl Apply<TaskCreated> for Task {
    fn apply(&mut self, e: &TaskCreated) {
        self.title.clone_from(&e.title);
        self.completed = false;
    }
}
impl Apply<TaskCompleted> for Task {
    fn apply(&mut self, _: &TaskCompleted) {
        self.completed = true;
    }
}

static NEXT_TASK: AtomicU64 = AtomicU64::new(1);

/// Seed 002's `TaskService(TracingMixin)`: one span per call, its own attributes, the
/// repository's spans inside, and a switch per instance.
pub struct TaskService {
    repository: Repository<Task>,
    enable_tracing: bool,
}

impl TaskService {
    pub fn new(repository: Repository<Task>, enable_tracing: bool) -> Self {
        Self {
            repository,
            enable_tracing,
        }
    }

    #[traced(
        name = "task_service.create_task",
        fields(task.title = title),
        enabled = self.enable_tracing,
    )]
    pub async fn create_task(&self, title: &str) -> Result<AggregateRoot<Task>, RepositoryError> {
        let task_id = format!("task-{}", NEXT_TASK.fetch_add(1, Ordering::Relaxed));
        telemetry::set_attribute(attr::AGGREGATE_ID, task_id.clone());
        telemetry::set_attribute(attr::AGGREGATE_TYPE, Task::TYPE);
        let mut task = AggregateRoot::<Task>::new(task_id);
        task.record(TaskCreated {
            title: title.to_owned(),
        });
        self.repository.save(&mut task).await?;
        telemetry::set_attribute(attr::EVENT_COUNT, 1_i64);
        Ok(task)
    }

    #[traced(
        name = "task_service.complete_task",
        fields({ attr::AGGREGATE_ID } = task_id),
        enabled = self.enable_tracing,
    )]
    pub async fn complete_task(
        &self,
        task_id: &str,
    ) -> Result<AggregateRoot<Task>, RepositoryError> {
        let mut task = self.repository.load(task_id).await?;
        task.record(TaskCompleted);
        self.repository.save(&mut task).await?;
        Ok(task)
    }

    #[traced(
        name = "task_service.get_task",
        fields({ attr::AGGREGATE_ID } = task_id),
        enabled = self.enable_tracing,
    )]
    pub async fn get_task(&self, task_id: &str) -> Result<AggregateRoot<Task>, RepositoryError> {
        self.repository.load(task_id).await
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot send to `{0}`")]
pub struct Undeliverable(String);

/// Seed 002's `NotificationService`: `@traced(name, attributes={"channel": ...})`. Like the
/// seed's `TracingMixin`, the instance's switch applies to every traced method.
pub struct NotificationService {
    enable_tracing: bool,
    sent: Mutex<Vec<String>>,
}

impl NotificationService {
    pub fn new(enable_tracing: bool) -> Self {
        Self {
            enable_tracing,
            sent: Mutex::new(Vec::new()),
        }
    }

    #[traced(
        name = "notification_service.send_email",
        attributes("channel" = "email"),
        enabled = self.enable_tracing,
    )]
    pub async fn send_email(&self, recipient: &str, message: &str) -> Result<(), Undeliverable> {
        tokio::task::yield_now().await;
        if !recipient.contains('@') {
            return Err(Undeliverable(recipient.to_owned()));
        }
        self.sent
            .lock()
            .unwrap()
            .push(format!("email {recipient}: {message}"));
        Ok(())
    }

    #[traced(
        name = "notification_service.send_sms",
        attributes("channel" = "sms"),
        enabled = self.enable_tracing,
    )]
    pub async fn send_sms(&self, phone: &str, message: &str) -> Result<(), Undeliverable> {
        tokio::task::yield_now().await;
        if !phone.starts_with('+') {
            return Err(Undeliverable(phone.to_owned()));
        }
        self.sent
            .lock()
            .unwrap()
            .push(format!("sms {phone}: {message}"));
        Ok(())
    }
}

#[tokio::test]
async fn seed_002_task_service_spans_wrap_the_repository_and_store_spans() {
    let capture = capture();
    let service = TaskService::new(Repository::new(InMemoryEventStore::new()), true);

    // create_task: the service span, then save -> append under it.
    let task = service.create_task("Build observability").await.unwrap();
    let task_id = task.id().to_owned();
    let spans = capture.spans();
    let create = spans.get("task_service.create_task");
    assert!(spans.is_root(create), "{}", spans.tree());
    assert_eq!(kind(create), SpanKind::Internal);
    assert_eq!(create.status, Status::Unset);
    assert_eq!(
        attribute(create, "task.title"),
        Some(&string("Build observability"))
    );
    assert_eq!(
        attribute(create, attr::AGGREGATE_ID),
        Some(&string(&task_id))
    );
    assert_eq!(
        attribute(create, attr::AGGREGATE_TYPE),
        Some(&string("Task"))
    );
    assert_eq!(attribute(create, attr::EVENT_COUNT), Some(&Value::I64(1)));
    assert_eq!(
        keys(&spans, "task_service.create_task"),
        [
            attr::AGGREGATE_ID,
            attr::AGGREGATE_TYPE,
            attr::EVENT_COUNT,
            "task.title"
        ],
        "the title argument only because it is named in `fields`"
    );
    assert_eq!(
        child_names(&spans, "task_service.create_task"),
        ["eventsource.repository.save"]
    );
    spans.assert_child_of(
        "eventsource.event_store.append",
        "eventsource.repository.save",
    );
    let save = spans.get("eventsource.repository.save");
    assert_eq!(attribute(save, attr::AGGREGATE_ID), Some(&string(&task_id)));
    assert_eq!(
        attribute(save, attr::EXPECTED_VERSION),
        Some(&Value::I64(0))
    );
    assert_eq!(spans.len(), 3, "{}", spans.tree());

    // complete_task: load -> store load, then save -> append, all under the service span.
    capture.clear();
    let task = service.complete_task(&task_id).await.unwrap();
    assert!(task.state().completed);
    let spans = capture.spans();
    let complete = spans.get("task_service.complete_task");
    assert!(spans.is_root(complete));
    assert_eq!(
        attribute(complete, attr::AGGREGATE_ID),
        Some(&string(&task_id))
    );
    assert_eq!(
        child_names(&spans, "task_service.complete_task"),
        ["eventsource.repository.load", "eventsource.repository.save"]
    );
    spans.assert_child_of(
        "eventsource.event_store.load",
        "eventsource.repository.load",
    );
    spans.assert_child_of(
        "eventsource.event_store.append",
        "eventsource.repository.save",
    );
    let load = spans.get("eventsource.repository.load");
    assert_eq!(attribute(load, attr::EVENTS_REPLAYED), Some(&Value::I64(1)));
    let append = spans.get("eventsource.event_store.append");
    let persisted = events(append, attr::SPAN_EVENT_EVENT_PERSISTED);
    assert_eq!(persisted.len(), 1);
    assert_eq!(
        event_value(persisted[0], attr::EVENT_TYPE),
        Some(&string("TaskCompleted"))
    );
    assert_eq!(
        event_value(persisted[0], attr::EVENT_SEQUENCE),
        Some(&Value::I64(2))
    );
    assert_eq!(spans.len(), 5, "{}", spans.tree());

    // get_task: the load only.
    capture.clear();
    let task = service.get_task(&task_id).await.unwrap();
    assert_eq!(task.state().title, "Build observability");
    let spans = capture.spans();
    assert_eq!(
        child_names(&spans, "task_service.get_task"),
        ["eventsource.repository.load"]
    );
    assert_eq!(spans.len(), 3, "{}", spans.tree());
}

#[tokio::test]
async fn seed_002_a_service_with_tracing_off_leaves_only_the_repository_spans() {
    let capture = capture();
    let service = TaskService::new(Repository::new(InMemoryEventStore::new()), false);
    let task_id = async {
        let task = service.create_task("Untraced").await.unwrap();
        service.complete_task(task.id()).await.unwrap();
        task.id().to_owned()
    }
    .instrument(tracing::info_span!("caller"))
    .await;

    let spans = capture.spans();
    assert!(
        spans
            .names()
            .iter()
            .all(|n| !n.starts_with("task_service.")),
        "{}",
        spans.tree()
    );
    // The repository's spans hang under the caller instead.
    let caller = spans.get("caller");
    assert_eq!(
        child_names(&spans, "caller"),
        [
            "eventsource.repository.save",
            "eventsource.repository.load",
            "eventsource.repository.save",
        ],
        "{}",
        spans.tree()
    );
    for save in spans.all("eventsource.repository.save") {
        assert_eq!(attribute(save, attr::AGGREGATE_ID), Some(&string(&task_id)));
        assert_eq!(spans.children(save).len(), 1, "the append");
    }
    // The switched-off service's own attributes went nowhere: not onto the caller's span.
    assert_eq!(
        keys(&spans, "caller"),
        Vec::<String>::new(),
        "{:?}",
        caller.attributes
    );
    assert_eq!(spans.len(), 7, "{}", spans.tree());
}

#[tokio::test]
async fn seed_002_notification_service_static_attributes() {
    let capture = capture();
    let notifications = NotificationService::new(true);
    notifications
        .send_email("ada@example.com", "order shipped")
        .await
        .unwrap();
    notifications
        .send_sms("+15550100", "order shipped")
        .await
        .unwrap();
    let spans = capture.spans();
    assert_eq!(
        spans.names(),
        [
            "notification_service.send_email",
            "notification_service.send_sms"
        ]
    );
    for (name, channel) in [
        ("notification_service.send_email", "email"),
        ("notification_service.send_sms", "sms"),
    ] {
        let span = spans.get(name);
        assert!(spans.is_root(span));
        assert_eq!(kind(span), SpanKind::Internal);
        assert_eq!(span.status, Status::Unset);
        assert_eq!(attribute(span, "channel"), Some(&string(channel)));
        // Arguments (recipient, message) are never recorded unless named.
        assert_eq!(keys(&spans, name), ["channel"], "{name}");
        assert!(span.events.events.is_empty());
    }

    // A failed send: ERROR, the error's Display, one exception event.
    capture.clear();
    let failed = notifications.send_sms("5550100", "order shipped").await;
    assert_eq!(failed, Err(Undeliverable("5550100".into())));
    let spans = capture.spans();
    let sms = spans.get("notification_service.send_sms");
    assert_eq!(sms.status, Status::error("cannot send to `5550100`"));
    let exceptions = events(sms, attr::SPAN_EVENT_EXCEPTION);
    assert_eq!(exceptions.len(), 1);
    assert_eq!(
        event_value(exceptions[0], attr::EXCEPTION_MESSAGE),
        Some(&string("cannot send to `5550100`"))
    );
    assert!(
        matches!(event_value(exceptions[0], attr::EXCEPTION_TYPE), Some(v) if v.as_str().ends_with("Undeliverable")),
        "{:?}",
        exceptions[0]
    );
    assert_eq!(sms.events.events.len(), 1);

    // The same service with its switch off: the messages go out, no span.
    capture.clear();
    let quiet = NotificationService::new(false);
    quiet.send_email("ada@example.com", "hi").await.unwrap();
    quiet.send_sms("+15550100", "hi").await.unwrap();
    assert_eq!(quiet.sent.lock().unwrap().len(), 2);
    assert!(capture.spans().is_empty(), "{}", capture.spans().tree());
}

/// A service whose span may be off, calling a traced function and opening a span of its
/// own: `telemetry::set_attribute` goes to the span it is called in, never to the caller
/// of a switched-off body.
pub struct Reminders {
    enable_tracing: bool,
}

impl Reminders {
    #[traced(name = "reminders.send", enabled = self.enable_tracing)]
    pub async fn send(&self) -> u32 {
        telemetry::set_attribute("reminders.before", "set");
        let sent = remind_one().await;
        async { telemetry::set_attribute("user.attr", 1_i64) }
            .instrument(tracing::info_span!("user.step"))
            .await;
        tokio::task::yield_now().await;
        telemetry::set_attribute("reminders.after", "set");
        sent
    }

    #[traced(name = "reminders.count", enabled = self.enable_tracing)]
    pub fn count(&self) -> u32 {
        telemetry::set_attribute("reminders.counted", "set");
        tracing::info_span!("user.sync").in_scope(|| telemetry::set_attribute("user.sync", 2_i64));
        2
    }
}

#[traced(name = "reminders.one")]
async fn remind_one() -> u32 {
    tokio::task::yield_now().await;
    telemetry::set_attribute("one.attr", 1_i64);
    1
}

#[tokio::test]
async fn set_attribute_goes_to_its_own_span_or_nowhere() {
    let capture = capture();
    // Off: the body's own attributes are dropped; the inner spans keep theirs.
    let quiet = Reminders {
        enable_tracing: false,
    };
    let total = async { quiet.send().await + quiet.count() }
        .instrument(tracing::info_span!("caller"))
        .await;
    assert_eq!(total, 3);
    let spans = capture.spans();
    assert_eq!(
        child_names(&spans, "caller"),
        ["reminders.one", "user.step", "user.sync"],
        "{}",
        spans.tree()
    );
    assert_eq!(keys(&spans, "caller"), Vec::<String>::new());
    assert_eq!(keys(&spans, "reminders.one"), ["one.attr"]);
    assert_eq!(keys(&spans, "user.step"), ["user.attr"]);
    assert_eq!(keys(&spans, "user.sync"), ["user.sync"]);

    // On: each attribute on its own span.
    capture.clear();
    let traced = Reminders {
        enable_tracing: true,
    };
    let total = async { traced.send().await + traced.count() }
        .instrument(tracing::info_span!("caller"))
        .await;
    assert_eq!(total, 3);
    let spans = capture.spans();
    assert_eq!(
        child_names(&spans, "caller"),
        ["reminders.send", "reminders.count"]
    );
    assert_eq!(
        child_names(&spans, "reminders.send"),
        ["reminders.one", "user.step"]
    );
    assert_eq!(
        keys(&spans, "reminders.send"),
        ["reminders.after", "reminders.before"]
    );
    assert_eq!(keys(&spans, "reminders.count"), ["reminders.counted"]);
    assert_eq!(keys(&spans, "reminders.one"), ["one.attr"]);
    assert_eq!(keys(&spans, "user.sync"), ["user.sync"]);
    assert_eq!(keys(&spans, "caller"), Vec::<String>::new());
}

/// Seed 002's attribute constants have the same keys here (its `db.system` is the newer
/// semantic conventions' `db.system.name`).
#[test]
fn seed_002_attribute_constants() {
    assert_eq!(attr::AGGREGATE_ID, "eventsource.aggregate.id");
    assert_eq!(attr::AGGREGATE_TYPE, "eventsource.aggregate.type");
    assert_eq!(attr::EVENT_TYPE, "eventsource.event.type");
    assert_eq!(attr::EVENT_COUNT, "eventsource.event.count");
    assert_eq!(attr::VERSION, "eventsource.version");
    assert_eq!(attr::DB_SYSTEM_NAME, "db.system.name");
    assert_eq!(attr::MESSAGING_SYSTEM, "messaging.system");
}
