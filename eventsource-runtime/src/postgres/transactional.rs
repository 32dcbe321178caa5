//! Handlers whose writes commit in the transaction that records the message: exactly once
//! on PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgConnection;

use super::{PostgresProcessedMessages, unavailable};
use crate::bus::{EventHandler, HandlerError, Handling, IdempotencyError, wrapped_identity};
use crate::event::EventEnvelope;

/// An event handler that writes to PostgreSQL in a transaction it is given, so that its
/// writes and the record of the message commit together: see [`TransactionalIdempotent`].
///
/// ```
/// use eventsource_runtime::bus::HandlerError;
/// use eventsource_runtime::event::EventEnvelope;
/// use eventsource_runtime::postgres::TransactionalHandler;
/// use eventsource_runtime::sqlx::{self, PgConnection};
///
/// /// Counts orders per customer in a table of the application.
/// struct OrderCounts;
///
/// #[eventsource_runtime::async_trait]
/// impl TransactionalHandler for OrderCounts {
///     fn name(&self) -> &str { "order-counts" }
///     fn handles(&self, event_type: &str) -> bool { event_type == "OrderPlaced" }
///     async fn handle(
///         &self,
///         event: &EventEnvelope,
///         transaction: &mut PgConnection,
///     ) -> Result<(), HandlerError> {
///         let payload = event.payload.to_value();
///         let customer = payload["customer"].as_str().unwrap_or("unknown");
///         sqlx::query(
///             "INSERT INTO order_counts (customer, orders) VALUES ($1, 1) \
///              ON CONFLICT (customer) DO UPDATE SET orders = order_counts.orders + 1",
///         )
///         .bind(customer)
///         .execute(transaction)
///         .await
///         .map_err(HandlerError::new)?;
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait TransactionalHandler: Send + Sync + 'static {
    /// A stable name (in telemetry, failures, dead letters, and the records of the
    /// messages it handled).
    fn name(&self) -> &str;

    /// Whether the handler wants events of this type; others are not delivered to it.
    fn handles(&self, _event_type: &str) -> bool {
        true
    }

    /// How messages published by older code become the events this handler reads (see
    /// [`EventHandler::upcasters`]). None by default.
    fn upcasters(&self) -> crate::event::upcast::Upcasters {
        crate::event::upcast::Upcasters::default()
    }

    /// Handles one event, writing through `transaction` (an open transaction: do not
    /// commit or roll it back). Returning `Err` rolls back its writes.
    ///
    /// # Errors
    /// Whatever kept the handler from doing its work; the bus may deliver the message
    /// again.
    async fn handle(
        &self,
        event: &EventEnvelope,
        transaction: &mut PgConnection,
    ) -> Result<(), HandlerError>;
}

/// An [`EventHandler`] running a [`TransactionalHandler`] exactly once per message, on
/// PostgreSQL: one transaction records the message in
/// [`PostgresProcessedMessages`] and holds the handler's writes, then commits.
///
/// - A redelivered message finds its record and is acknowledged without running the
///   handler (the handle span says `eventsource.handler.duplicate = true`).
/// - A failing (or panicking) handler rolls back its writes and the record: the next
///   delivery runs it again. So does a process that dies before the commit.
/// - A connection lost during the commit leaves both committed or neither: a redelivery
///   then finds the record, or runs the handler on a clean slate. Nothing is done twice,
///   nothing is lost.
/// - Concurrent deliveries of one message, in any processes, wait for each other: the
///   handler runs once.
///
/// Each delivery holds a pooled connection of the store while the handler runs.
///
/// ```no_run
/// use eventsource_runtime::bus::{BusTelemetry, Dispatcher, HandlerError};
/// use eventsource_runtime::event::EventEnvelope;
/// use eventsource_runtime::postgres::{PostgresEventStore, TransactionalHandler, TransactionalIdempotent};
/// use eventsource_runtime::sqlx::PgConnection;
/// # struct OrderCounts;
/// # #[eventsource_runtime::async_trait]
/// # impl TransactionalHandler for OrderCounts {
/// #     fn name(&self) -> &str { "order-counts" }
/// #     async fn handle(&self, _: &EventEnvelope, _: &mut PgConnection) -> Result<(), HandlerError> { Ok(()) }
/// # }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresEventStore::connect("postgres://postgres@127.0.0.1/app").await?;
/// store.migrate().await?;
/// let dispatcher = Dispatcher::new("orders", BusTelemetry::new("rabbitmq"));
/// dispatcher.subscribe(TransactionalIdempotent::new(OrderCounts, store.processed_messages()));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TransactionalIdempotent<H> {
    handler: H,
    processed: PostgresProcessedMessages,
}

impl<H: TransactionalHandler> TransactionalIdempotent<H> {
    /// `handler`, in transactions of `processed`'s pool that record the messages it
    /// handled (under the handler's [name](TransactionalHandler::name): keep it stable).
    pub fn new(handler: H, processed: PostgresProcessedMessages) -> Self {
        Self { handler, processed }
    }

    /// The wrapped handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Where the handled messages are recorded.
    pub fn processed(&self) -> &PostgresProcessedMessages {
        &self.processed
    }
}

#[async_trait]
impl<H: TransactionalHandler> EventHandler for TransactionalIdempotent<H> {
    wrapped_identity!();

    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
        self.process(event).await.map(drop)
    }

    async fn process(&self, event: &EventEnvelope) -> Result<Handling, HandlerError> {
        let claim_failed = |e| HandlerError::new(IdempotencyError::Claim(e));
        let begun = self.processed.pool().begin().await;
        let mut transaction = begun.map_err(|e| claim_failed(unavailable(e)))?;
        let recorded = self
            .processed
            .record_in(&mut transaction, self.name(), event.event_id);
        if !recorded.await.map_err(claim_failed)? {
            // Nothing written: ending the transaction either way is the same.
            let _ = transaction.rollback().await;
            return Ok(Handling::Duplicate);
        }
        if let Err(error) = self.handler.handle(event, &mut transaction).await {
            // A failed rollback means a lost connection: the server rolls back anyway.
            let _ = transaction.rollback().await;
            return Err(error);
        }
        transaction
            .commit()
            .await
            .map_err(|e| HandlerError::new(IdempotencyError::Record(unavailable(e))))?;
        Ok(Handling::Handled)
    }
}
