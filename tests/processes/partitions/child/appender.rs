//! The `appender` child: an application that appends, in turns, through the store's
//! `append` and in transactions of its own (`append_in_transaction`, some work in each
//! before it commits, so that it is most often inside one). Its store's `answer_timeout` and
//! `idle_transaction_timeout` are `T`; its own commit waits `T` too (sqlx's `commit` has no
//! bound of its own). Each append is recorded: `ok` once committed, `fail` when refused,
//! `info` when the outcome is unknown (an answer that never came).

use std::time::Duration;

use eventsource_runtime::event::{NewEvent, StreamId};
use eventsource_runtime::store::{EventStore as _, ExpectedVersion, StoreError};
use eventsource_test_support::history::Call;

use super::{Told, terminated};

/// The work done inside each transaction, after the append and before the commit.
const WORK: Duration = Duration::from_millis(300);

/// Appends until SIGTERM, its transactions ended by the server after `timeout` idle.
pub async fn run(told: Told) {
    let Told {
        name,
        timeout,
        history,
        store,
        ..
    } = told;
    let store = store
        .idle_transaction_timeout(timeout)
        .answer_timeout(timeout);
    let mut stop = std::pin::pin!(terminated());
    let mut n = 0_u64;
    loop {
        let stream = StreamId::new("Counter", format!("w-{}", n % 3));
        let event = NewEvent::new("Counted", 1, serde_json::json!({ "n": n, "by": name }));
        let invoked = history
            .invoke(Call::Append {
                stream: stream.to_string(),
                event_ids: vec![event.event_id],
                positions: None,
            })
            .unwrap();
        let in_transaction = n % 2 == 1;
        let appending = async {
            if !in_transaction {
                return (store
                    .append(&stream, ExpectedVersion::Any, vec![event])
                    .await)
                    .map(|_| ())
                    .map_err(|error| match error {
                        StoreError::Unavailable(_) => Outcome::Unknown,
                        _ => Outcome::Refused,
                    });
            }
            let begin = tokio::time::timeout(timeout, store.pool().begin());
            let mut transaction = match begin.await {
                Ok(Ok(transaction)) => transaction,
                _ => return Err(Outcome::Refused),
            };
            store
                .append_in_transaction(&mut transaction, &stream, ExpectedVersion::Any, vec![event])
                .await
                .map_err(|error| match error {
                    StoreError::Unavailable(_) => Outcome::Unknown,
                    _ => Outcome::Refused,
                })?;
            tokio::time::sleep(WORK).await;
            // Sent and not answered: it may have landed.
            match tokio::time::timeout(timeout, transaction.commit()).await {
                Ok(Ok(())) => Ok(()),
                _ => Err(Outcome::Unknown),
            }
        };
        let outcome = tokio::select! {
            outcome = appending => outcome,
            () = &mut stop => break,
        };
        match outcome {
            Ok(()) => history.ok(&invoked).unwrap(),
            Err(Outcome::Refused) => history.fail(&invoked).unwrap(),
            Err(Outcome::Unknown) => history.info(&invoked).unwrap(),
        }
        n += 1;
    }
    println!("{name} stopped");
}

/// How an append that did not commit ended.
enum Outcome {
    /// It did not land (the transaction never began, or the store refused it).
    Refused,
    /// It may have landed.
    Unknown,
}
