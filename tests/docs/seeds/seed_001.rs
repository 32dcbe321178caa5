//! Seed 001: separate write, projection and read paths.

use super::*;

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
